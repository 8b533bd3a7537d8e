"""Writers project their own writes: the group commit's leader brings the read models up to
its batch before its commands return, and ``wait_for(project=True)`` applies the next batch
in the calling thread. The runner's own thread is kept asleep here (a long poll interval,
never woken), so whatever gets projected was projected inline. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from read_models_support import (  # type: ignore[import-not-found]
    TEA,
    db_url,
    dump,
    engine,
    new_history,
)
from sqlalchemy import Engine

from api.writes import Services
from ledger.application import DonorIn
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner

__all__ = ["db_url", "engine"]  # fixtures, re-exported for pytest

ASLEEP_S = 3600.0  # the runner's thread polls this rarely: it never does the work here


def sleepy_runner(app: Any, engine: Engine) -> ProjectionRunner:
    runner = ProjectionRunner(app, engine, poll_interval_s=ASLEEP_S, safety_poll_s=ASLEEP_S)
    runner.catch_up()
    runner.start()
    # It takes the work (PostgreSQL: the advisory lock), finds nothing new, then sleeps.
    deadline = time.monotonic() + 30
    while not (runner.active and runner._positions.ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.active
    assert runner._positions.ready
    return runner


def keep_asleep(runner: ProjectionRunner) -> Callable[[], None]:
    """Stop ``wait_for`` from waking the runner's thread; returns the undo."""
    wake = runner._wake.set
    runner._wake.set = lambda: None  # type: ignore[method-assign]

    def undo() -> None:
        runner._wake.set = wake  # type: ignore[method-assign]

    return undo


def donate(app: Any, key: str, amount_minor: int = 1_000) -> int:
    app.record_donation(
        slug=TEA,
        key=key,
        amount_minor=amount_minor,
        received_on="2026-11-20",
        channel="cash",
        donor=DonorIn(anonymous=True),
        actor="t",
    )
    position = app.last_position
    assert position is not None
    return int(position)


def test_project_up_to_applies_the_batch_in_the_calling_thread(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=21).run(20)
    runner = sleepy_runner(app, engine)
    try:
        position = donate(app, "inline-1")
        if not db_url.startswith("postgresql"):  # (there, NOTIFY wakes the runner's thread)
            assert min(runner.positions().values()) < position  # nobody projected it yet
        runner.project_up_to(position, timeout_s=10)
        assert min(runner.positions().values()) >= position
    finally:
        runner.stop()


def test_wait_for_with_project_does_the_work_itself(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=22).run(10)
    runner = sleepy_runner(app, engine)
    try:
        position = donate(app, "inline-2")
        awake = keep_asleep(runner)
        if not db_url.startswith("postgresql"):  # (there, NOTIFY wakes the runner's thread)
            assert runner.wait_for(position, timeout_s=0.3) is False  # nobody works
        assert runner.wait_for(position, timeout_s=10, project=True)
        assert min(runner.positions().values()) >= position
        awake()
    finally:
        runner.stop()


def test_the_api_services_project_each_batch_before_its_commands_return(
    make_app: Any, db_url: str, engine: Engine, settings_for: Any, tmp_path: Path
) -> None:
    app = make_app(db_url)
    new_history(app, seed=23).run(10)
    services = Services.open(settings_for(db_url, tmp_path), app=app)
    try:
        runner = services.runner
        assert runner.project_up_to in app.after_write
        assert runner.wait_for(app.recorder.max_notification_id(), timeout_s=30)
        awake = keep_asleep(runner)
        positions: list[int] = []
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(10):
                    # The command alone, no wait_for: the leader's after_write projected it.
                    positions.append(donate(app, f"api-{n}-{i}", 100 + i))
                    assert min(runner.positions().values()) >= positions[-1]
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[0]
        assert len(positions) == 60
        awake()
        live = dump(engine)
        rebuild(app, engine)
        assert dump(engine) == live  # what was projected inline equals a rebuild
    finally:
        services.close()
    assert runner.project_up_to not in app.after_write  # closed: no longer called


def test_write_async_retries_a_conflict_with_another_process(
    make_app: Any, db_url: str, engine: Engine, settings_for: Any, tmp_path: Path
) -> None:
    """The event loop's path (``Services.write_async``): the command runs in the loop, its
    write is awaited; a write refused because another process changed the fund runs the
    command again on fresh state."""
    app = make_app(db_url)
    new_history(app, seed=24).run(5)
    other = make_app(db_url)  # another process on the same database
    services = Services.open(settings_for(db_url, tmp_path), app=app)
    try:
        assert app.batcher.has_writer
        app.get_fund(TEA)  # this process caches the fund ...
        other.record_donation(  # ... which the other one then changes
            slug=TEA, key="elsewhere", amount_minor=700, received_on="2026-11-20",
            channel="cash", actor="t",
        )  # fmt: skip
        before = app.conflicts_retried

        async def record() -> Any:
            return await services.write_async(
                lambda: app.record_donation(
                    slug=TEA,
                    key="async-1",
                    amount_minor=300,
                    received_on="2026-11-20",
                    channel="cash",
                    actor="t",
                )
            )

        recorded = asyncio.run(record())
        assert recorded.created
        assert app.conflicts_retried > before
        fund = make_app(db_url).get_fund(TEA)
        receipts = fund.receipt_seq["2026"]
        assert recorded.value.receipt_no == f"{TEA}-2026-{receipts:06d}"  # the last one
        position = app.recorder.max_notification_id()
        assert min(services.runner.positions().values()) >= position  # and projected
    finally:
        services.close()
    assert not app.batcher.has_writer
