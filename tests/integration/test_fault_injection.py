"""Storage errors injected at seeded random points during a run of commands: before and
after the event store's commit, and in the read models (a handler failing before the
batch commits, the commit itself failing, a failure after it committed). Clients retry
what failed with the same Idempotency-Key, as the API's clients do.

Checked after every step: no figure invariant is broken (what the fund says it received is
exactly the sum of the donations in the store; nothing acknowledged is missing; no key
made two donations). At the end, with the faults gone: everything retried is recorded once,
the read models converge on the aggregates, and equal a rebuild.

The faults are fakes at boundaries: the event store through the library's
``construct_event_store`` hook, the read models through their handlers, a projection's
``batch_committed`` and SQLAlchemy's ``commit`` event.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import EventStore, OperationalError, Recording
from sqlalchemy import event

from ledger.application import LedgerApp
from ledger.domain.common import entity_id
from ledger.domain.errors import LedgerError
from ledger.settings import Settings
from projections.db import make_engine
from projections.queries import fund_figures
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from tests.conftest import TEA
from tests.read_models_support import break_handlers, dump

STEPS = 250


class InjectedFault(OperationalError):
    """What the fakes raise: a storage error (the kind a full disk or a lost server gives)."""


class Faults:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rate = 0.15
        self.count: dict[str, int] = {}

    def hit(self, where: str) -> bool:
        if self.rate and self.rng.random() < self.rate:
            self.count[where] = self.count.get(where, 0) + 1
            return True
        return False


class FaultyEventStore(EventStore[UUID]):
    faults: Faults | None = None

    def put(self, events: Sequence[Any], **kwargs: Any) -> list[Recording[UUID]]:
        faults = self.faults
        if faults is not None and faults.hit("store before commit"):
            raise InjectedFault("injected: the store refused the write")
        recordings = super().put(events, **kwargs)
        if faults is not None and faults.hit("store after commit"):
            raise InjectedFault("injected: the write committed, its answer was lost")
        return recordings


class LedgerAppOnFaultyStore(LedgerApp):
    name = "ledger"
    events: FaultyEventStore

    def construct_event_store(self) -> FaultyEventStore:
        return FaultyEventStore(mapper=self.mapper, recorder=self.recorder)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
def test_injected_storage_faults_break_no_invariant_and_the_read_models_converge(
    store_url: str,
    seed: int,
    tmp_path: Path,
    clock: Any,
    open_tea: Callable[..., Any],
) -> None:
    settings = Settings(database_url=store_url, key_dir=tmp_path / "keys")
    app = LedgerAppOnFaultyStore(settings, clock=clock.now)
    engine = make_engine(store_url)
    try:
        _run(app, engine, open_tea, seed)
    finally:
        engine.dispose()
        app.close()


def _run(app: LedgerAppOnFaultyStore, engine: Any, open_tea: Any, seed: int) -> None:
    open_tea(app)
    faults = Faults(seed)
    rng = random.Random(seed * 7919)
    runner = ProjectionRunner(app, engine, batch_size=rng.choice([3, 17, 200]))
    runner.catch_up()
    projector = runner.projector

    # The read models' faults.
    for projection in projector.projections:
        break_handlers(
            projection,
            lambda _n: (
                InjectedFault("injected: a read model failed")
                if faults.hit("read model handler")
                else None
            ),
        )
        committed = projection.batch_committed

        def after_commit(committed: Callable[[], None] = committed) -> None:
            committed()
            if faults.hit("read model after commit"):
                raise InjectedFault("injected: lost after the read models committed")

        projection.batch_committed = after_commit  # type: ignore[method-assign]

    def failing_commit(conn: Any) -> None:
        if faults.hit("read model commit"):
            raise InjectedFault("injected: the read models' commit failed")
        if faults.hit("read model commit answer lost"):
            conn.connection.commit()  # it did commit; the answer never came back
            raise InjectedFault("injected: the read models committed, the answer was lost")

    event.listen(engine, "commit", failing_commit)
    app.events.faults = faults

    acknowledged: dict[str, int] = {}  # key -> amount
    pending: dict[str, int] = {}  # failed, to be retried with the same key
    keys = 0
    unexpected: list[BaseException] = []

    def record(key: str, amount: int) -> None:
        try:
            app.record_donation(
                slug=TEA,
                key=key,
                amount_minor=amount,
                received_on="2026-01-15",
                channel="wechat",
                actor="treasurer",
            )
        except (OperationalError, LedgerError) as e:
            if not (isinstance(e, InjectedFault) or "earlier write" in str(e)):
                unexpected.append(e)
            pending[key] = amount
            return
        pending.pop(key, None)
        acknowledged[key] = amount

    for _ in range(STEPS):
        choice = rng.random()
        if choice < 0.6 or not pending:
            keys += 1
            record(f"k{keys}", 100 * rng.randint(1, 500))
        elif choice < 0.8:
            key = rng.choice(sorted(pending))
            record(key, pending[key])
        else:
            try:
                projector.step(limit=runner.batch_size)
            except Exception as e:  # the runner would back off and retry
                if "injected" not in repr(e):
                    unexpected.append(e)
        assert not unexpected, unexpected
        _check_store(app, acknowledged, pending)

    # The faults stop; the clients retry what they have left; the read models catch up.
    faults.rate = 0
    for key, amount in sorted(pending.items()):
        record(key, amount)
    assert not pending
    _check_store(app, acknowledged, pending)
    for _ in range(1_000):
        if not projector.step(limit=runner.batch_size):
            break
    assert set(faults.count) >= {"store before commit", "store after commit"}, faults.count
    head = app.recorder.max_notification_id()
    assert min(projector.positions().values()) == head
    fund = app.get_fund(TEA)
    with engine.connect() as conn:
        figures = fund_figures(conn, TEA)
    assert figures.totals.received_minor == sum(acknowledged.values())
    assert figures.totals.on_hand_minor == sum(fund.on_hand_minor(c) for c in fund.figures)
    event.remove(engine, "commit", failing_commit)
    live = dump(engine)
    assert len(live["rm_donations"]) == len(acknowledged)
    rebuild(app, engine)
    assert dump(engine) == live


def _check_store(app: LedgerApp, acknowledged: dict[str, int], pending: dict[str, int]) -> None:
    fund = app.get_fund(TEA)
    received = sum(f["received"] for f in fund.figures.values())
    # A failed write may or may not be in the store (after commit: it is); nothing else.
    present = 0
    for key, amount in pending.items():
        try:
            donation = app.get_donation(str(entity_id(TEA, "donation", key)))
        except LedgerError:
            continue
        assert donation.amount_minor == amount
        present += amount
    assert received == sum(acknowledged.values()) + present
    for key, amount in list(acknowledged.items())[-5:]:
        assert app.get_donation(str(entity_id(TEA, "donation", key))).amount_minor == amount
