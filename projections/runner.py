"""The projection runner: a thread that keeps the read models up with the event log.

- Wakes on news: on SQLite it polls (``poll_interval_s``); on PostgreSQL it LISTENs on the
  library's channel (the events table's name, ``ledger_events``) and still polls every
  ``safety_poll_s``, so a lost NOTIFY cannot stall it (``projections.engine.listener``).
  ``wait_for()`` pokes it at once.
- One runner per store works, the others stand by and try again every ``standby_poll_s``
  (1 s): on PostgreSQL through a session advisory lock (a second host's ``ledger serve``
  stands by), on SQLite through an exclusive ``flock`` of ``<database>.projector.lock``
  (several workers of one host). Either lock goes with the process that held it (a
  SIGKILL too), and a standby takes over within about a second; the tracking positions,
  written in each batch's transaction, make the hand-over exactly-once.
- A failing batch is rolled back, logged with the event's position, and retried with
  exponential backoff. A projection that keeps failing (``attempts_max`` times without
  getting past the event it failed on, whether a handler raised or its rows could not be
  written) is set aside — logged, shown by ``status()`` and ``/api/health``, ``wait_for``
  no longer waits for it — while the others go on; a restart tries it again. A database that is
  busy or gone is retried without limit (backoff capped at ``backoff_s_max``).
- Before it starts, a projection whose tables were made by another version of the code is
  rebuilt (``projections.rebuild``).
- It feeds the registry's projections (``projections.registry.PROJECTIONS``), or the list
  it is given.

``wait_for(position, timeout_s)`` blocks, bounded, until every projection has processed
the log up to ``position``: the API calls it after a write so that a client reads its own
writes.

(About 500 lines: the thread's life, the waits it answers and its failures share one lock
and one set of positions; the machinery it drives is in ``projections.engine``.)
"""

from __future__ import annotations

import fcntl
import heapq
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from eventsourcing.application import Application
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ledger.audit.note import Ed25519Signer
from projections.audit import CHECKPOINT_EVERY, AuditProjection, sign_due, signing_key_or_none
from projections.db import psycopg_conninfo, store_of
from projections.engine.listener import Listener
from projections.engine.projector import BATCH_EVENTS_MAX, Projector
from projections.engine.transactions import write_engine
from projections.errors import ProjectionError
from projections.projection import Projection
from projections.rebuild import rebuild
from projections.registry import PROJECTIONS, ensure_schema, projection_classes, stale_projections
from projections.status import Failure, ProjectionStatus, projection_status
from projections.tables import LIVE

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05  # SQLite: how often to look for new events
# After a batch that found events, wait this long before the next one: under load, writes
# arrive every few hundred microseconds, and one read-model commit per handful of events
# costs more than the few milliseconds a reader waits for its own write.
COALESCE_S = 0.005
SAFETY_POLL_S = 5.0  # PostgreSQL: look even without a NOTIFY
STANDBY_POLL_S = 1.0  # a runner standing by tries to take the work this often
REMOTE_POLL_S = 0.01  # ``wait_for`` on positions another process writes: how often to look
LISTEN_SLICE_S = 0.25  # PostgreSQL: how long one wait for a NOTIFY blocks
ATTEMPTS_MAX = 5  # per projection and event, before it is set aside
BACKOFF_S_FIRST = 0.1
BACKOFF_S_MAX = 30.0
LIVE_BATCH_EVENTS = 1_000
WAIT_FOR_TIMEOUT_S_MAX = 60.0
STOP_TIMEOUT_S = 30.0


def backoff_s(attempt: int, *, first_s: float = BACKOFF_S_FIRST) -> float:
    return float(min(BACKOFF_S_MAX, first_s * 2 ** max(0, attempt - 1)))


@dataclass
class _Positions:
    """What the runner's thread tells waiters."""

    values: dict[str, int] = field(default_factory=dict)
    ready: bool = False


class ProjectionRunner:
    """Runs projections in a thread of this process. Use as a context manager, or
    ``start()`` / ``stop()``."""

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        *,
        names: Iterable[str] | None = None,
        projections: Sequence[type[Projection[Any]]] = PROJECTIONS,
        poll_interval_s: float = POLL_INTERVAL_S,
        coalesce_s: float = COALESCE_S,
        safety_poll_s: float = SAFETY_POLL_S,
        batch_size: int = LIVE_BATCH_EVENTS,
        attempts_max: int = ATTEMPTS_MAX,
        backoff_s_first: float = BACKOFF_S_FIRST,
        exclusive: bool = True,
        rebuild_stale: bool = True,
        standby_poll_s: float = STANDBY_POLL_S,
    ) -> None:
        if not 1 <= batch_size <= BATCH_EVENTS_MAX:
            raise ValueError(f"batch_size must be 1..{BATCH_EVENTS_MAX}")
        self.app = app
        self.engine = engine
        self.classes = projection_classes(names, among=projections)
        self.projections: list[Projection[Any]] = [cls(LIVE) for cls in self.classes]
        self.projector = Projector(app, engine, self.projections)
        self.poll_interval_s = poll_interval_s
        self.coalesce_s = coalesce_s
        self.safety_poll_s = safety_poll_s
        self.batch_size = batch_size
        self.attempts_max = attempts_max
        self.backoff_s_first = backoff_s_first
        self.exclusive = exclusive
        self.rebuild_stale = rebuild_stale
        self.standby_poll_s = standby_poll_s
        self._file_lock: int | None = None  # SQLite: the descriptor holding the flock
        self.is_postgres = engine.dialect.name == "postgresql"
        self.failures: dict[str, Failure] = {}
        self._attempts: dict[tuple[str, int], int] = {}
        self._stop: int | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._guard = threading.Lock()
        self._positions = _Positions()
        # Threads in ``wait_for``: (position, tie-breaker, lock held until it is reached).
        # ``_publish`` releases exactly those whose position is reached: one wake-up each,
        # not every waiter on every batch.
        self._waiters: list[tuple[int, int, threading.Lock]] = []
        self._waiter_seq = 0
        # Held by whoever applies a batch: the runner's thread, or a writer waiting for its
        # own write (``wait_for(project=True)``). The projector is driven by one at a time.
        self._step_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None
        self.active = False  # holds the work (PostgreSQL: the advisory lock)
        self.error: BaseException | None = None  # what ended the thread, if anything
        self._signer: Ed25519Signer | bool | None = None  # None: not looked for; False: none
        self._checked_size = -CHECKPOINT_EVERY  # the tree's size when checkpoints were signed

    # -- life --------------------------------------------------------------------------------

    def start(self) -> ProjectionRunner:
        if self._thread is not None:
            raise RuntimeError("the runner is already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="ledger-projections", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("the projection runner did not stop within %.0f s", timeout_s)
        self._wake_waiters(None)

    def __enter__(self) -> ProjectionRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def join(self, timeout_s: float | None = None) -> None:
        """Block while the runner runs (``ledger projector`` in the foreground)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- reading -----------------------------------------------------------------------------

    def positions(self) -> dict[str, int]:
        with self._guard:
            if self._positions.ready:
                return dict(self._positions.values)
        return self._db_positions()

    def lag(self) -> dict[str, int]:
        head = self.app.recorder.max_notification_id() or 0
        return {name: max(0, head - pos) for name, pos in self.positions().items()}

    def status(self) -> list[ProjectionStatus]:
        return projection_status(self.app, self.engine, self.failures, projections=self.classes)

    def wait_for(
        self, position: int | None, timeout_s: float = 5.0, *, project: bool = False
    ) -> bool:
        """Block until every projection (but those set aside after failing) has processed
        the log up to ``position``; False if ``timeout_s`` passed first.

        ``project``: if this runner does the work and no batch is being applied, apply the
        next batches in the calling thread (a writer waiting for its own write) instead of
        waking the runner's thread and waiting for it. Writers that come while a batch is
        applied wait for it, and the first of them applies the next batch with all their
        events: batches follow the load, with no thread hand-off and no polling delay.
        """
        if position is None or position <= 0:
            return True
        deadline = time.monotonic() + min(timeout_s, WAIT_FOR_TIMEOUT_S_MAX)
        while True:
            with self._guard:
                local = self._works_here()
                if local:
                    if self._reached(self._positions.values, position):
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    if project and not self.failures and self._step_lock.acquire(blocking=False):
                        reached = None
                    else:
                        reached = threading.Lock()
                        reached.acquire()
                        self._waiter_seq += 1
                        heapq.heappush(self._waiters, (position, self._waiter_seq, reached))
            if local:
                if reached is None:
                    if self._project_here():
                        continue
                    # Nothing to apply yet (or it failed): wait like any other caller.
                    project = False
                    continue
                self._wake.set()
                reached.acquire(timeout=min(remaining, 0.5))
                continue
            # Another process does the work (or this runner is not running): ask the table.
            if self._reached(self._db_positions(), position):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, REMOTE_POLL_S))

    def project_up_to(self, position: int, timeout_s: float = 5.0) -> None:
        """If this runner does the work in this process, apply batches in the calling
        thread until ``position`` (included) is projected (after a batch that found nothing, or a
        failure, it stops: the runner's thread takes over). Otherwise return at once."""
        deadline = time.monotonic() + min(timeout_s, WAIT_FOR_TIMEOUT_S_MAX)
        while True:
            with self._guard:
                if not self._works_here() or (
                    self.failures or self._reached(self._positions.values, position)
                ):
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._step_lock.acquire(timeout=remaining):
                return
            with self._guard:
                done = self._reached(self._positions.values, position)
            if done:
                self._step_lock.release()
                return
            if not self._project_here():
                return

    def _project_here(self) -> bool:
        """One batch in the calling thread, which holds ``_step_lock``; True if it applied
        something. A failure is left to the runner's thread (it logs, retries with
        backoff, sets aside)."""
        try:
            if not self.running or not self.active:
                return False
            try:
                count = self.projector.step(limit=self.batch_size)
            except Exception:
                self._wake.set()
                return False
            self._publish()
            if count:
                self._sign_checkpoints()
            return count > 0
        finally:
            self._step_lock.release()

    def _db_positions(self) -> dict[str, int]:
        try:
            return self.projector.positions()
        except SQLAlchemyError:  # not created yet, or the database is away: not there yet
            return {}

    def _works_here(self) -> bool:
        """This runner does the work and has published its positions (hold ``_guard``)."""
        return self._positions.ready and self.active and self.running

    def _reached(self, positions: dict[str, int], position: int) -> bool:
        excluded = self.projector.excluded
        return all(
            positions.get(c.name, 0) >= position for c in self.classes if c.name not in excluded
        )

    def catch_up(self, timeout_s: float | None = None) -> int:
        """Process, in the calling thread, everything recorded so far (the runner must not
        be started); returns the position reached."""
        if self.running:
            raise RuntimeError("catch_up() is for a runner that is not started")
        ensure_schema(self.engine)
        self._rebuild_stale()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.projector.step(limit=self.batch_size):
            if deadline is not None and time.monotonic() > deadline:
                break
        self._publish()
        self._sign_checkpoints()
        return min(self.projector.positions().values(), default=0)

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._prepare()
            while not self._stopping.is_set():
                try:
                    with self._step_lock:
                        held = self._hold_work()
                    if not held:
                        continue
                except Exception as e:  # a rebuild or the database failed: try again later
                    self.active = False
                    self._release_work()
                    attempt = self._attempts[("<start>", 0)] = (
                        self._attempts.get(("<start>", 0), 0) + 1
                    )
                    delay = backoff_s(attempt, first_s=self.backoff_s_first)
                    log.error("starting the projections failed (retry in %.1f s): %r", delay, e)
                    self._stopping.wait(delay)
                    continue
                with self._step_lock:
                    productive = self._step()
                if productive:
                    if self.coalesce_s:
                        self._stopping.wait(self.coalesce_s)
                    continue
                self._wait_for_news()
        except BaseException as e:  # the thread must never die silently
            self.error = e
            log.critical("the projection runner stopped: %r", e, exc_info=True)
            raise
        finally:
            self._release_work()
            self.active = False
            self._wake_waiters(None)

    def _prepare(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                ensure_schema(self.engine)
                return
            except Exception as e:
                attempt += 1
                delay = backoff_s(attempt, first_s=self.backoff_s_first)
                log.error("preparing the read models failed (retry in %.1f s): %r", delay, e)
                self._stopping.wait(delay)

    def _rebuild_stale(self) -> None:
        if not self.rebuild_stale:
            return
        stale = stale_projections(self.engine, self.classes)
        if stale:
            log.warning("rebuilding %s: their tables were made by another version", stale)
            rebuild(self.app, self.engine, stale, projections=self.classes)

    def _step(self) -> bool:
        """One batch; True if there may be more right away."""
        stop, self._stop = self._stop, None
        try:
            count = self.projector.step(limit=self.batch_size, stop=stop)
        except ProjectionError as e:
            self._failed(e)
            return True
        except Exception as e:
            # Reading the log failed (database gone?): retry, never give up.
            key = ("<log>", 0)
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
            delay = backoff_s(attempt, first_s=self.backoff_s_first)
            log.error("reading the event log failed (retry in %.1f s): %r", delay, e)
            self._stopping.wait(delay)
            return True
        self._attempts.pop(("<log>", 0), None)
        self._publish()
        if count:
            self._sign_checkpoints()
        return count > 0

    def _sign_checkpoints(self) -> None:
        """Sign the checkpoints the Merkle log is due (every 100 leaves), with the ledger's
        signing key where the application has one (``ledger init`` makes it)."""
        audit = next((p for p in self.projections if isinstance(p, AuditProjection)), None)
        if audit is None:
            return
        # Only when the tree passed a multiple of 100 since the last look (no query else).
        size = audit.frontier.size if audit.frontier is not None else None
        if size is not None and size // CHECKPOINT_EVERY == self._checked_size // CHECKPOINT_EVERY:
            return
        if self._signer is None:
            key_dir = getattr(getattr(self.app, "settings", None), "key_dir", None)
            self._signer = False if key_dir is None else signing_key_or_none(key_dir) or False
        if not isinstance(self._signer, Ed25519Signer):
            return
        try:
            sign_due(write_engine(self.engine), self._signer)
            if size is not None:
                self._checked_size = size
        except Exception as e:  # another process signed it first, the database went away
            log.warning("signing the due checkpoints failed (next batch tries again): %r", e)

    def _failed(self, e: ProjectionError) -> None:
        # The next batch ends just before the failing event: what comes before it is kept.
        self._stop = e.position - 1
        # Attempts count per projection, not per position: a failure found only when the
        # batch is written (say a value the column cannot hold) names the batch's last
        # event, so each retry, one event shorter, names another; counted per position, it
        # would never be set aside, and every projection would wait behind it for good.
        # ``_publish`` forgets them once the projection gets past where it failed.
        key = (e.name, 0)
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        transient = e.transient
        self.failures[e.name] = Failure(
            name=e.name,
            position=e.position,
            error=repr(e.cause),
            attempts=attempt,
            transient=transient,
        )
        if not transient and attempt >= self.attempts_max:
            self.projector.excluded.add(e.name)
            log.critical(
                "projection %s set aside at notification %d after %d attempts: %r "
                "(restart to try again; the other projections go on)",
                e.name,
                e.position,
                attempt,
                e.cause,
                exc_info=e.cause,
            )
            self._publish()
            return
        delay = backoff_s(attempt, first_s=self.backoff_s_first)
        log.error(
            "projection %s failed at notification %d (attempt %d, retry in %.1f s): %r",
            e.name,
            e.position,
            attempt,
            delay,
            e.cause,
            exc_info=attempt == 1,
        )
        self._stopping.wait(delay)

    def _publish(self) -> None:
        waiting = self.projector.awaiting_rebuild
        values = {p.name: p.position for p in self.projections if p.name not in waiting}
        for name, failure in list(self.failures.items()):
            if values.get(name, 0) >= failure.position and name not in self.projector.excluded:
                del self.failures[name]
                self._attempts = {k: v for k, v in self._attempts.items() if k[0] != name}
        with self._guard:
            self._positions.values = values
            self._positions.ready = True
        excluded = self.projector.excluded
        self._wake_waiters(
            min(
                (values.get(c.name, 0) for c in self.classes if c.name not in excluded),
                default=None,
            )
        )

    def _wake_waiters(self, reached: int | None) -> None:
        """Release the ``wait_for`` calls whose position is ``reached`` (None: all of them,
        to look again: the runner stopped, or nothing is left to wait for)."""
        with self._guard:
            waiters = self._waiters
            released = []
            while waiters and (reached is None or waiters[0][0] <= reached):
                released.append(heapq.heappop(waiters)[2])
        for lock in released:
            lock.release()

    def _wait_for_news(self) -> None:
        if self._listener is not None:
            deadline = time.monotonic() + self.safety_poll_s
            while not self._stopping.is_set() and not self._wake.is_set():
                remaining = deadline - time.monotonic()
                try:
                    if remaining <= 0 or self._listener.wait(min(remaining, LISTEN_SLICE_S)):
                        break
                except psycopg.Error as e:
                    log.error("the LISTEN connection failed; reconnecting: %r", e)
                    self._release_work()
                    self.active = False
                    break
        else:
            self._wake.wait(self.poll_interval_s)
        self._wake.clear()

    # -- PostgreSQL: one worker per schema, woken by NOTIFY ---------------------------------

    def _hold_work(self) -> bool:
        """True if this runner may work now (takes the lock, then catches up)."""
        if self.active:
            return True
        if not self.is_postgres:
            if self.exclusive and not self._lock_file():
                self._stopping.wait(self.standby_poll_s)
                return False
            self.active = True
        else:
            listener = self._listener or self._listen()
            if listener is None:
                self._stopping.wait(self.standby_poll_s)
                return False
            self._listener = listener
            if self.exclusive and not listener.try_lock():
                self._stopping.wait(self.standby_poll_s)
                return False
            self.active = True
        # Positions of a projection refused by another runner's rebuild etc. start afresh.
        for p in self.projections:
            p.forget()
        self.projector.excluded.clear()
        self._rebuild_stale()
        return True

    def _listen(self) -> Listener | None:
        store = store_of(self.engine)
        if store is None:
            log.error("the engine does not come from make_engine(): polling only")
            return None
        return Listener.connect(
            psycopg_conninfo(store),
            channel=getattr(self.app.recorder, "channel_name", "ledger_events"),
            lock_key=f"ledger-projector:{store.dbname}:{store.schema}",
        )

    def _lock_file(self) -> bool:
        """SQLite: take ``<database>.projector.lock`` (an exclusive ``flock``, released by the
        kernel when this process ends however it ends); True if held. No file (an in-memory
        database): nothing to share, always True."""
        if self._file_lock is not None:
            return True
        store = store_of(self.engine)
        if store is None or store.kind != "sqlite" or not store.path or store.path == ":memory:":
            return True
        fd = os.open(f"{store.path}.projector.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._file_lock = fd
        return True

    def _release_work(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._file_lock is not None:
            os.close(self._file_lock)  # releases the flock
            self._file_lock = None
