"""What the HTTP benchmarks share: a free port on 127.0.0.1, the ``ledger`` command, and a
server process started, waited for until ``/api/health`` answers, and stopped."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 120.0

# A benchmark's load comes from one address with one token: the API's rate limits would
# answer most of it 429, so the servers it starts lift them (LEDGER_RATE_LIMIT_PER_*).
UNLIMITED_ENV = {
    "LEDGER_RATE_LIMIT_PER_ADDRESS": "1000000/second",
    "LEDGER_RATE_LIMIT_PER_TOKEN": "1000000/second",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ledger_cli(env: dict[str, str], *args: str) -> str:
    """Run ``ledger ARGS``; its standard output, or exit with its error."""
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"ledger {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def wait_healthy(
    process: subprocess.Popen[bytes], port: int, log: Path, *, timeout_s: float = START_TIMEOUT_S
) -> None:
    """Until ``/api/health`` answers 200; exit if the process ends or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server did not answer within {timeout_s} s")


def start(
    command: list[str],
    env: dict[str, str],
    port: int,
    log: Path,
    *,
    timeout_s: float = START_TIMEOUT_S,
) -> subprocess.Popen[bytes]:
    """Start ``command`` (its output into ``log``) and wait until it serves on ``port``."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(process, port, log, timeout_s=timeout_s)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen[bytes], *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGINT, then SIGKILL after ``timeout_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
