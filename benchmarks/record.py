"""Donations recorded per second through the application, on SQLite, into a fund that
already holds 100,000 events — next to the raw durable-commit rate measured in the same run.

    python benchmarks/record.py [--fund-events 100000] [--donations 2000] [--threads 8]

Baseline: one row per transaction, WAL, synchronous=FULL, into a table shaped like the
library's ``stored_events`` (same size of row as a donation's events), one writer: the
fsync-bound ceiling of "one command, one durable commit".

Measured, each three times interleaved with the baseline (medians printed):
- sequential: one thread records donation after donation (each durable before the next);
- concurrent: ``--threads`` threads record at once, as API workers do; the application's
  group commit writes the events of the commands waiting together in one transaction.

It prints figures only; it asserts nothing (benchmarks are not tests), except that the
ledger it wrote adds up: received equals the sum recorded and receipt numbers have no gap.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

from ledger.application import DonorIn, LedgerApp
from ledger.domain.common import donor_id_for, entity_id, fingerprint
from ledger.domain.donation import Donation
from ledger.settings import Settings

FUND = "bench"
RECEIVED_ON = date(2026, 11, 2)
CLOCK = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def raw_commit_rate(folder: Path, rows: int, row_bytes: int) -> float:
    path = folder / f"raw-{time.monotonic_ns()}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, "
        "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
    )
    payload = os.urandom(row_bytes)
    started = time.perf_counter()
    for i in range(rows):
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO stored_events VALUES (?, ?, ?, ?)",
            (f"{i:032x}", 1, "ledger.domain.donation:Donation.Received", payload),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return rows / elapsed


def prefill(app: LedgerApp, fund_events: int) -> int:
    """Write ``fund_events`` donation credits into the fund fast: the same domain
    commands, but many per transaction (the benchmark measures what comes after)."""
    fund = app.get_fund(FUND)
    batch: list[object] = []
    written = 0
    for i in range(fund_events):
        key = f"prefill-{i}"
        donation_id = entity_id(FUND, "donation", key)
        receipt_no = fund.credit_donation(
            donation_id=str(donation_id),
            amount_minor=100,
            purpose="",
            received_on=RECEIVED_ON,
            actor="bench",
        )
        donation = Donation.receive(
            id=donation_id,
            fund_id=str(fund.id),
            fund_slug=FUND,
            currency="CNY",
            amount_minor=100,
            received_on=RECEIVED_ON,
            channel="cash",
            purpose="",
            donor_id=str(donor_id_for(donation_id)),
            donor_public_name="爱心人士",
            donor_anonymous=True,
            donor_sealed=None,
            external_ref=None,
            receipt_no=receipt_no,
            note="",
            in_kind=None,
            actor="bench",
            request_sha256=fingerprint(kind="prefill", i=i),
        )
        batch.extend(fund.collect_events())
        batch.extend(donation.collect_events())
        if len(batch) >= 20_000 or i == fund_events - 1:
            app.events.put(batch)  # type: ignore[arg-type]
            written += len(batch)
            batch = []
    # As the application would have every 500 events (the bulk path bypassed it).
    app.take_snapshot(
        fund.id, version=fund.version, projector_func=app.snapshotting_projectors[type(fund)]
    )
    return written


def record_sequential(app: LedgerApp, count: int, prefix: str) -> float:
    started = time.perf_counter()
    for i in range(count):
        app.record_donation(
            slug=FUND,
            key=f"{prefix}-{i}",
            amount_minor=5000,
            received_on=RECEIVED_ON,
            channel="wechat",
            donor=DonorIn(name="王小明", contact="13800138000"),
            actor="treasurer",
        )
    return count / (time.perf_counter() - started)


def record_concurrent(app: LedgerApp, count: int, threads: int, prefix: str) -> float:
    per_thread = count // threads
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                app.record_donation(
                    slug=FUND,
                    key=f"{prefix}-{t}-{i}",
                    amount_minor=5000,
                    received_on=RECEIVED_ON,
                    channel="wechat",
                    donor=DonorIn(name="王小明", contact="13800138000"),
                    actor="treasurer",
                )
        except BaseException as e:  # reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return per_thread * threads / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fund-events", type=int, default=100_000)
    parser.add_argument("--donations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        settings = Settings(database_url=f"sqlite:///{folder}/ledger.db", key_dir=folder / "keys")
        app = LedgerApp(settings, clock=lambda: CLOCK)
        app.open_fund(
            slug=FUND,
            name="Benchmark fund",
            currency="CNY",
            host="Host",
            committee=["a", "b"],
            approvals_required=2,
            actor="admin",
        )
        started = time.perf_counter()
        written = prefill(app, args.fund_events)
        fund = app.get_fund(FUND)
        print(
            f"prefill: {written:,} events ({fund.version:,} in the fund's own stream) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        row_bytes = len(app.mapper.to_stored_event(_probe(app)).state)
        app.close()

        # A new process: the first command loads the fund from its snapshot.
        app = LedgerApp(settings, clock=lambda: CLOCK)
        started = time.perf_counter()
        record_sequential(app, 1, "cold")
        cold_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        record_sequential(app, 1, "warm")
        warm_ms = (time.perf_counter() - started) * 1000
        print(f"first command of a new process: {cold_ms:.1f} ms (next one {warm_ms:.1f} ms)")

        raw, seq, conc = [], [], []
        for r in range(args.rounds):
            raw.append(raw_commit_rate(folder, args.donations, row_bytes))
            seq.append(record_sequential(app, args.donations, f"seq{r}"))
            conc.append(record_concurrent(app, args.donations, args.threads, f"conc{r}"))
            print(
                f"round {r + 1}: raw {raw[-1]:,.0f}/s  sequential {seq[-1]:,.0f}/s  "
                f"concurrent({args.threads}) {conc[-1]:,.0f}/s"
            )

        fund = app.get_fund(FUND)
        recorded = 2 + args.rounds * (
            args.donations + args.donations // args.threads * args.threads
        )
        expected_received = args.fund_events * 100 + 5000 * recorded
        receipts = fund.receipt_seq.get(str(RECEIVED_ON.year), 0)
        ok = (
            fund.totals()["received"] == expected_received
            and receipts == args.fund_events + recorded
        )
        raw_m, seq_m, conc_m = (statistics.median(x) for x in (raw, seq, conc))
        print()
        print(f"fund stream now {fund.version:,} events; ledger adds up: {ok}")
        print(f"raw durable commits (1 row/txn, WAL, FULL): {raw_m:,.0f}/s  (baseline)")
        print(f"donations, sequential:  {seq_m:,.0f}/s  = {seq_m / raw_m:.0%} of baseline")
        print(
            f"donations, {args.threads} threads:   {conc_m:,.0f}/s  = {conc_m / raw_m:.0%} of "
            f"baseline  (conflicts retried: {app.conflicts_retried})"
        )
        print("target: >= 50% of baseline")
        app.close()
        return 0 if ok else 1


def _probe(app: LedgerApp) -> object:
    """A typical donation event, to size the baseline's rows like the real ones."""
    donation = app.get_donation(entity_id(FUND, "donation", "prefill-0"))
    return next(iter(app.events.get(donation.id)))


if __name__ == "__main__":
    sys.exit(main())
