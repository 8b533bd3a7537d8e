"""Benchmark: the verifiable log — building the tree, proofs, export and offline verification —
against plain SHA-256 hashing of the same leaves, measured in the same run.

    .venv/bin/python benchmarks/audit.py                      # 200,000 events
    .venv/bin/python benchmarks/audit.py --events 1000000     # the issue's size

1. Generates ``--events`` stored records in memory, shaped like the ledger's (a few funds
   opened, then money events with the library's JSON states of 250–400 bytes) and their leaf
   data (``leaf.leaf_data``).
2. Baseline: ``hashlib.sha256(b"\\x00" + data)`` over every leaf, nothing else.
3. The tree: ``CompactTree.append`` of every leaf hash (the leaf hash included), then
   ``--proofs`` inclusion and consistency proofs at random sizes, each verified.
4. Export: ``export.write_export`` to a temporary file (with the tree's recorded hashes).
5. Verify: ``verify.verify_export_file`` with a signed checkpoint every 100 events, which
   recomputes every leaf hash and root and replays the money events.

It prints each rate in events per second of the process's CPU time (wall time on a shared
machine measures the other processes too), the tree's and the verifier's cost as a ratio to
the baseline, and export + verify (issue 12's target: >= 50,000 events/s). Bounded: at most
``EVENTS_MAX`` events, and a phase that runs past ``--time-max-s`` stops the run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from ledger.audit.checkpoint import Checkpoint, sign_checkpoint  # noqa: E402
from ledger.audit.export import write_export  # noqa: E402
from ledger.audit.leaf import StoredRecord, leaf_data  # noqa: E402
from ledger.audit.merkle import (  # noqa: E402
    CompactTree,
    verify_consistency,
    verify_inclusion,
)
from ledger.audit.note import Ed25519Signer  # noqa: E402
from ledger.audit.verify import verify_export_file  # noqa: E402

EVENTS_DEFAULT = 200_000
EVENTS_MAX = 2_000_000
PROOFS_DEFAULT = 10_000
CHECKPOINT_EVERY = 100
FUNDS = 20
TIME_MAX_S_DEFAULT = 300.0
ORIGIN = "ledger.example.org/bench"
MONEY = [
    ("DonationCredited", 6),
    ("GrantCommitted", 1),
    ("DisbursementDebited", 1),
    ("ExpenseRecorded", 1),
]


class OutOfTime(Exception):
    pass


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def check(self, phase: str) -> None:
        if time.perf_counter() - self.start > self.seconds:
            raise OutOfTime(f"{phase} ran past {self.seconds:.0f} s; try fewer --events")


def records(count: int, rng: random.Random, deadline: Deadline) -> Iterator[StoredRecord]:
    funds = [str(uuid.UUID(int=rng.getrandbits(128), version=5)) for _ in range(FUNDS)]
    versions = dict.fromkeys(funds, 0)
    names = [name for name, weight in MONEY for _ in range(weight)]
    for n in range(count):
        if n % 10_000 == 0:
            deadline.check("generating")
        if n < FUNDS:
            fund = funds[n]
            name = "Opened"
            state = {
                "timestamp": {"_type_": "datetime_iso", "_data_": "2026-11-27T02:00:00+00:00"},
                "originator_topic": "ledger.domain.fund:Fund",
                "slug": f"fund-{n}",
                "name": "茶乡振兴基金",
                "currency": "CNY",
                "description": "",
                "host": "示例公益基金会",
                "committee": ["李主任", "王会计", "张村长"],
                "approvals_required": 2,
                "purposes": [{"code": "education", "name": "教育"}],
                "actor": "admin",
                "request_sha256": "0" * 64,
            }
        else:
            # Every fund gets unrestricted donations first, so no payment overdraws one.
            early = n < 5 * FUNDS
            fund = funds[n % FUNDS] if early else funds[rng.randrange(FUNDS)]
            name = "DonationCredited" if early else rng.choice(names)
            amount = rng.randrange(100, 50_000) if name == "DonationCredited" else 1
            state = {
                "timestamp": {"_type_": "datetime_iso", "_data_": "2026-11-27T02:00:00+00:00"},
                "donation_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "amount_minor": amount,
                "purpose": ""
                if early or name != "DonationCredited"
                else rng.choice(["", "education"]),
                "receipt_no": f"fund-2026-{n:06d}",
                "occurred_on": "2026-11-27",
                "actor": "treasurer",
            }
        versions[fund] += 1
        yield StoredRecord(
            notification_id=n + 1,
            originator_id=fund,
            originator_version=versions[fund],
            topic=f"ledger.domain.fund:Fund.{name}",
            state=json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode(),
        )


def cpu() -> float:
    """The process's CPU time: on a shared machine, wall time measures the neighbours."""
    return time.process_time()


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f}/s  ({seconds:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=EVENTS_DEFAULT)
    parser.add_argument("--proofs", type=int, default=PROOFS_DEFAULT)
    parser.add_argument("--time-max-s", type=float, default=TIME_MAX_S_DEFAULT)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--record-donations", type=int, default=1000,
        help="donations per round of the recording cost (0: skip it)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefill", type=int, default=10_000, help="the fund's events first")
    args = parser.parse_args()
    if not 1 <= args.events <= EVENTS_MAX:
        parser.error(f"--events must be 1..{EVENTS_MAX}")
    if not 0 <= args.proofs <= 1_000_000:
        parser.error("--proofs must be 0..1000000")
    rng = random.Random(args.seed)
    deadline = Deadline(args.time_max_s)

    stored = list(records(args.events, rng, deadline))
    datas = [leaf_data(i, r) for i, r in enumerate(stored)]
    n = len(datas)
    state_bytes = sum(len(r.state) for r in stored) / n
    print(f"events: {n:,}, state {state_bytes:.0f} bytes, leaf data {sum(map(len, datas)) / n:.0f}")

    t = cpu()
    sha256 = hashlib.sha256
    baseline = [sha256(b"\x00" + d).digest() for d in datas]
    hash_s = cpu() - t
    print(f"baseline: SHA-256 of each leaf            {rate(n, hash_s)}")
    deadline.check("hashing")

    t = cpu()
    tree = CompactTree()
    for d in datas:
        tree.append(sha256(b"\x00" + d).digest())
    tree_s = cpu() - t
    print(f"tree: leaf hash + CompactTree.append      {rate(n, tree_s)}")
    print(f"      ratio to the baseline               {tree_s / hash_s:>12.2f}x")
    assert tree.levels[0] == baseline
    deadline.check("building the tree")

    if args.proofs:
        t = cpu()
        for _ in range(args.proofs):
            size = rng.randrange(1, n + 1)
            index = rng.randrange(size)
            verify_inclusion(
                tree.node(0, index), index, size, tree.inclusion_proof(index, size), tree.root(size)
            )
            first = rng.randrange(1, size + 1)
            proof = tree.consistency_proof(first, size)
            verify_consistency(first, size, proof, tree.root(first), tree.root(size))
        proofs_s = cpu() - t
        print(f"proofs: inclusion + consistency, verified {rate(args.proofs, proofs_s)}")
        deadline.check("proofs")

    key = Ed25519Signer.generate(ORIGIN)
    sizes = [*range(CHECKPOINT_EVERY, n, CHECKPOINT_EVERY), n]
    checkpoints = [sign_checkpoint(Checkpoint(ORIGIN, s, tree.root(s)), key) for s in sizes]
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        path = Path(tmp) / "export.jsonl"
        t = cpu()
        with path.open("wb") as out:
            write_export(out, stored, origin=ORIGIN, leaf_hashes=tree.levels[0])
        export_s = cpu() - t
        print(f"export: write_export                      {rate(n, export_s)}")
        print(f"        {path.stat().st_size / 1e6:,.1f} MB")
        deadline.check("export")

        t = cpu()
        report = verify_export_file(path, checkpoints=checkpoints, public_key=key.verifier.vkey)
        verify_s = cpu() - t
    print(f"verify: {len(checkpoints):,} checkpoints, replay        {rate(n, verify_s)}")
    print(f"        ratio to the baseline             {verify_s / hash_s:>12.2f}x")
    print(f"export + verify                           {rate(n, export_s + verify_s)}")
    received = sum(f.total["received"] for f in report.funds.values())
    print(f"funds: {len(report.funds)}, received {received:,} fen in total")
    deadline.check("verify")
    if args.record_donations:
        recording_cost(args.record_donations, args.threads, args.rounds, args.prefill)


def _record_module() -> Any:
    """``benchmarks/record.py``, whose commands and workload this reuses."""
    import importlib.util

    module = sys.modules.get("benchmarks_record")
    if module is None:
        spec = importlib.util.spec_from_file_location(
            "benchmarks_record", ROOT / "benchmarks" / "record.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks_record"] = module
        spec.loader.exec_module(module)
    return module


def _recording_ledger(folder: Path, with_audit: bool, prefill_events: int) -> tuple[Any, ...]:
    """A ledger on its own SQLite file, its read models running in this process as the API
    runs them (each write projected before its command returns), with or without the audit
    projection."""
    bench = _record_module()
    CLOCK, FUND, prefill = bench.CLOCK, bench.FUND, bench.prefill  # noqa: N806
    from ledger.application import LedgerApp
    from ledger.settings import Settings
    from projections.audit import ensure_signing_key
    from projections.db import make_engine
    from projections.registry import PROJECTIONS, ensure_schema
    from projections.runner import ProjectionRunner

    settings = Settings(database_url=f"sqlite:///{folder}/ledger.db", key_dir=folder / "keys")
    ensure_signing_key(folder / "keys", settings.audit_origin)
    app = LedgerApp(settings, clock=lambda: CLOCK)
    app.open_fund(
        slug=FUND, name="Benchmark fund", currency="CNY", host="Host", committee=["a", "b"],
        approvals_required=2, actor="admin",
    )  # fmt: skip
    prefill(app, prefill_events)
    classes = [c for c in PROJECTIONS if with_audit or c.name != "audit"]
    engine = make_engine(settings.database_url)
    ensure_schema(engine, classes)
    runner = ProjectionRunner(app, engine, projections=classes)
    runner.catch_up()
    runner.start()
    app.after_write.append(runner.project_up_to)
    return app, engine, runner


def recording_cost(donations: int, threads: int, rounds: int, prefill_events: int) -> None:
    """``benchmarks/record.py``'s concurrent rate with the read models kept up to date in
    the process, with and without the audit projection, interleaved round by round."""
    import statistics

    record_concurrent = _record_module().record_concurrent

    print()
    print(f"recording: {donations:,} donations x {rounds} rounds, {threads} threads, read "
          f"models in the process, a fund of {prefill_events:,} events")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ledgers = {}
        for name, with_audit in (("without", False), ("with", True)):
            folder = Path(tmp) / name
            folder.mkdir()
            ledgers[name] = _recording_ledger(folder, with_audit, prefill_events)
        rates: dict[str, list[float]] = {"without": [], "with": []}
        try:
            for r in range(rounds):
                for name in ("without", "with") if r % 2 == 0 else ("with", "without"):
                    app = ledgers[name][0]
                    rates[name].append(record_concurrent(app, donations, threads, f"r{r}"))
                print(f"round {r + 1}: without audit {rates['without'][-1]:,.0f}/s  "
                      f"with audit {rates['with'][-1]:,.0f}/s")  # fmt: skip
        finally:
            for app, engine, runner in ledgers.values():
                runner.stop()
                engine.dispose()
                app.close()
    without, with_ = (statistics.median(rates[n]) for n in ("without", "with"))
    print(f"concurrent, read models without the audit projection: {without:,.0f}/s")
    print(f"concurrent, read models with the audit projection:    {with_:,.0f}/s  "
          f"= {1 - with_ / without:+.1%} slower (target: at most 10%)")  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except OutOfTime as e:
        sys.exit(f"stopped: {e}")
