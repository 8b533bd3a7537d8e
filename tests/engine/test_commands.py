"""The command runtime on its own: a counter aggregate, the in-memory store, and a store
that refuses the next writes as stale (``IntegrityError``) — the one retry loop, driven by
a thread and by an event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import EventStore, IntegrityError, Recording

from ledger.engine.commands import COMMAND_ATTEMPTS_MAX, CommandRuntime, command


class Counter(Aggregate):
    @event("Started")
    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


class ConflictingEventStore(EventStore[UUID]):
    """Refuses the next ``conflicts`` writes as another writer's store would."""

    conflicts = 0

    def put(self, events: Sequence[Any], **kwargs: Any) -> list[Recording[UUID]]:
        if self.conflicts:
            self.conflicts -= 1
            raise IntegrityError("a stale write")
        return super().put(events, **kwargs)


class TooManyConflicts(Exception):
    pass


class Counters(CommandRuntime):
    name = "counters"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Counter: 2}
    events: ConflictingEventStore

    def __init__(self) -> None:
        super().__init__(env={"AGGREGATE_CACHE_MAXSIZE": "100", "AGGREGATE_CACHE_FASTFORWARD": "n"})
        self.attempts: list[int] = []

    def construct_event_store(self) -> ConflictingEventStore:
        return ConflictingEventStore(mapper=self.mapper, recorder=self.recorder)

    def too_many_conflicts(self, attempts: int) -> Exception:
        return TooManyConflicts(attempts)

    @command
    def start(self) -> UUID:
        counter = Counter()
        self.save(counter)
        return counter.id

    @command
    def increment(self, counter_id: UUID, *, fail: bool = False) -> int:
        self.attempts.append(self.attempt)
        counter = self._load(counter_id)
        counter.increment()
        if fail:
            raise ValueError("the command's own refusal")
        self.save(counter)
        return int(counter.count)

    def count(self, counter_id: UUID) -> int:
        return int(self._read(lambda: self._load(counter_id, fresh=True)).count)


@pytest.fixture
def app() -> Iterator[Counters]:
    counters = Counters()
    yield counters
    counters.close()


def stored_versions(app: Counters, counter_id: UUID) -> list[int]:
    return [e.originator_version for e in app.events.get(counter_id)]


def test_a_command_meeting_a_stale_write_runs_again_and_is_recorded_once(app: Counters) -> None:
    counter_id = app.start()
    app.events.conflicts = 2

    assert app.increment(counter_id) == 1

    assert app.attempts == [0, 1, 2]
    assert app.conflicts_retried == 2
    assert stored_versions(app, counter_id) == [1, 2]
    assert app.count(counter_id) == 1
    assert app.last_position == 2


def test_a_command_that_keeps_meeting_stale_writes_gives_up(app: Counters) -> None:
    counter_id = app.start()
    app.events.conflicts = COMMAND_ATTEMPTS_MAX

    with pytest.raises(TooManyConflicts):
        app.increment(counter_id)

    assert len(app.attempts) == COMMAND_ATTEMPTS_MAX
    assert stored_versions(app, counter_id) == [1]
    assert app.count(counter_id) == 0
    app.events.conflicts = 0
    assert app.increment(counter_id) == 1  # nothing of the failed attempts was kept


def test_a_refused_command_is_not_retried_and_leaves_the_cache_as_it_was(app: Counters) -> None:
    counter_id = app.start()

    with pytest.raises(ValueError, match="refusal"):
        app.increment(counter_id, fail=True)

    assert app.attempts == [0]
    assert app.count(counter_id) == 0
    assert app.increment(counter_id) == 1


def test_the_event_loop_runner_retries_the_same_way_and_tells_the_position(
    app: Counters,
) -> None:
    counter_id = app.start()
    app.batcher.start_writer()
    try:
        app.events.conflicts = 1
        result, position = asyncio.run(app.run_command_async(lambda: app.increment(counter_id)))
    finally:
        app.batcher.stop_writer()

    assert (result, position) == (1, 2)
    assert app.attempts == [0, 1]
    assert app.conflicts_retried == 1
    assert stored_versions(app, counter_id) == [1, 2]


def test_the_event_loop_runner_gives_up_like_the_thread_runner(app: Counters) -> None:
    counter_id = app.start()
    app.batcher.start_writer()
    try:
        app.events.conflicts = COMMAND_ATTEMPTS_MAX
        with pytest.raises(TooManyConflicts):
            asyncio.run(app.run_command_async(lambda: app.increment(counter_id)))
    finally:
        app.batcher.stop_writer()
    assert len(app.attempts) == COMMAND_ATTEMPTS_MAX


def test_a_snapshot_is_taken_at_save_and_written_with_its_events(app: Counters) -> None:
    counter_id = app.start()
    app.increment(counter_id)  # version 2: the interval

    assert app.snapshots is not None
    (snapshot,) = app.snapshots.get(counter_id)
    assert snapshot.originator_version == 2
    assert snapshot.mutate(None).count == 1
