"""Several workers, several projectors, crashes: ``ledger serve --workers N`` as deployed.

- With several workers a write answers once durable and says its log position
  (``Ledger-Position``); a read that sends it back (``Ledger-Min-Position``) sees the write.
- Every worker runs the projections, one at a time: killing the one that works hands the
  work to another (uvicorn restarts the dead worker).
- Failover: of two ``ledger projector`` processes on PostgreSQL one works (the advisory
  lock); SIGKILL of it and the other takes over within 5 s, nothing lost or applied twice.
- Crash test: 8 clients post keyed donations while the server is SIGKILLed 20 times at
  random and restarted; every acknowledged donation survives once, the read models equal a
  rebuild.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from ledger.store import parse_url
from projections.db import psycopg_conninfo
from tests.e2e.deployment_support import (
    FUND,
    Clients,
    Deployment,
    check_survivors,
    donation_body,
)

FAILOVER_S_MAX = 5.0
KILLS = 20


def _post(deployment: Deployment, key: str) -> httpx.Response:
    return httpx.post(
        f"{deployment.base}/api/funds/{FUND}/donations",
        json=donation_body(key),
        headers=deployment.headers(key),
        timeout=10,
    )


def _active_among(url: str, candidates: list[int]) -> int | None:
    conninfo = psycopg_conninfo(parse_url(url))
    names = [f"ledger-projections {pid}" for pid in candidates]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = ANY(%s)",
            (names,),
        ).fetchall()
    pids = [int(r[0].split()[-1]) for r in rows]
    return pids[0] if len(pids) == 1 else None


def test_several_workers_answer_with_the_position_that_reads_wait_for(tmp_path: Path) -> None:
    deployment = Deployment(f"sqlite:///{tmp_path}/ledger.db", tmp_path, workers=2).prepare()
    deployment.start()
    try:
        positions = []
        for i in range(20):
            created = _post(deployment, f"ryw-{i}")
            assert created.status_code == 201, created.text
            position = int(created.headers["Ledger-Position"])
            positions.append(position)
            donations = httpx.get(
                f"{deployment.base}/api/funds/{FUND}/donations",
                headers={**deployment.headers(), "Ledger-Min-Position": str(position)},
                timeout=10,
            )
            assert donations.status_code == 200
            assert created.json()["id"] in {d["id"] for d in donations.json()["items"]}
        assert positions == sorted(positions)
        assert len(set(positions)) == 20
        replay = _post(deployment, "ryw-0")
        assert replay.status_code == 200
        assert int(replay.headers["Ledger-Position"]) >= positions[0]
        bad = httpx.get(
            f"{deployment.base}/api/funds/{FUND}",
            headers={"Ledger-Min-Position": "soon"},
            timeout=10,
        )
        assert bad.status_code == 422
        assert bad.json()["type"] == "validation-error"
        far = httpx.get(
            f"{deployment.base}/api/funds/{FUND}",
            headers={"Ledger-Min-Position": str(10**9)},
            timeout=30,
        )
        assert far.status_code == 503
        assert far.headers["Retry-After"] == "1"
    finally:
        deployment.stop()


@pytest.mark.postgres
def test_killing_the_active_projector_hands_the_work_to_a_standby_within_5_s(
    pg_url: str, tmp_path: Path
) -> None:
    deployment = Deployment(pg_url, tmp_path).prepare()
    first, second = deployment.start_projector(), deployment.start_projector()
    app_env = {**deployment.env, "LEDGER_PROJECTIONS_IN_PROCESS": "false"}
    try:
        deadline = time.monotonic() + 60
        active = None
        while active is None and time.monotonic() < deadline:
            active = _active_among(pg_url, [first.pid, second.pid])
            time.sleep(0.1)
        assert active is not None, "no projector took the lock"
        standby = second if active == first.pid else first
        # Writes while the active one works, then it dies mid-stream.
        clients = _write_in_process(deployment, app_env, count=40)
        os.kill(active, signal.SIGKILL)
        killed_at = time.monotonic()
        taken = None
        while time.monotonic() - killed_at < FAILOVER_S_MAX + 5:
            taken = _active_among(pg_url, [standby.pid])
            if taken is not None:
                break
            time.sleep(0.05)
        took_s = time.monotonic() - killed_at
        assert taken == standby.pid
        assert took_s < FAILOVER_S_MAX, f"the standby took {took_s:.1f} s"
        clients |= _write_in_process(deployment, app_env, count=40, first=40)
        # The standby catches up with everything, exactly once.
        _wait_projected(deployment)
    finally:
        deployment.stop()
    survivors = Clients(deployment)
    survivors.tried = set(clients)
    survivors.acknowledged = dict(clients)
    counts = check_survivors(deployment, survivors)
    assert counts["rows"] == 80


def _write_in_process(
    deployment: Deployment, env: dict[str, str], *, count: int, first: int = 0
) -> dict[str, str]:
    from ledger.application import LedgerApp

    app = LedgerApp(deployment.settings)
    try:
        written = {}
        for i in range(first, first + count):
            key = f"failover-{i}"
            body = donation_body(key)
            recorded = app.record_donation(
                slug=FUND,
                key=key,
                amount_minor=int(body["amount"].split(".")[0]) * 100,
                received_on=body["received_on"],
                channel=body["channel"],
                actor="treasurer",
            )
            written[key] = str(recorded.value.id)
        return written
    finally:
        app.close()


def _wait_projected(deployment: Deployment, timeout_s: float = 60.0) -> None:
    from ledger.application import LedgerApp
    from projections.db import make_engine
    from projections.engine.projector import Projector
    from projections.projection import Projection
    from projections.registry import PROJECTIONS
    from projections.tables import LIVE

    app = LedgerApp(deployment.settings)
    engine = make_engine(deployment.url)
    try:
        head = app.recorder.max_notification_id() or 0
        projections: list[Projection] = [cls(LIVE) for cls in PROJECTIONS]
        projector = Projector(app, engine, projections)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            positions = projector.positions()
            if positions and min(positions.values()) >= head:
                return
            time.sleep(0.1)
        raise AssertionError(f"not projected up to {head}: {projector.positions()}")
    finally:
        engine.dispose()
        app.close()


# -- the crash test ----------------------------------------------------------------------------


def _crash_test(deployment: Deployment, *, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    deployment.prepare()
    deployment.start()
    clients = Clients(deployment, count=8).start()
    try:
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.0))
            workers = deployment.workers_pids()
            if deployment.workers > 1 and workers and kill % 4:
                # The worker that projects (or any): uvicorn restarts it, a standby takes
                # over the projections. Every fourth kill takes the whole server.
                active = None
                if "postgresql" in deployment.url:
                    active = _active_among(deployment.url, workers)
                os.kill(active or rng.choice(workers), signal.SIGKILL)
                continue
            deployment.kill_server()
            deployment.start()
        time.sleep(0.5)
        clients.stop()
    finally:
        deployment.stop()
    assert len(clients.acknowledged) >= KILLS, "the clients hardly got through"
    return check_survivors(deployment, clients)


@pytest.mark.slow
def test_crash_test_sqlite_one_worker(tmp_path: Path) -> None:
    deployment = Deployment(f"sqlite:///{tmp_path}/ledger.db", tmp_path, workers=1)
    counts = _crash_test(deployment, seed=14)
    assert counts["rows"] >= counts["acknowledged"]


@pytest.mark.slow
@pytest.mark.postgres
def test_crash_test_postgres_two_workers(pg_url: str, tmp_path: Path) -> None:
    deployment = Deployment(pg_url, tmp_path, workers=2)
    counts = _crash_test(deployment, seed=15)
    assert counts["rows"] >= counts["acknowledged"]


def test_a_write_of_a_worker_thread_route_says_its_position_too(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_api
    from ledger.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/ledger.db",
        key_dir=tmp_path / "keys",
        writes_wait_for_read_models=False,
    )
    api = create_api(settings)
    with TestClient(api) as client:
        _, secret = api.state.services.tokens.create(name="admin", role="admin")
        opened = client.post(
            "/api/funds",
            headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "open-1"},
            json={"slug": "tea", "name": "Tea", "currency": "CNY", "host": "h",
                  "committee": ["a", "b"], "approvals_required": 1, "purposes": []},
        )  # fmt: skip
        assert opened.status_code == 201
        position = opened.headers["Ledger-Position"]
        assert int(position) >= 1
        read = client.get("/api/funds/tea", headers={"Ledger-Min-Position": position})
        assert read.status_code == 200
        assert "Ledger-Position" not in read.headers  # only writes say one
