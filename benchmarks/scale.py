"""Donations per second through the HTTP API with several workers, on PostgreSQL (and
SQLite), with wrk as the load generator; the CPU time per request summed over every process
involved.

    python benchmarks/scale.py [--deployments pg:1,pg:2,pg:4] [--seconds 15]
                               [--connections 16] [--pg postgresql://postgres@127.0.0.1:5432]

wrk (``apt-get install wrk`` on Debian/Ubuntu) sends ``POST /api/funds/bench/donations``, each
with its own ``Idempotency-Key`` (a Lua script), over ``--connections`` keep-alive connections
from 2 threads; it is written in C, so the client takes little of the server's CPU. Without
wrk the benchmark says so and exits (status 0).

A deployment is ``STORE:WORKERS`` with optional ``+projector`` (a separate ``ledger
projector`` process beside ``ledger serve``): ``pg:2`` is ``ledger serve --workers 2`` on a
fresh PostgreSQL database, ``sqlite:1`` the embedded default. Each gets a fresh database, one
fund and a treasurer token; a 2 s warm-up precedes the measured run.

CPU per request: the user + system time (``/proc/<pid>/stat``) consumed during the measured
run by the server's process tree (uvicorn's supervisor and its workers), the projector if
any, and the PostgreSQL backends connected to the deployment's database, divided by the
requests answered. Targets on a 2-core machine (issue 14): 2 workers at least as fast as 1,
p99 < 50 ms at 2 workers, CPU per request at 2 workers at most 1.25 x that at 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from servers import UNLIMITED_ENV, free_port, ledger_cli, stop, wait_healthy

FUND = "bench"
WARM_UP_S = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

WRK_SCRIPT = """
local counter = 0
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  run = args[1]
  token = args[2]
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"amount": "%d.%02d", "received_on": "2026-01-15", "channel": "wechat", "note": "wrk"}',
    1 + counter % 500, counter % 100)
  return wrk.format("POST", "/api/funds/bench/donations", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = string.format("%s-%d-%d", run, id, counter),
  }, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Deployment:
    store: str  # "pg" or "sqlite"
    workers: int
    projector: bool

    @classmethod
    def parse(cls, text: str) -> Deployment:
        head, _, extra = text.partition("+")
        store, _, workers = head.partition(":")
        if store not in ("pg", "sqlite") or not workers.isdigit() or extra not in ("", "projector"):
            raise SystemExit(f"not a deployment: {text!r} (say pg:2 or pg:1+projector)")
        return cls(store, int(workers), extra == "projector")

    def __str__(self) -> str:
        return f"{self.store}:{self.workers}" + ("+projector" if self.projector else "")


@dataclass
class Result:
    deployment: Deployment
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return (self.requests - self.errors) / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        answered = self.requests - self.errors
        return 1000 * self.cpu_s / answered if answered else float("nan")

    def row(self) -> str:
        return (
            f"| {self.deployment} | {self.rate:,.0f} | {self.p50_ms:.1f} ms | "
            f"{self.p99_ms:.1f} ms | {self.cpu_ms_per_request:.2f} ms | {self.errors} |"
        )


# -- processes ---------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_s(pids: list[int]) -> dict[int, float]:
    """user + system CPU seconds of each process still there."""
    times = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return times


def backends(admin_url: str, dbname: str) -> list[int]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,)
        ).fetchall()
    return [int(r[0]) for r in rows]


# -- one deployment ----------------------------------------------------------------------------


def wrk(port: int, token: str, *, connections: int, seconds: int, script: Path) -> dict[str, int]:
    output = subprocess.run(
        [
            "wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
            "-s", str(script), f"http://127.0.0.1:{port}", "--", uuid.uuid4().hex[:12], token,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout  # fmt: skip
    for line in output.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, int] = json.loads(line.removeprefix("RESULT "))
            return result
    raise SystemExit(f"wrk printed no result: {output}")


def measure(
    deployment: Deployment, *, pg: str, seconds: int, connections: int, tmp: Path
) -> Result:
    folder = tmp / str(deployment).replace(":", "-").replace("+", "-")
    folder.mkdir()
    dbname = f"ledger_scale_{uuid.uuid4().hex[:8]}"
    if deployment.store == "pg":
        with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        url = f"{pg}/{dbname}"
    else:
        url = f"sqlite:///{folder / 'ledger.db'}"
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": url,
        "LEDGER_KEY_DIR": str(folder / "keys"),
        **UNLIMITED_ENV,
    }
    if deployment.projector:
        env["LEDGER_PROJECTIONS_IN_PROCESS"] = "false"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        ledger_cli(env, "init")
        ledger_cli(
            env, "fund", "open", FUND, "--name", "Benchmark fund", "--currency", "CNY",
            "--host", "Benchmark host", "--committee", "a", "--committee", "b",
            "--actor", "bench",
        )  # fmt: skip
        token = ledger_cli(
            env, "token", "create", "--name", "bench", "--role", "treasurer", "--fund", FUND
        )
        token = token.strip().splitlines()[-1]
        port = free_port()
        log = folder / "serve.log"
        with log.open("wb") as out:
            command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
            command += ["--workers", str(deployment.workers), "--no-access-log"]
            processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=out))
            if deployment.projector:
                command = [sys.executable, "-m", "api.cli", "projector"]
                processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=out))
        wait_healthy(processes[0], port, log)
        script = folder / "post.lua"
        script.write_text(WRK_SCRIPT)
        wrk(port, token, connections=connections, seconds=WARM_UP_S, script=script)

        def involved() -> list[int]:
            pids = [pid for p in processes for pid in descendants(p.pid)]
            if deployment.store == "pg":
                pids += backends(f"{pg}/postgres", dbname)
            return pids

        before = cpu_s(involved())
        result = wrk(port, token, connections=connections, seconds=seconds, script=script)
        after = cpu_s(involved())
        used = sum(t - before.get(pid, 0.0) for pid, t in after.items())
        return Result(
            deployment,
            requests=result["requests"],
            errors=result["status_errors"] + result["socket_errors"],
            seconds=result["duration_us"] / 1e6,
            p50_ms=result["p50_us"] / 1000,
            p99_ms=result["p99_us"] / 1000,
            cpu_s=used,
        )
    finally:
        for process in reversed(processes):
            stop(process)
        if deployment.store == "pg":
            with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", default="pg:1,pg:2,pg:4")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): skipped")
        return
    if not (1 <= args.connections <= 256 and 1 <= args.seconds <= 600):
        raise SystemExit("--connections 1..256, --seconds 1..600")
    deployments = [Deployment.parse(d) for d in args.deployments.split(",") if d]
    results = []
    with tempfile.TemporaryDirectory(prefix="ledger-bench-scale-") as folder:
        for deployment in deployments:
            result = measure(
                deployment,
                pg=args.pg,
                seconds=args.seconds,
                connections=args.connections,
                tmp=Path(folder),
            )
            print(result.row(), flush=True)
            results.append(result)
    print(f"\nwrk {args.connections} connections, {args.seconds} s, {os.cpu_count()} CPUs")
    print("| deployment | requests/s | p50 | p99 | CPU/request | errors |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(result.row())
    by = {str(r.deployment): r for r in results}
    one, two = by.get("pg:1"), by.get("pg:2")
    if one and two:
        print(
            f"\n2 workers / 1 worker: throughput {two.rate / one.rate:.2f} (target >= 1.00), "
            f"CPU/request {two.cpu_ms_per_request / one.cpu_ms_per_request:.2f} "
            f"(target <= 1.25); p99 at 2 workers {two.p99_ms:.1f} ms (target < 50 ms)"
        )


if __name__ == "__main__":
    main()
