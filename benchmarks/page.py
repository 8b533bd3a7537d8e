"""Benchmark: the public pages against the JSON route they share their reads with.

    .venv/bin/python benchmarks/page.py                           # 10,000 and 1,000,000 events
    .venv/bin/python benchmarks/page.py --sizes 10000 100000 --seconds 8

For each size: the rebuild benchmark's generator writes a log of that many events, all of one
fund (``benchmarks/rebuild.py``'s ``Generator`` with one fund), the read models are rebuilt
from it (``projections.rebuild``), and ``ledger serve`` answers on 127.0.0.1. Then, in the
same run and interleaved (three rounds, medians), ``--clients`` threads with a keep-alive
connection each ask for

- ``GET /api/funds/{slug}`` (the JSON route, the baseline),
- ``GET /funds/{slug}`` (the fund page: figures, twelve months of flows and the chart,
  grants, donations, spending, corrections),
- ``GET /receipts/{receipt_no}`` (a receipt page, with the uses of its purpose since).

Each size is served twice: with the page cache (``api.pages.cache``, the default) and
without it (``LEDGER_PAGE_CACHE_ENTRIES=0``: every page queried and rendered). It prints
requests/s and p50/p99 of each, the page's throughput as a share of the JSON
route's, and each page's p50 at the largest size over its p50 at the smallest. Targets (issue
11): the fund page >= 50 % of the JSON route's throughput; p50 at the largest size <= 1.5 x
p50 at the smallest. Every loop is bounded by ``--seconds`` and ``--requests-max``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "benchmarks")]

import rebuild as generator_module  # noqa: E402  (benchmarks/rebuild.py)
from servers import UNLIMITED_ENV, free_port, start, stop  # noqa: E402

from ledger.application import LedgerApp  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from projections.db import open_store  # noqa: E402
from projections.rebuild import rebuild  # noqa: E402

SLUG = "fund-00"
START_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0
ROUNDS = 3


@dataclass
class Result:
    requests: int
    errors: int
    elapsed_s: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return (self.requests - self.errors) / self.elapsed_s

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def build(db: Path, events: int, keys: Path) -> None:
    """``events`` events of one fund, then every read model rebuilt from them."""
    generator_module.FUNDS = 1  # the generator spreads its log over FUNDS funds
    settings = Settings(database_url=f"sqlite:///{db}", key_dir=keys)
    app = LedgerApp(settings, clock=lambda: datetime.now(UTC))
    started = time.perf_counter()
    written = generator_module.Generator(app, seed=7).run(events)
    print(f"  generated {written:,} events in {time.perf_counter() - started:.1f} s")
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _, engine = open_store(settings)
    started = time.perf_counter()
    rebuild(app, engine)
    print(f"  rebuilt the read models in {time.perf_counter() - started:.1f} s")
    engine.dispose()
    app.close()


def serve(db: Path, keys: Path, log: Path, *, cache: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        **UNLIMITED_ENV,
        "LEDGER_DATABASE_URL": f"sqlite:///{db}",
        "LEDGER_KEY_DIR": str(keys),
    }
    if not cache:
        env["LEDGER_PAGE_CACHE_ENTRIES"] = "0"
    command = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log"]  # fmt: skip
    return start(command, env, port, log, timeout_s=START_TIMEOUT_S), port


def load(port: int, path: str, *, clients: int, seconds: float, requests_max: int) -> Result:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    budget = threading.Semaphore(requests_max)
    deadline = time.perf_counter() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        while time.perf_counter() < deadline and budget.acquire(blocking=False):
            began = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Accept-Language": "zh-CN"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
            latencies[n].append((time.perf_counter() - began) * 1000)
            if not ok:
                errors[n] += 1
        conn.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [ms for per in latencies for ms in per]
    return Result(len(every), sum(errors), time.perf_counter() - began, every)


def measure(port: int, args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    """Label → (median req/s, median p50 ms, median p99 ms) over interleaved rounds."""
    receipt = httpx.get(
        f"http://127.0.0.1:{port}/api/funds/{SLUG}/donations?limit=1", timeout=30
    ).json()["items"][0]["receipt_no"]
    paths = {
        "json": f"/api/funds/{SLUG}",
        "fund page": f"/funds/{SLUG}",
        "receipt": f"/receipts/{receipt}",
    }
    for path in paths.values():  # warm up: caches, the first connection
        load(port, path, clients=2, seconds=1.0, requests_max=50)
    runs: dict[str, list[Result]] = {label: [] for label in paths}
    for _ in range(ROUNDS):
        for label, path in paths.items():
            runs[label].append(
                load(
                    port,
                    path,
                    clients=args.clients,
                    seconds=args.seconds,
                    requests_max=args.requests_max,
                )
            )
    out = {}
    for label, results in runs.items():
        errors = sum(r.errors for r in results)
        if errors:
            print(f"  {label}: {errors} errors")
        out[label] = (
            statistics.median(r.rate for r in results),
            statistics.median(r.percentile(50) for r in results),
            statistics.median(r.percentile(99) for r in results),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="per path and round")
    parser.add_argument("--requests-max", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="a folder to keep (and reuse) the logs in")
    args = parser.parse_args(argv)

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="ledger-page-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    figures: dict[tuple[int, bool], dict[str, tuple[float, float, float]]] = {}
    for size in args.sizes:
        db, keys = workdir / f"page-{size}.db", workdir / "keys"
        print(f"{size:,} events of one fund ({db})")
        if not db.exists():
            build(db, size, keys)
        for cache in (True, False):
            name = "page cache on" if cache else "page cache off (LEDGER_PAGE_CACHE_ENTRIES=0)"
            log = workdir / f"serve-{size}-{int(cache)}.log"
            process, port = serve(db, keys, log, cache=cache)
            try:
                got = figures[size, cache] = measure(port, args)
            finally:
                stop(process)
            print(f"  {name}")
            for label, (rate, p50, p99) in got.items():
                print(f"    {label:<10} {rate:8.0f} req/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
            share = got["fund page"][0] / got["json"][0]
            print(f"    fund page / JSON route throughput: {share:.0%} (target >= 50 %)")

    small, big = min(args.sizes), max(args.sizes)
    if small != big:
        for cache in (True, False):
            for label in ("json", "fund page", "receipt"):
                growth = figures[big, cache][label][1] / figures[small, cache][label][1]
                print(
                    f"cache {'on ' if cache else 'off'}: p50 of {label} at {big:,} / at "
                    f"{small:,}: {growth:.2f} x" + (" (target <= 1.5 x)" if label != "json" else "")
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
