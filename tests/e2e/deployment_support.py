"""Real deployments for the scale tests: ``ledger serve`` (and ``ledger projector``)
processes on a store, started, SIGKILLed and restarted; clients that post keyed donations
and retry until acknowledged; the checks of what survived."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select

from ledger.application import LedgerApp
from ledger.domain.common import entity_id
from ledger.settings import Settings
from projections.db import make_engine
from projections.queries import fund_figures
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from projections.tables import LIVE
from tests.read_models_support import dump

FUND = "bench"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ledger(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Deployment:
    """A store with one fund and a treasurer token, and the processes serving it."""

    url: str
    folder: Path
    workers: int = 1
    port: int = field(default_factory=free_port)
    token: str = ""
    server: subprocess.Popen[bytes] | None = None
    projectors: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LEDGER_DATABASE_URL": self.url,
            "LEDGER_KEY_DIR": str(self.folder / "keys"),
        }

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self) -> Settings:
        return Settings(database_url=self.url, key_dir=self.folder / "keys")

    def prepare(self) -> Deployment:
        env = self.env
        ledger(env, "init")
        ledger(
            env, "fund", "open", FUND, "--name", "Bench fund", "--currency", "CNY",
            "--host", "Bench host", "--committee", "a", "--committee", "b", "--actor", "admin",
        )  # fmt: skip
        out = ledger(env, "token", "create", "--name", "bench", "--role", "treasurer")
        self.token = out.strip().splitlines()[-1]
        return self

    # -- processes ---------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> None:
        command = [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)]
        command += ["--workers", str(self.workers), "--no-access-log"]
        log = (self.folder / "serve.log").open("ab")
        # A session of its own: SIGKILL of the group takes uvicorn's workers with it.
        self.server = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        if wait:
            self.wait_healthy()

    def start_projector(self) -> subprocess.Popen[bytes]:
        log = (self.folder / "projector.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "projector"],
            env={**self.env, "LEDGER_PROJECTIONS_IN_PROCESS": "false"},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.projectors.append(process)
        return process

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.server is not None
            if self.server.poll() is not None:
                raise AssertionError(self.log_tail())
            try:
                if httpx.get(f"{self.base}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not serving within {timeout_s} s: {self.log_tail()}")

    def kill_server(self) -> None:
        """SIGKILL the server and every worker of it."""
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(STOP_TIMEOUT_S)
        self.server = None

    def workers_pids(self) -> list[int]:
        if self.server is None:
            return []
        return [int(p) for p in _children(self.server.pid)]

    def stop(self) -> None:
        """Stop everything (SIGINT, then SIGKILL what is left)."""
        for process in [*self.projectors, *([self.server] if self.server else [])]:
            if process.poll() is None:
                with _suppress_lookup():
                    os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self.projectors.clear()
        self.server = None

    def log_tail(self) -> str:
        path = self.folder / "serve.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # -- HTTP --------------------------------------------------------------------------------

    def headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers


def _children(pid: int) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return text.split()


@contextmanager
def _suppress_lookup() -> Iterator[None]:
    with suppress(ProcessLookupError):
        yield


# -- clients -----------------------------------------------------------------------------------


def donation_body(key: str) -> dict[str, Any]:
    amount = 1 + sum(key.encode()) % 900
    return {"amount": f"{amount}.00", "received_on": "2026-01-15", "channel": "wechat"}


@dataclass
class Clients:
    """``count`` threads, each posting donations with keys of its own, every one retried
    (same key, same body) until it is acknowledged (201 or 200)."""

    deployment: Deployment
    count: int = 8
    acknowledged: dict[str, str] = field(default_factory=dict)  # key -> donation id
    tried: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)  # answers that are not retried
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Clients:
        for n in range(self.count):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout_s: float = 90.0) -> None:
        """Finish: each client gets its last donation acknowledged, then stops."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
            assert not thread.is_alive(), "a client did not finish"

    def _run(self, n: int) -> None:
        url = f"{self.deployment.base}/api/funds/{FUND}/donations"
        with httpx.Client(timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                key = f"c{n}-{i}"
                with self._lock:
                    self.tried.add(key)
                for _ in range(2_000):  # bounded: ~20 retries a second for minutes
                    try:
                        response = client.post(
                            url, json=donation_body(key), headers=self.deployment.headers(key)
                        )
                    except httpx.HTTPError:
                        time.sleep(0.05)
                        continue
                    if response.status_code in (200, 201):
                        with self._lock:
                            self.acknowledged[key] = response.json()["id"]
                        break
                    if response.status_code >= 500:
                        time.sleep(0.05)
                        continue
                    with self._lock:
                        self.refused.append(f"{key}: {response.status_code} {response.text}")
                    break


# -- checks ------------------------------------------------------------------------------------


def check_survivors(deployment: Deployment, clients: Clients) -> dict[str, Any]:
    """Every acknowledged donation is in the log and the read models, none twice; the read
    models equal a rebuild; the figures add up. Returns a few counts."""
    app = LedgerApp(deployment.settings)
    engine = make_engine(deployment.url)
    try:
        ProjectionRunner(app, engine).catch_up()
        rows = _donation_rows(engine)
        by_id = {r["donation_id"]: r for r in rows}
        expected_ids = {str(entity_id(FUND, "donation", k)): k for k in clients.tried}
        assert not clients.refused, clients.refused[:5]
        for key, donation_id in clients.acknowledged.items():
            assert donation_id in by_id, f"acknowledged donation {key} lost"
            assert app.get_donation(donation_id).amount_minor == _minor(key)
        assert set(by_id) <= set(expected_ids), "a donation no client sent"
        receipts = [r["receipt_no"] for r in rows]
        assert len(set(receipts)) == len(receipts), "a receipt number given twice"
        for donation_id, row in by_id.items():
            assert row["amount_minor"] == _minor(expected_ids[donation_id])
        fund = app.get_fund(FUND)
        recorded = sum(r["amount_minor"] for r in rows)
        assert sum(f["received"] for f in fund.figures.values()) == recorded
        with engine.connect() as conn:
            assert fund_figures(conn, FUND).totals.received_minor == recorded
        live = dump(engine)
        rebuild(app, engine)
        assert dump(engine) == live, "the read models differ from a rebuild"
        return {"rows": len(rows), "acknowledged": len(clients.acknowledged)}
    finally:
        engine.dispose()
        app.close()


def _minor(key: str) -> int:
    return int(donation_body(key)["amount"].split(".")[0]) * 100


def _donation_rows(engine: Engine) -> list[dict[str, Any]]:
    table = LIVE.by_base_name()["rm_donations"]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings()]


def random_pause(rng: random.Random, low_s: float, high_s: float) -> None:
    time.sleep(rng.uniform(low_s, high_s))
