"""Write batching: the events of concurrent commands written in one durable transaction.

What it makes fast: durable writes under concurrency (one fsync for many commands).

A durable SQLite commit costs an fsync (about 0.4 ms here), which caps one-command-one-
transaction at ~2,400 commands/s whatever the code does. So a command does its work under
the application's command lock, queues its new events here, releases the lock and waits.
The command that finds no writer at work becomes the *leader*: it takes everything queued so
far (up to ``BATCH_WRITES_MAX``) and writes it in one transaction, while the next commands
already run and queue behind it. When the batch is durable the leader wakes exactly the
commands of that batch, and hands the lead to the first command still queued (one targeted
wake-up, no thundering herd). Alone, a command leads its own one-write batch: no thread
hand-off, no added latency.

If a batch's transaction fails, every command in it fails with the same error (an
``IntegrityError`` is retried by the application on fresh state), and so does everything
queued behind it, because those commands were decided on the failed batch's state.

Nothing is reported as recorded before its transaction committed.

``after_write(batch)`` runs in the leader's thread once a batch is durable, before its
commands are woken (the lead has passed on by then): the HTTP API brings the read models up
to the batch there, so that its waiting commands find their writes projected.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

log = logging.getLogger(__name__)

BATCH_WRITES_MAX = 500
WAIT_SLICE_S = 1.0


class _Signal:
    """A one-waiter wake-up: a lock held until ``set`` (a ``threading.Event`` costs a
    condition and a lock per command; the thread that waits is always the write's own)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        with contextlib.suppress(RuntimeError):  # already set
            self._lock.release()

    def wait(self, timeout_s: float) -> None:
        """Return when set (and reset it), or after ``timeout_s``."""
        self._lock.acquire(timeout=timeout_s)


@dataclass(eq=False)
class PendingWrite:
    """The events one command saves together (its aggregates, its donor keys)."""

    events: list[Any] = field(default_factory=list)
    aggregates: dict[UUID, Any] = field(default_factory=dict)
    donor_keys: list[Any] = field(default_factory=list)
    snapshots: list[Any] = field(default_factory=list)  # stored, written after the commit
    done: bool = False
    error: BaseException | None = None
    position: int | None = None  # notification id of its last event, once written
    lead: bool = False  # this command's thread writes the next batch
    woken: _Signal = field(default_factory=_Signal)
    # Called (in the writing thread) once the write is done or failed (``when_done``). Several
    # commands may wait for one write (a retry answered from a write not yet durable).
    on_done: list[Callable[[PendingWrite], None]] = field(default_factory=list)


class WriteBatcher:
    """Queues the writes of commands and writes them in batches (see the module docstring)."""

    def __init__(
        self,
        *,
        write: Callable[[list[PendingWrite]], None],
        on_failure: Callable[[list[PendingWrite], BaseException], list[PendingWrite]],
        after_write: Callable[[list[PendingWrite]], None] | None = None,
    ) -> None:
        self._write = write
        self._on_failure = on_failure
        self._after_write = after_write
        self._lock = threading.Lock()
        self._queue: list[PendingWrite] = []
        self._writing = False
        self._last: PendingWrite | None = None
        # A dedicated writer thread (``start_writer``) instead of leading commands.
        self._writer: threading.Thread | None = None
        self._queued = threading.Event()
        self._stopping = False

    def enqueue(self, write: PendingWrite) -> None:
        with self._lock:
            self._queue.append(write)
            self._last = write
            if self._writer is not None:
                self._queued.set()
            elif not self._writing:
                self._writing = True
                write.lead = True

    def when_done(self, write: PendingWrite, callback: Callable[[PendingWrite], None]) -> None:
        """Call ``callback(write)`` once it is done (at once if it is): for a caller that
        does not block in ``wait`` (an event loop). Needs the writer thread, since such a
        caller never leads a batch."""
        with self._lock:
            if not write.done:
                write.on_done.append(callback)
                return
        callback(write)

    @property
    def has_writer(self) -> bool:
        return self._writer is not None

    def start_writer(self) -> None:
        """Write every batch in one thread of its own from now on (a server: commands
        queue and wait, or are told by ``when_done``; none of them leads)."""
        with self._lock:
            if self._writer is not None:
                return
            self._stopping = False
            thread = threading.Thread(target=self._write_all, name="ledger-writer", daemon=True)
            self._writer = thread
            # A write queued before, with a leader waiting: the writer takes over.
            if self._queue:
                self._queued.set()
        thread.start()

    def stop_writer(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, stop the thread; commands lead their batches again."""
        with self._lock:
            thread = self._writer
            if thread is None:
                return
            self._stopping = True
            self._queued.set()
        thread.join(timeout_s)
        with self._lock:
            self._writer = None
            if self._queue and not self._writing:
                self._writing = True
                self._queue[0].lead = True
                self._queue[0].woken.set()

    def _write_all(self) -> None:
        while True:
            self._queued.wait(WAIT_SLICE_S)
            with self._lock:
                if not self._queue:
                    self._queued.clear()
                    if self._stopping:
                        return
                    continue
                if self._writing:  # a command still leads a batch begun before
                    self._queued.clear()
                    continue
                self._writing = True
            try:
                self._lead()
            except Exception:  # the batch failed and so did its recovery: its writes know
                log.exception("writing a batch failed")

    def unfinished_tail(self) -> list[PendingWrite]:
        """The last queued write if not yet durable: a command that only read must not
        answer with state that is not durable yet."""
        with self._lock:
            last = self._last
            return [last] if last is not None and not last.done else []

    def drain(self) -> list[PendingWrite]:
        """Take every queued write out (they fail with the batch before them). Called by
        ``on_failure`` while the application's command lock keeps new ones out."""
        with self._lock:
            drained, self._queue = self._queue, []
        return drained

    def wait(self, write: PendingWrite) -> None:
        """Return once ``write`` is durable; raise its batch's error if it failed."""
        while not write.done:
            if write.lead:
                self._lead()
            else:
                write.woken.wait(WAIT_SLICE_S)
        if write.error is not None:
            raise write.error

    def _lead(self) -> None:
        """Write one batch (the leader's own write is in it), then pass the lead on."""
        with self._lock:
            batch = self._queue[:BATCH_WRITES_MAX]
            del self._queue[: len(batch)]
        error: BaseException | None = None
        drained: list[PendingWrite] = []
        try:
            self._write(batch)
        except BaseException as e:  # every kind of failure fails the whole batch
            error = e
            try:
                drained = self._on_failure(batch, error)
            except BaseException:
                drained = self.drain()
                raise
        finally:
            successor: PendingWrite | None = None
            with self._lock:
                if error is not None:
                    for member in batch:
                        member.error = error
                        member.done = True
                for member in drained:
                    member.error = _follow_failure(error) if error else None
                    member.done = True
                if self._writer is not None:
                    self._writing = False  # the writer thread takes the next batch
                    if self._queue:
                        self._queued.set()
                elif self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                else:
                    self._writing = False
            # The next batch is written while this one's ``after_write`` runs.
            if successor is not None:
                successor.woken.set()
            try:
                if error is None and self._after_write is not None:
                    self._after_write(batch)
            except Exception:  # its work is an optimisation; the batch is durable
                log.exception("after_write failed; the batch was recorded")
            finally:
                with self._lock:
                    if error is None:
                        for member in batch:
                            member.done = True
                    told = [(m, list(m.on_done)) for m in (*batch, *drained) if m.on_done]
                for member in (*batch, *drained):
                    member.woken.set()
                for member, callbacks in told:
                    for callback in callbacks:
                        try:
                            callback(member)
                        except Exception:
                            log.exception("a write's on_done callback failed")


def _follow_failure(error: BaseException) -> BaseException:
    return IntegrityError(f"an earlier write of the same group failed: {error}")
