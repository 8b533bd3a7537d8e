"""Donations recorded per second through the HTTP API (``ledger serve`` on SQLite), next to
a baseline measured in the same run with the same load and the same server settings.

    python benchmarks/api.py [--clients 16] [--seconds 20] [--requests-max 200000]

The API: ``ledger serve`` (uvicorn, 1 worker, no access log, projections in-process) on a
fresh SQLite database with one fund; every request is ``POST /api/funds/bench/donations``
with a token and a unique ``Idempotency-Key``, answered only once the donation is durable
*and* projected into the read models (read-your-writes).

The baseline: a minimal FastAPI route in this file (``--serve-baseline``), the same uvicorn
settings, a pydantic body, and one durable SQLite insert per request (WAL,
synchronous=FULL, one transaction each) — "the cheapest durable POST".

The load: ``--clients`` concurrent clients (threads, one keep-alive connection each), each
sending its next request as soon as the last one is answered, for ``--seconds`` or until
``--requests-max`` requests in all. Both servers run on 127.0.0.1 on a free port and are
stopped at the end. Prints requests/s, p50 and p99 latency, error counts, and the ratios.
Targets (issue 4): the API at least 50% of the baseline's throughput, p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict
from servers import UNLIMITED_ENV, free_port, ledger_cli, start, stop

FUND = "bench"
RECEIVED_ON = "2026-01-15"
REQUEST_TIMEOUT_S = 30.0


# -- the baseline server -----------------------------------------------------------------------


class BaselineDonationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: str
    received_on: str
    channel: str
    note: str = ""


def baseline_app(db_path: str) -> Any:
    """A minimal FastAPI route: validate a body, insert it in one durable transaction."""
    from fastapi import FastAPI

    # One connection behind a lock: SQLite has one writer, and writers that wait on its
    # busy handler sleep in steps of milliseconds (which would make the baseline slow).
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    lock = threading.Lock()

    conn.execute(
        "CREATE TABLE IF NOT EXISTS donations (id INTEGER PRIMARY KEY, key TEXT UNIQUE, "
        "amount TEXT, received_on TEXT, channel TEXT, note TEXT)"
    )
    app = FastAPI()

    @app.post("/api/funds/{slug}/donations", status_code=201)
    def record(slug: str, body: BaselineDonationIn) -> dict[str, Any]:
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.execute(
                "INSERT INTO donations (key, amount, received_on, channel, note) "
                "VALUES (?, ?, ?, ?, ?)",
                (None, body.amount, body.received_on, body.channel, body.note),
            )
            conn.execute("COMMIT")
            row_id = cursor.lastrowid
        return {"id": row_id, "amount": body.amount, "received_on": body.received_on}

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_baseline(port: int, db_path: str) -> None:
    import uvicorn

    uvicorn.run(
        baseline_app(db_path),
        host="127.0.0.1",
        port=port,
        workers=1,
        access_log=False,
        log_level="warning",
    )


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    requests: int
    errors: int
    elapsed_s: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return (self.requests - self.errors) / self.elapsed_s

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]

    def line(self) -> str:
        return (
            f"{self.label:<10} {self.rate:8.0f} req/s   p50 {self.percentile(50):6.1f} ms   "
            f"p99 {self.percentile(99):6.1f} ms   requests {self.requests:,}   "
            f"errors {self.errors}"
        )


def load(
    label: str,
    port: int,
    headers: dict[str, str],
    *,
    clients: int,
    seconds: float,
    requests_max: int,
) -> Result:
    """``clients`` threads, one keep-alive connection each (``http.client``: a light client
    leaves the two cores to the server)."""
    path = f"/api/funds/{FUND}/donations"
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    budget = threading.Semaphore(requests_max)
    deadline = time.perf_counter() + seconds
    run_id = os.urandom(4).hex()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        i = 0
        while time.perf_counter() < deadline and budget.acquire(blocking=False):
            i += 1
            body = json.dumps(
                {
                    "amount": f"{1 + (i % 500)}.{i % 100:02d}",
                    "received_on": RECEIVED_ON,
                    "channel": "wechat",
                    "note": f"benchmark {n}-{i}",
                }
            )
            request_headers = {
                **headers,
                "Content-Type": "application/json",
                "Idempotency-Key": f"{run_id}-{n}-{i}",
            }
            began = time.perf_counter()
            try:
                conn.request("POST", path, body, request_headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 201
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
    elapsed = time.perf_counter() - began
    every = [ms for per_client in latencies for ms in per_client]
    return Result(label, len(every), sum(errors), elapsed, every)


def warm_up(port: int, headers: dict[str, str]) -> None:
    load("warm-up", port, headers, clients=4, seconds=1.0, requests_max=200)


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--requests-max", type=int, default=200_000)
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline, args.db)
        return
    if not (1 <= args.clients <= 256 and 0 < args.seconds <= 600):
        raise SystemExit("--clients 1..256, --seconds up to 600")

    with tempfile.TemporaryDirectory(prefix="ledger-bench-api-") as folder:
        tmp = Path(folder)
        env = {
            **os.environ,
            "LEDGER_DATABASE_URL": f"sqlite:///{tmp / 'ledger.db'}",
            "LEDGER_KEY_DIR": str(tmp / "keys"),
            **UNLIMITED_ENV,
        }
        ledger_cli(env, "init")
        ledger_cli(
            env, "fund", "open", FUND, "--name", "Benchmark fund", "--currency", "CNY",
            "--host", "Benchmark host", "--committee", "a", "--committee", "b",
            "--actor", "bench",
        )  # fmt: skip
        token = ledger_cli(
            env, "token", "create", "--name", "bench", "--role", "treasurer", "--fund", FUND
        )
        headers = {"Authorization": f"Bearer {token.strip().splitlines()[-1]}"}
        kwargs = {
            "clients": args.clients,
            "seconds": args.seconds,
            "requests_max": args.requests_max,
        }

        port = free_port()
        api = start(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-access-log"],
            env,
            port,
            tmp / "api.log",
        )
        try:
            warm_up(port, headers)
            api_result = load("api", port, headers, **kwargs)
            health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).json()
        finally:
            stop(api)

        port = free_port()
        baseline = start(
            [sys.executable, __file__, "--serve-baseline", str(port), "--db", str(tmp / "b.db")],
            env,
            port,
            tmp / "baseline.log",
        )
        try:
            warm_up(port, headers)
            base_result = load("baseline", port, headers, **kwargs)
        finally:
            stop(baseline)

    print(
        f"POST donation, {args.clients} clients, {args.seconds:g} s, uvicorn 1 worker, "
        f"SQLite WAL synchronous=FULL, {os.cpu_count()} CPUs"
    )
    print(api_result.line())
    print(base_result.line())
    ratio = api_result.rate / base_result.rate if base_result.rate else float("nan")
    print(f"ratio      {ratio:8.2f} of the baseline's throughput (target >= 0.50)")
    print(
        f"api p99    {api_result.percentile(99):8.1f} ms (target < 50 ms); "
        f"read models lag after the run: {health.get('lag')} events"
    )
    medians = [statistics.median(r.latencies_ms or [0.0]) for r in (api_result, base_result)]
    print(f"p50 ratio  {medians[0] / medians[1] if medians[1] else float('nan'):8.2f}")


if __name__ == "__main__":
    main()
