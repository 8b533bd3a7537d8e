"""Benchmark: the auditors' own tools against the ledger, on one history.

    .venv/bin/python benchmarks/peers.py                      # 100,000 money movements
    .venv/bin/python benchmarks/peers.py --movements 20000 --keep /tmp/peers

1. Generates a rich history of ``--movements`` money movements in one fund into a fresh
   SQLite file (``ledger.histories.record_history(bulk=True)``: the domain's commands,
   events written in large transactions), rebuilds the read models and exports the fund's
   books as a Beancount file and an hledger journal (timed, for information).
2. Times, in one run on the same machine, on the same history:
   - ``hledger bal`` on the journal (it parses, checks the balance assertions, sums);
   - a ``bean-query`` balance query on the Beancount file (it parses, validates, sums);
   - our full rebuild of every read model from the event log (``projections.rebuild``,
     with its worker processes, as ``ledger projections rebuild`` runs it);
   - our balance read: the fund's figures from the read models (``fund_figures``), the
     median of ``--reads`` reads.
   ``hledger bal`` and the rebuild run ``--repeat`` times each (default 2) and the best time
   counts (the machine is shared: load changes within a run); ``bean-query`` runs once.
3. Prints each time and the ratios. Targets (issue 13): the full rebuild at most half of
   ``hledger bal``'s time; a balance read in milliseconds.

Every tool runs under ``--timeout-s`` (default 600 s); a tool that is missing or runs out of
time is reported as such, and the others still run.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from ledger.application import LedgerApp  # noqa: E402
from ledger.histories import record_history  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from projections.db import open_store  # noqa: E402
from projections.exports.ledgerfiles import beancount_lines, hledger_lines  # noqa: E402
from projections.queries import fund_figures  # noqa: E402
from projections.rebuild import rebuild  # noqa: E402

BEAN_QUERY = "SELECT account, sum(position) AS balance GROUP BY account ORDER BY account"
DAYS = 400


def _tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def _timed_run(args: list[str], timeout_s: float) -> tuple[float | None, str]:
    """Wall time of a tool's run, or None (and why) if it failed or ran out of time."""
    started = time.perf_counter()
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout_s:.0f} s"
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        return None, f"failed ({done.returncode}): {(done.stderr or done.stdout)[:300]}"
    return elapsed, done.stdout


def _best_of(times: int, args: list[str], timeout_s: float) -> tuple[float | None, str]:
    best: tuple[float | None, str] = (None, "")
    for _ in range(max(1, times)):
        elapsed, out = _timed_run(args, timeout_s)
        if elapsed is None:
            return elapsed, out
        if best[0] is None or elapsed < best[0]:
            best = (elapsed, out)
    return best


def _write(path: Path, lines: object) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for line in lines:  # type: ignore[attr-defined]
            f.write(line)
            f.write("\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movements", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", type=Path, help="a directory to keep the files in")
    parser.add_argument("--reads", type=int, default=200, help="balance reads to time")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of hledger bal and of our rebuild (best)"
    )
    args = parser.parse_args(argv)

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="ledger-peers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "peers.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    settings = Settings(database_url=f"sqlite:///{db}", key_dir=workdir / "keys")
    app = LedgerApp(settings, clock=lambda: datetime.now(UTC))
    _, engine = open_store(settings)
    opener = functools.partial(open_store, settings)  # the rebuild's worker processes
    print(f"machine: {os.cpu_count()} CPUs; files in {workdir}")

    started = time.perf_counter()
    counts = record_history(app, seed=args.seed, movements=args.movements, days=DAYS, bulk=True)
    generated_s = time.perf_counter() - started
    events = app.recorder.max_notification_id() or 0
    slug = counts.slugs[0]
    print(
        f"generated    {counts.movements:,} money movements ({events:,} events) in "
        f"{generated_s:.1f} s"
    )
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    rebuild(app, engine, opener=opener)  # what the export reads (the timed rebuild: below)
    journal, bean = workdir / "books.journal", workdir / "books.beancount"
    with engine.connect() as conn:
        started = time.perf_counter()
        lines = _write(journal, hledger_lines(conn, slug))
        hledger_export_s = time.perf_counter() - started
        started = time.perf_counter()
        _write(bean, beancount_lines(conn, slug))
        bean_export_s = time.perf_counter() - started
    print(
        f"exported     hledger {hledger_export_s:.1f} s ({lines:,} lines, "
        f"{journal.stat().st_size / 2**20:.0f} MiB), beancount {bean_export_s:.1f} s"
    )

    results: dict[str, float | None] = {}
    hledger = _tool("hledger")
    if hledger is None:
        print("hledger bal  not installed")
        results["hledger"] = None
    else:
        elapsed, out = _best_of(args.repeat, [hledger, "-f", str(journal), "bal"], args.timeout_s)
        results["hledger"] = elapsed
        print(f"hledger bal  {elapsed:8.2f} s" if elapsed is not None else f"hledger bal  {out}")
    bean_query = _tool("bean-query")
    if bean_query is None:
        print("bean-query   not installed")
        results["bean-query"] = None
    else:
        elapsed, out = _best_of(1, [bean_query, str(bean), BEAN_QUERY], args.timeout_s)
        results["bean-query"] = elapsed
        shown = f"{elapsed:8.2f} s" if elapsed is not None else out
        print(f"bean-query   {shown}  ({BEAN_QUERY})")

    rebuild_s = float("inf")
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = rebuild(app, engine, opener=opener)
        rebuild_s = min(rebuild_s, time.perf_counter() - started)
    results["rebuild"] = rebuild_s
    print(
        f"our rebuild  {rebuild_s:8.2f} s  (every read model from {result.events:,} events: "
        f"{', '.join(result.names)})"
    )

    reads_ms: list[float] = []
    with engine.connect() as conn:
        fund_figures(conn, slug)  # warm
        for _ in range(max(1, args.reads)):
            started = time.perf_counter()
            figures = fund_figures(conn, slug)
            reads_ms.append((time.perf_counter() - started) * 1000)
    read_ms = statistics.median(reads_ms)
    print(
        f"our balance  {read_ms:8.3f} ms (median of {len(reads_ms)} reads of the fund's "
        f"figures; on hand {figures.totals.on_hand_minor / 100:,.2f} {figures.currency})"
    )

    print("ratios:")
    hledger_s, bean_s = results["hledger"], results["bean-query"]
    if hledger_s:
        print(f"  our rebuild / hledger bal   {rebuild_s / hledger_s:6.2f}  (target <= 0.50)")
        print(f"  hledger bal / our balance   {hledger_s * 1000 / read_ms:10,.0f} x")
    if bean_s:
        print(f"  our rebuild / bean-query    {rebuild_s / bean_s:6.2f}")
        print(f"  bean-query / our balance    {bean_s * 1000 / read_ms:10,.0f} x")
    met = hledger_s is not None and rebuild_s <= hledger_s / 2 and read_ms < 100
    print(f"targets (rebuild <= half of hledger bal; balance in ms): {'met' if met else 'NOT met'}")
    engine.dispose()
    app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
