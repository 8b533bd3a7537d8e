"""Group commit: the events of concurrent commands written in one durable transaction.

A durable SQLite commit costs an fsync (about 0.4 ms here), which caps one-command-one-
transaction at ~2,400 commands/s whatever the code does. So a command does its work under
the application's command lock, queues its new events here, releases the lock and waits;
the first waiter becomes the *leader*, takes everything queued so far (up to
``BATCH_WRITES_MAX``) and writes it in one transaction, while the next commands already
run. Alone, a command leads its own one-write batch: no thread hand-off, no added latency.

If a batch's transaction fails, every command in it fails with the same error (an
``IntegrityError`` is retried by the application on fresh state), and so does everything
queued behind it, because those commands were decided on the failed batch's state.

Nothing is reported as recorded before its transaction committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

BATCH_WRITES_MAX = 500
WAIT_SLICE_S = 1.0


@dataclass(eq=False)
class PendingWrite:
    """The events one command saves together (its aggregates, its donor keys)."""

    events: list[Any] = field(default_factory=list)
    aggregates: dict[UUID, Any] = field(default_factory=dict)
    donor_keys: list[Any] = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None
    position: int | None = None  # notification id of its last event, once written


class GroupCommit:
    def __init__(
        self,
        *,
        write: Callable[[list[PendingWrite]], None],
        on_failure: Callable[[list[PendingWrite], BaseException], None],
    ) -> None:
        self._write = write
        self._on_failure = on_failure
        self._cond = threading.Condition()
        self._queue: list[PendingWrite] = []
        self._writing = False
        self._last: PendingWrite | None = None

    def enqueue(self, write: PendingWrite) -> None:
        with self._cond:
            self._queue.append(write)
            self._last = write

    def unfinished_tail(self) -> list[PendingWrite]:
        """The last queued write if not yet durable: a command that only read must not
        answer with state that is not durable yet."""
        with self._cond:
            last = self._last
            return [last] if last is not None and not last.done else []

    def drain(self) -> list[PendingWrite]:
        """Take every queued write out (they fail with the batch before them)."""
        with self._cond:
            drained, self._queue = self._queue, []
            for write in drained:
                write.done = True
            self._cond.notify_all()
            return drained

    def wait(self, write: PendingWrite) -> None:
        """Return once ``write`` is durable; raise its batch's error if it failed."""
        while True:
            with self._cond:
                while not write.done and self._writing:
                    self._cond.wait(WAIT_SLICE_S)
                if write.done:
                    break
                batch = self._queue[:BATCH_WRITES_MAX]
                if write not in batch and write not in self._queue:
                    # Neither done, nor queued, nor being written: never enqueued.
                    raise RuntimeError("waiting for a write that was never queued")
                del self._queue[: len(batch)]
                self._writing = True
            error: BaseException | None = None
            try:
                self._write(batch)
            except BaseException as e:  # every kind of failure fails the whole batch
                error = e
            try:
                if error is not None:
                    self._on_failure(batch, error)
            finally:
                with self._cond:
                    for member in batch:
                        member.error = error
                        member.done = True
                    self._writing = False
                    self._cond.notify_all()
        if write.error is not None:
            raise write.error
