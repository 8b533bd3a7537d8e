"""The command runtime: the part of the application that runs its use cases fast and safely.

What it makes fast:

- Commands of one process run one at a time, under the *command lock*, on the live cached
  aggregates: no defensive deep copy, no query per load to fast-forward the cache.
- ``save`` inside a command does not write: it queues the events for the write batcher
  (``ledger.engine.batching``), and the command waits for them after releasing the lock, so
  the next command runs while the batch is made durable.
- A snapshot is taken from the live aggregate when a save reaches an interval, and written
  once the events it sums up are durable (the library reads the aggregate back instead).
- Aggregates are rebuilt with ``replay``, the library's projector without its per-event
  ``isinstance`` check.

What it keeps safe:

- **One retry loop** (``_retrying``) for every entry point: ``run_command`` (threads: waits
  for the writes) and ``run_command_async`` (an event loop: awaits them). A stale write
  (the store's ``IntegrityError``, from this process's batch or another process's write)
  runs the command again on fresh state, after a jittered pause, at most
  ``COMMAND_ATTEMPTS_MAX`` times; then ``too_many_conflicts()`` is raised.
- What a failed attempt changed in the cache is evicted; a failed batch fails everything
  queued after it and empties the cache, under the command lock.
- A command that only read waits for the last write not yet durable, so that it never
  answers with state that could still be lost.

Generic: nothing here imports a domain module. The application names its aggregate types
in the library's class attributes (``snapshotting_intervals``, ``snapshotting_projectors``)
and says what to raise after too many conflicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import Application, LRUCache, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import EventStore, IntegrityError, Recording, Transcoder
from eventsourcing.utils import resolve_topic

from ledger.engine.batching import PendingWrite, WriteBatcher
from ledger.engine.transcoder import LedgerTranscoder

log = logging.getLogger(__name__)

COMMAND_ATTEMPTS_MAX = 20
RETRY_BACKOFF_S_MAX = 0.02

A = TypeVar("A")
P = ParamSpec("P")
R = TypeVar("R", bound="CommandRuntime")


def replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's ``project_aggregate`` without its per-event ``isinstance`` check against
    a Protocol, which costs about half of a replay on Python 3.11."""
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def retry_delay_s(attempt: int) -> float:
    """How long a command waits before its next attempt after a conflict (jittered)."""
    return random.uniform(0, RETRY_BACKOFF_S_MAX * min(attempt + 1, 5))


def command(method: Callable[Concatenate[R, P], A]) -> Callable[Concatenate[R, P], A]:
    """Make a use case a command: each call runs it through ``run_command`` (under the
    command lock, its saves batched, run again on a conflict). Its body is one attempt, and
    may run more than once: it loads, decides and saves, and keeps nothing between attempts."""

    @functools.wraps(method)
    def run(self: R, /, *args: P.args, **kwargs: P.kwargs) -> A:
        return self.run_command(lambda: method(self, *args, **kwargs))

    return run


@dataclass(frozen=True, slots=True)
class _Wait:
    """A step of the retry loop: the driver waits for these writes to be durable."""

    writes: list[PendingWrite]


@dataclass(frozen=True, slots=True)
class _Sleep:
    """A step of the retry loop: the driver pauses before the next attempt."""

    delay_s: float


class _CommandState(threading.local):
    """What the running command of this thread has queued."""

    def __init__(self) -> None:
        self.active = False
        self.writes: list[PendingWrite] = []
        self.position: int | None = None
        self.attempt = 0  # the running attempt's number (0 first)
        # ``run_command_async``: where an attempt's writes go (awaited, not waited for).
        self.deferred: list[PendingWrite] | None = None


class CurrentSnapshots(EventStore[UUID]):
    """The snapshot store, giving only snapshots the aggregate's class can still read.

    A snapshot is an optimisation, never the record: an aggregate class that keeps state its
    older snapshots cannot supply (a date the old layout did not hold) declares
    ``snapshot_class_version_min``, and a snapshot of an older class version is passed over,
    so the aggregate is replayed from its events and snapshotted afresh at its next interval.
    Upcasters (``upcast_vN_vM``) still read the snapshots at or above that version.
    """

    def get(
        self,
        originator_id: UUID,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[Any]:
        for snapshot in super().get(originator_id, gt=gt, lte=lte, desc=desc, limit=limit):
            if _readable(snapshot):
                yield snapshot


def _readable(snapshot: Any) -> bool:
    state = getattr(snapshot, "state", None)
    if not isinstance(state, dict):
        return True
    minimum = getattr(resolve_topic(snapshot.topic), "snapshot_class_version_min", 1)
    return int(state.get("class_version", 1)) >= minimum


class CommandRuntime(Application[UUID]):
    """An eventsourcing Application whose commands run through the runtime above."""

    def __init__(self, env: dict[str, str]) -> None:
        # Commands of this process run one at a time and work on the cached aggregates
        # themselves (no defensive deep copy); what a failed command changed is evicted.
        # Their events are written in batches (``WriteBatcher``). Other processes are seen
        # through the store's optimistic concurrency: IntegrityError, then a retry on fresh
        # state.
        self._command_lock = threading.RLock()
        self._touched: set[UUID] = set()
        self._in_command = _CommandState()
        self._batcher = WriteBatcher(
            write=self._write_batch, on_failure=self._batch_failed, after_write=self._written
        )
        # Called with the log position of a durable batch's last event, in the thread that
        # wrote it, before the batch's commands return (see ``WriteBatcher``).
        self.after_write: list[Callable[[int], None]] = []
        self.conflicts_retried = 0
        super().__init__(env=env)

    def too_many_conflicts(self, attempts: int) -> Exception:
        """What a command raises when ``attempts`` attempts all met a conflict."""
        return IntegrityError(f"the store kept changing under this command ({attempts} attempts)")

    @property
    def batcher(self) -> WriteBatcher:
        return self._batcher

    @property
    def last_position(self) -> int | None:
        """The log position of the last event written by this thread's last command."""
        return self._in_command.position

    @property
    def attempt(self) -> int:
        """The number of the running command's attempt (0 first, 1 after a conflict, ...)."""
        return self._in_command.attempt

    # -- running commands --------------------------------------------------------------------

    def run_command(self, call: Callable[[], A]) -> A:
        """Run ``call`` (one attempt of a command) until its writes do not conflict, and wait
        until they are durable. Inside ``run_command_async``: one attempt, not waited for."""
        state = self._in_command
        if state.deferred is not None:
            result, writes = self._run_once(call, state.attempt)
            state.deferred.extend(writes)
            return result
        steps = self._retrying(lambda attempt: self._run_once(call, attempt))
        result, position = _drive(steps, self._wait_for)
        if position is not None:
            state.position = position
        return result

    async def run_command_async(self, call: Callable[[], A]) -> tuple[A, int | None]:
        """``run_command`` for an event loop: ``call`` (a use case, say
        ``lambda: app.record_donation(...)``) runs here, its writes are awaited (told by the
        batcher's writer thread, which must be started). Returns the result and the log
        position of its last write (None if it wrote nothing)."""
        loop = asyncio.get_running_loop()

        async def wait(writes: list[PendingWrite]) -> None:
            await asyncio.gather(*(self._when_done(loop, w) for w in writes))

        steps = self._retrying(lambda attempt: self._attempt_once(call, attempt))
        return await _drive_async(steps, wait)

    def _retrying(
        self, run: Callable[[int], tuple[A, list[PendingWrite]]]
    ) -> Generator[_Wait | _Sleep, None, tuple[A, int | None]]:
        """The retry loop, without its waiting: ``run(attempt)`` runs one attempt and gives
        its writes; the loop yields them to be waited for (the driver throws their
        ``IntegrityError`` back in) and, after a conflict, the pause before the next attempt.
        Returns the result and the log position of its last write."""
        for attempt in range(COMMAND_ATTEMPTS_MAX):
            try:
                result, writes = run(attempt)
                yield _Wait(writes)
            except IntegrityError:
                self.conflicts_retried += 1
                yield _Sleep(retry_delay_s(attempt))
                continue
            positions = [w.position for w in writes if w.position is not None]
            return result, max(positions, default=None)
        raise self.too_many_conflicts(COMMAND_ATTEMPTS_MAX)

    def _run_once(self, call: Callable[[], A], attempt: int) -> tuple[A, list[PendingWrite]]:
        """One attempt under the command lock: its result and the writes it queued (or, if
        it wrote nothing, the last write not yet durable). What a failed attempt changed in
        the cache is evicted."""
        with self._command_lock:
            self._touched = set()
            state = self._in_command
            state.active, state.writes, state.attempt = True, [], attempt
            try:
                result = call()
                return result, state.writes or self._batcher.unfinished_tail()
            except BaseException:
                self._evict_mutated()
                raise
            finally:
                state.active = False

    def _attempt_once(self, call: Callable[[], A], attempt: int) -> tuple[A, list[PendingWrite]]:
        """Run a use case once, its writes collected rather than waited for."""
        state = self._in_command
        if state.deferred is not None:
            raise RuntimeError("run_command_async() does not nest")
        state.deferred, state.attempt = [], attempt
        try:
            result = call()
            return result, state.deferred
        finally:
            state.deferred, state.attempt = None, 0

    def _wait_for(self, writes: list[PendingWrite]) -> None:
        for write in writes:
            self._batcher.wait(write)

    def _when_done(self, loop: asyncio.AbstractEventLoop, write: PendingWrite) -> Awaitable[None]:
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if future.done():
                return
            if write.error is not None:
                future.set_exception(write.error)
            else:
                future.set_result(None)

        def done(_: PendingWrite) -> None:
            loop.call_soon_threadsafe(resolve)

        self._batcher.when_done(write, done)
        return future

    # -- loading -----------------------------------------------------------------------------

    def _load(self, aggregate_id: UUID, *, fresh: bool = False) -> Any:
        """The live cached aggregate, for a command holding the command lock.

        The cache is not fast-forwarded on every load (one query less per command): a
        command that saves what it read is protected by the store's version check, and a
        command that decides on something it does not save asks for a ``fresh`` copy,
        brought up to date with what other processes wrote.
        """
        self._touched.add(aggregate_id)
        aggregate = self.repository.get(
            aggregate_id, projector_func=replay, deepcopy_from_cache=False
        )
        if fresh:
            newer = list(self.events.get(aggregate_id, gt=aggregate.version))
            if newer:
                try:
                    aggregate = replay(aggregate, newer)
                except Exception:
                    # Another process wrote what this one has queued: start again.
                    self._touched.discard(aggregate_id)
                    self._evict(aggregate_id)
                    raise IntegrityError(f"aggregate {aggregate_id} changed elsewhere") from None
        return aggregate

    def _read(self, load: Callable[[], A]) -> A:
        """A copy of what ``load`` returns, taken under the command lock (a reader never
        sees a command half done, and never holds the live aggregate)."""
        with self._command_lock:
            return deepcopy(load())

    def _exists(self, aggregate_id: UUID, *, cache_only: bool = False) -> bool:
        cache = self.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id)
                return True
        if cache_only:
            return False
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _evict(self, aggregate_id: UUID) -> None:
        cache = self.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def _evict_mutated(self) -> None:
        """Forget aggregates a failed command changed (their new events were never queued)."""
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate_id in self._touched:
            try:
                aggregate = cache.get(aggregate_id)
            except KeyError:
                continue
            if isinstance(aggregate, Aggregate) and aggregate.pending_events:
                cache.get(aggregate_id, evict=True)
        self._touched = set()

    # -- saving ------------------------------------------------------------------------------

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Queue the new events of ``objs`` for the write batcher (inside a command), or
        write them at once (outside one). ``kwargs`` reach the recorder (donor keys)."""
        if not self._in_command.active:
            return super().save(*objs, **kwargs)
        write = PendingWrite(donor_keys=list(kwargs.pop("donor_keys", ())))
        if kwargs:
            raise TypeError(f"unexpected save() arguments: {sorted(kwargs)}")
        cache = self.repository.cache
        for obj in objs:
            if obj is None:
                continue
            events = obj.collect_events()
            write.events.extend(events)
            write.aggregates[obj.id] = obj
            self._snapshot_if_due(obj, events, write)
            if cache is not None:
                # Later commands of this process build on it before it is durable.
                cache.put(obj.id, obj)
        self._batcher.enqueue(write)
        self._in_command.writes.append(write)
        return []

    def _snapshot_if_due(self, aggregate: Any, events: list[Any], write: PendingWrite) -> None:
        """Take the aggregate's snapshot now if its new events reach a snapshotting interval.

        The library would read the aggregate back from the store after the commit (up to an
        interval of events replayed, in the committing thread). Here the live aggregate is
        at hand: its snapshot is encoded at once (later commands change the object) and
        written once the write is durable — never if the write fails.
        """
        if self.snapshots is None or not events:
            return
        interval = self.snapshotting_intervals.get(type(aggregate))
        if interval is None:
            return
        first, last = events[0].originator_version, events[-1].originator_version
        if last // interval == (first - 1) // interval:
            return
        snapshot_class = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
        if snapshot_class is None:
            return
        snapshot = snapshot_class.take(aggregate)
        write.snapshots.append(self.snapshots.mapper.to_stored_event(snapshot))

    def _write_batch(self, batch: list[PendingWrite]) -> None:
        """One transaction for every write of the batch; then snapshots (best effort)."""
        events: list[Any] = []
        donor_keys: list[Any] = []
        snapshots: list[Any] = []
        for write in batch:
            events.extend(write.events)
            donor_keys.extend(write.donor_keys)
            snapshots.extend(write.snapshots)
        recordings = self.events.put(events, donor_keys=donor_keys)
        if recordings:
            offset = 0
            for write in batch:
                count = len(write.events)
                if count:
                    write.position = recordings[offset + count - 1].notification.id
                offset += count
        if snapshots and self.snapshots is not None:
            # An optimisation written after the commit: its failure must not make a
            # committed command look failed.
            try:
                with getattr(self.recorder, "write_lock", contextlib.nullcontext()):
                    self.snapshots.recorder.insert_events(snapshots)
            except Exception:
                log.exception("writing a snapshot failed; the events were recorded")

    def _written(self, batch: list[PendingWrite]) -> None:
        if not self.after_write:
            return
        positions = [w.position for w in batch if w.position is not None]
        if positions:
            last = max(positions)
            for callback in self.after_write:
                callback(last)

    def _batch_failed(self, batch: list[PendingWrite], error: BaseException) -> list[PendingWrite]:
        """A batch's transaction failed: everything queued after it was computed on its
        state, so it fails too (to be retried), and the cache forgets that state. Both under
        the command lock, so no command decides on the failed state afterwards."""
        with self._command_lock:
            later = self._batcher.drain()
            _clear_cache(self.repository.cache)
        return later

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        # A save outside a command (the library's path). A snapshot is an optimisation
        # taken after the commit: its failure must not make a committed save look failed.
        try:
            super()._take_snapshots(processing_event)
        except Exception:
            log.exception("taking a snapshot failed; the events were recorded")

    def construct_snapshot_store(self) -> EventStore[UUID]:
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return CurrentSnapshots(mapper=self.mapper, recorder=recorder)

    def construct_transcoder(self) -> Transcoder:
        transcoder = LedgerTranscoder()
        self.register_transcodings(transcoder)
        return transcoder


def _drive(
    steps: Generator[_Wait | _Sleep, None, tuple[A, int | None]],
    wait: Callable[[list[PendingWrite]], None],
) -> tuple[A, int | None]:
    """Run the retry loop in this thread: sleep its pauses, wait for its writes."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, _Sleep):
                time.sleep(step.delay_s)
                step = next(steps)
                continue
            try:
                wait(step.writes)
            except IntegrityError as error:
                step = steps.throw(error)
            else:
                step = next(steps)
    except StopIteration as done:
        outcome: tuple[A, int | None] = done.value
        return outcome
    finally:
        steps.close()


async def _drive_async(
    steps: Generator[_Wait | _Sleep, None, tuple[A, int | None]],
    wait: Callable[[list[PendingWrite]], Awaitable[None]],
) -> tuple[A, int | None]:
    """Run the retry loop on an event loop: await its pauses and its writes."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, _Sleep):
                await asyncio.sleep(step.delay_s)
                step = next(steps)
                continue
            try:
                await wait(step.writes)
            except IntegrityError as error:
                step = steps.throw(error)
            else:
                step = next(steps)
    except StopIteration as done:
        outcome: tuple[A, int | None] = done.value
        return outcome
    finally:
        steps.close()


def _clear_cache(cache: Any) -> None:
    """Empty the repository's cache. (``LRUCache.clear()`` of eventsourcing 9.5.6 resets
    only its recency list and leaves the entries in place.)"""
    if cache is None:
        return
    if isinstance(cache, LRUCache):
        with cache.lock:
            cache.cache.clear()
            cache.clear()
            cache.full = False
    else:
        cache.cache.clear()
