"""A rebuild's loading mode: projections whose tables are new and empty, fed the log in
memory, each row written once.

The caches start complete (a key not in memory is not in the table: no lookups), batches
are applied in memory, and ``finish`` writes every row kept (inserts only) with the build
position, in one transaction. Rows only ever inserted are written batch by batch, while
fresh in memory; so are the rows of a table that outgrows what its projection keeps
(``Rows.cached_max``), its oldest then dropped from memory: memory stays bounded, and a row
changed after that is read back and updated.

With a ``sink`` (SQLite) those rows go, as pages, to a process that writes and commits
them while the next batch is applied here (``projections.engine.pages``). Before this
thread reads from the tables (a row read back), the sink is drained: the read sees every
page handed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import Connection, Engine, event, update

from projections.engine.log import Decoded
from projections.engine.pages import Page, Sink, stage_part
from projections.engine.projector import BUILD_SLOT, Projector
from projections.engine.writer import write_part, write_projection
from projections.errors import ProjectionError, RebuildSuperseded
from projections.projection import Appends, Part, Projection, Rows
from projections.tracking import projection_state


class Loader(Projector):
    """Loads ``projections`` (their new, empty tables of ``generation``) from the log."""

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        projections: Sequence[Projection[Any]],
        *,
        generation: int,
        sink: Sink | None = None,
    ) -> None:
        super().__init__(app, engine, projections, slot=BUILD_SLOT, generation=generation)
        for p in self.projections:
            p.forget(empty=True)
            p.position = 0
        self.sink = sink

    def process_decoded(self, events: Sequence[Decoded], *, after: int) -> None:
        """Apply a batch in memory; write what must not wait for the end."""
        if not events:
            return
        try:
            # Rows dropped from memory are read back through their own connection (the
            # tables hold what earlier batches wrote; nothing is written here).
            with self.engine.connect() as reader:
                if self.sink is not None:
                    event.listen(reader, "begin", self._drain_before_read)
                for p in self.projections:
                    p.conn = reader
                self._apply(self.projections, events)
        except BaseException:
            self._forget_all()
            raise
        finally:
            for p in self.projections:
                p.conn = None  # type: ignore[assignment]
        last_id = events[-1][0]
        for p in self.projections:
            p.position = max(p.position, last_id)
        due = [
            (p, part)
            for p in self.projections
            for part in p.parts
            if (isinstance(part, Appends) and part.rows)
            or (isinstance(part, Rows) and len(part.cache) > part.cached_max)
        ]
        if not due:
            return  # (the position is written at the end only, with the rest)
        try:
            if self.sink is not None:
                self._stage(self.sink, due, last_id)
            else:
                with self.engine_w.begin() as conn:
                    for p, part in due:
                        try:
                            write_part(conn, part)
                        except Exception as e:
                            raise ProjectionError(p.name, last_id, e) from e
        except BaseException:
            self._forget_all()
            raise
        for _p, part in due:
            part.committed()

    def advance(self, position: int) -> None:
        """Every event up to ``position`` has been applied (those read with
        ``followed_only``: the others change nothing here); ``finish`` writes it."""
        for p in self.projections:
            p.position = max(p.position, position)

    def finish(self) -> int:
        """Write what was applied, with the build position, in one transaction; returns
        the position (0: nothing was applied)."""
        slot = self.slot
        projections = [p for p in self.projections if p.position > 0]
        sink, self.sink = self.sink, None
        if sink is not None:
            try:
                sink.drain()  # the pages handed over come first
            except BaseException:
                self._forget_all()
                raise
        if not projections:
            return 0
        try:
            with self.engine_w.begin() as conn:
                states = self._states(conn, lock=True)
                for p in projections:
                    state = states[p.name]
                    if state[slot.generation] != self.generation:
                        raise RebuildSuperseded(f"another rebuild of {p.name!r} took over")
                    if int(state[slot.position] or 0) != 0:
                        raise RebuildSuperseded(f"the tables of {p.name!r} are not new")
                    try:
                        write_projection(conn, p)
                        conn.execute(
                            update(projection_state)
                            .where(projection_state.c.name == p.name)
                            .values({slot.position: p.position})
                        )
                    except Exception as e:
                        raise ProjectionError(p.name, p.position, e) from e
                    p.trusted = (state[slot.generation], p.position)
        except BaseException:
            self._forget_all()
            raise
        for p in projections:
            p.batch_committed()
        return max(p.position for p in projections)

    def _stage(self, sink: Sink, due: Sequence[tuple[Projection[Any], Part]], last_id: int) -> None:
        page = Page(self.engine.dialect)
        for p, part in due:
            try:
                stage_part(page, part)
            except Exception as e:
                raise ProjectionError(p.name, last_id, e) from e
        sink.submit(page)

    def _drain_before_read(self, _conn: Connection) -> None:
        if self.sink is not None:
            self.sink.drain()

    def _forget_all(self) -> None:
        for p in self.projections:
            p.forget()
