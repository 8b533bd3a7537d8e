"""The projector: feeds batches of the event log to projections, one transaction per batch.

Exactly-once: a batch's rows and each projection's tracking position (``rm_projections``)
are written in one SQLAlchemy transaction, and inside that transaction the projector first
reads (and on PostgreSQL locks) the positions and skips every event at or below them. A
re-delivered event therefore changes nothing, and a batch that fails leaves nothing behind.

Speed: a projection keeps the rows it touches in memory (``Rows``) across batches, applies
a whole batch there, and each changed row is written once per batch with ``executemany``
(``projections.engine.writer``). The cache is trusted only while the tracking row still
says what this process last wrote (same generation, same position); anything else —
another process advanced it, a rebuild swapped the tables, a batch failed — empties it.
The tracking rows are read with statements compiled once, and every position of a batch is
written in one ``executemany``. A rebuild's loading mode is ``projections.engine.loader``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from sqlalchemy import Connection, Engine, select

from projections.engine.log import Decoded, LogReader
from projections.engine.transactions import write_engine
from projections.engine.writer import write_projection
from projections.errors import ProjectionError, RebuildSuperseded
from projections.projection import Handler, Projection
from projections.tracking import projection_state

BATCH_EVENTS_MAX = 5_000


@dataclass(frozen=True, slots=True)
class Slot:
    """Which tracking columns a projector uses: the live tables', or a rebuild's."""

    position: str
    generation: str
    version: str


LIVE_SLOT = Slot("position", "generation", "version")
BUILD_SLOT = Slot("build_position", "build_generation", "build_version")


class Projector:
    """Feeds the event log to projections, one transaction per batch.

    ``step()`` reads the tracking rows, then the next batch of the log after the lowest
    position, decodes each event once, and applies it (``process_decoded``). Not
    thread-safe: one thread drives a projector.
    """

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        projections: Sequence[Projection[Any]],
        *,
        slot: Slot = LIVE_SLOT,
        generation: int | None = None,
    ) -> None:
        self.app = app
        self.engine = engine  # reads: deferred transactions
        self.engine_w = write_engine(engine)  # batches: take the write lock first
        self.projections = list(projections)
        self.slot = slot
        self.generation = generation  # a rebuild's own generation; None for live
        self.topics = frozenset(t for p in self.projections for t in p.handlers)
        self.dispatch: dict[str, list[tuple[Projection[Any], Handler]]] = {}
        for p in self.projections:
            for topic, handler in p.handlers.items():
                self.dispatch.setdefault(topic, []).append((p, handler))
        self.followers = [p for p in self.projections if p.follows_log]
        self.log = LogReader(app, self.topics, whole_log=bool(self.followers))
        self._compile_state_statements()
        # The tracking rows as this projector's last committed batch left them (None:
        # unknown, read them). ``_next_states``: the same, until the batch commits.
        self._known_states: dict[str, dict[str, Any]] | None = None
        self._next_states: dict[str, dict[str, Any]] | None = None
        self.excluded: set[str] = set()  # failed: left alone until restarted
        self.awaiting_rebuild: set[str] = set()  # tables of another version

    # -- reading -----------------------------------------------------------------------------

    def candidates(self, states: dict[str, dict[str, Any]]) -> list[Projection[Any]]:
        """The projections this projector may feed now."""
        slot = self.slot
        ready = []
        for p in self.projections:
            state = states.get(p.name)
            if p.name in self.excluded or state is None:
                continue
            if state[slot.version] != p.version:
                self.awaiting_rebuild.add(p.name)
                continue
            self.awaiting_rebuild.discard(p.name)
            ready.append(p)
        return ready

    def positions(self) -> dict[str, int]:
        """Positions of the projections whose tables this code made (a projection waiting
        for its rebuild has none)."""
        with self.engine.connect() as conn:
            states = self._states(conn, lock=False)
        return {
            p.name: int(states[p.name][self.slot.position] or 0)
            for p in self.projections
            if p.name in states and states[p.name][self.slot.version] == p.version
        }

    def decode(self, notifications: Iterable[Notification]) -> list[Decoded]:
        return self.log.decode(notifications)

    def read_decoded(
        self, after: int, limit: int, *, stop: int | None = None, followed_only: bool = False
    ) -> list[Decoded]:
        """The log after ``after`` (at most ``limit`` notifications), decoded (see
        ``LogReader.read``)."""
        return self.log.read(after, limit, stop=stop, followed_only=followed_only)

    # -- the live path -----------------------------------------------------------------------

    def step(self, *, limit: int = BATCH_EVENTS_MAX, stop: int | None = None) -> int:
        """Process the next batch; returns how many notifications it covered (0: none).

        The tracking rows are read again under the write lock before anything is written
        (``process_in``); the read here only decides where the next batch starts, and is
        skipped while this projector's own last batch is what they hold."""
        states = self._known_states
        if states is None:
            with self.engine.connect() as conn:
                states = self._states(conn, lock=False)
        ready = self.candidates(states)
        if not ready:
            return 0
        for p in ready:
            p.position = int(states[p.name][self.slot.position] or 0)
        after = min(p.position for p in ready)
        if stop is not None and stop <= after:
            return 0
        events = self.read_decoded(after, limit, stop=stop)
        if not events:
            return 0
        self.process_decoded(events, after=after)
        return len(events)

    def process_decoded(self, events: Sequence[Decoded], *, after: int) -> None:
        """Apply ``events`` (all of the log after ``after`` up to the last one, in order)
        in one transaction."""
        self._known_states = self._next_states = None
        try:
            with self.engine_w.begin() as conn:
                done = self.process_in(conn, events, after=after)
        except BaseException:
            self._next_states = None
            for p in self.projections:
                p.forget()
            raise
        self._known_states, self._next_states = self._next_states, None
        try:
            for p in done:
                p.batch_committed()
        except BaseException:
            # The batch is committed but a cache was left half told: trust none of them.
            self._known_states = None
            for p in self.projections:
                p.forget()
            raise

    def process_in(
        self, conn: Connection, events: Sequence[Decoded], *, after: int
    ) -> list[Projection[Any]]:
        """Apply decoded ``events`` (the log after ``after``) inside the caller's transaction;
        returns the projections that wrote something (to be told once it commits)."""
        if not events:
            return []
        states = self._states(conn, lock=True)
        projections = self._begin(conn, states, after=after)
        # What the tracking rows will hold after this batch, if every projection of this
        # projector takes part in it as expected (else the next step reads them).
        expected = len(projections) == len(self.candidates(states)) and all(
            p.trusted == (states[p.name][self.slot.generation], p.position) for p in projections
        )
        try:
            self._apply(projections, events)
            last_id = events[-1][0]
            slot = self.slot
            written = []
            for p in projections:
                if last_id <= p.position:
                    continue
                try:
                    write_projection(conn, p)
                except Exception as e:
                    raise ProjectionError(p.name, last_id, e) from e
                written.append(p)
            if written:
                # Every position in one statement, run once per projection by the driver.
                cursor = conn.connection.cursor()
                try:
                    cursor.executemany(self._position_sql, [(last_id, p.name) for p in written])
                finally:
                    cursor.close()
            for p in written:
                p.position = last_id
                p.trusted = (states[p.name][slot.generation], last_id)
                states[p.name][slot.position] = last_id
            if expected and self.generation is None:
                self._next_states = states
            return written
        finally:
            for p in projections:
                p.conn = None  # type: ignore[assignment]

    # -- applying ----------------------------------------------------------------------------

    def _apply(self, projections: list[Projection[Any]], events: Sequence[Decoded]) -> None:
        ready = set(projections)
        dispatch = {
            topic: [(p, h) for p, h in pairs if p in ready]
            for topic, pairs in self.dispatch.items()
        }
        if projections and events and max(p.position for p in projections) < events[0][0]:
            # Every event is new to every projection (a rebuild's batches, most live ones):
            # no position checks, and one ``try`` around the batch.
            notification_id, p = 0, projections[0]
            get = dispatch.get
            try:
                for notification_id, topic, domain_event, originator_id, _ in events:
                    if domain_event is None:
                        continue
                    for p, handler in get(topic, ()):  # noqa: B007  (named in the error)
                        handler(notification_id, originator_id, domain_event)
            except Exception as e:
                raise ProjectionError(p.name, notification_id, e) from e
        else:
            for notification_id, topic, domain_event, originator_id, _ in events:
                if domain_event is None:
                    continue
                for p, handler in dispatch.get(topic, ()):
                    if notification_id <= p.position:
                        continue
                    try:
                        handler(notification_id, originator_id, domain_event)
                    except Exception as e:
                        raise ProjectionError(p.name, notification_id, e) from e
        for p in self.followers:
            if p in ready:
                _record(p, events)

    # -- tracking ----------------------------------------------------------------------------

    def _states(self, conn: Connection, *, lock: bool) -> dict[str, dict[str, Any]]:
        # Read on every batch: the statement is compiled once (names are literals, the
        # columns plain integers and text), not built and cache-keyed each time.
        if not lock:  # (through SQLAlchemy: its errors are what readers expect)
            result = conn.exec_driver_sql(self._states_sql[False]).mappings()
            return {r["name"]: dict(r) for r in result}
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self._states_sql[True])
            names = [d[0] for d in cursor.description]
            return {r[0]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}
        finally:
            cursor.close()

    def _compile_state_statements(self) -> None:
        dialect = self.engine.dialect
        query = select(projection_state).where(
            projection_state.c.name.in_(sorted(p.name for p in self.projections))
        )

        def compiled(statement: Any) -> str:
            return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

        self._states_sql = {False: compiled(query), True: compiled(query.with_for_update())}
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        quote = dialect.identifier_preparer.quote
        self._position_sql = (
            f"UPDATE {quote(projection_state.name)} SET {quote(self.slot.position)} = {mark} "
            f"WHERE {quote('name')} = {mark}"
        )

    def _begin(
        self, conn: Connection, states: dict[str, dict[str, Any]], *, after: int
    ) -> list[Projection[Any]]:
        slot = self.slot
        ready = []
        for p in self.candidates(states):
            state = states[p.name]
            if self.generation is not None and state[slot.generation] != self.generation:
                raise RebuildSuperseded(f"another rebuild of {p.name!r} took over")
            position = int(state[slot.position] or 0)
            if position < after:
                continue  # this batch starts past its position: its own batch comes next
            if p.trusted != (state[slot.generation], position):
                # Rows and position are committed together: position 0 means no rows.
                p.forget(empty=position == 0)
            p.position = position
            p.conn = conn
            ready.append(p)
        return ready


def _record(p: Projection[Any], events: Sequence[Decoded]) -> None:
    """Hand a projection that follows the log every notification of the batch it has not
    seen yet."""
    notification_id = 0
    try:
        for notification_id, _, _, _, notification in events:
            if notification_id > p.position and notification is not None:
                p.record(notification)
    except Exception as e:
        raise ProjectionError(p.name, notification_id, e) from e
