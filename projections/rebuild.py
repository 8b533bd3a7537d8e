"""Rebuild read models from zero: into new tables, then swap.

1. Claim a new generation ``g`` for the projections (``build_*`` in ``rm_projections``) and
   create empty tables ``rm_x__g<g>``.
2. Replay the whole log, read in batches, into memory (the rows of the new tables kept in
   plain dicts: no lookups, no updates), then write what is kept (inserts only) with the
   build position, in one transaction, and create the secondary indexes. Rows only ever
   inserted (journal lines, refunds, approvals) are written batch by batch, while fresh in
   memory, and so are the rows of a table that outgrows what its projection keeps (the
   oldest then leave memory; a later change reads one back and updates it): memory stays
   bounded. The position is written only at the end. On SQLite the log is read from the
   events table and decoded for the read models (``Projector.read_decoded``). A crash
   leaves only tables the next rebuild drops; the live tables keep serving readers and the
   live runner meanwhile.
3. Swap, in one transaction: process what the log gained since, drop the live tables,
   rename the new ones over them, and move the build's position, version and generation
   to the live row. A runner elsewhere sees the new generation and drops its cache.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import Connection, Engine, inspect, select, update
from sqlalchemy.schema import CreateTable

from projections.core import BUILD_SLOT, Decoded, Projection, Projector, RebuildSuperseded
from projections.db import write_engine
from projections.schema import ensure_schema, lock_schema, projection_classes, tables_of
from projections.tables import make_tables, projection_state

log = logging.getLogger(__name__)

REBUILD_BATCH_EVENTS = 50_000
Progress = Callable[[int, int], None]  # (position, head)


@dataclass(frozen=True, slots=True)
class RebuildResult:
    names: tuple[str, ...]
    generation: int
    position: int
    events: int
    elapsed_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


def rebuild(
    app: Application[Any],
    engine: Engine,
    names: Iterable[str] | None = None,
    *,
    batch_size: int = REBUILD_BATCH_EVENTS,
    progress: Progress | None = None,
) -> RebuildResult:
    """Rebuild the named projections (all by default) from the whole event log."""
    with _cyclic_gc_paused():
        return _rebuild(app, engine, names, batch_size=batch_size, progress=progress)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """A rebuild makes millions of short-lived objects and keeps large caches: the cyclic
    garbage collector's passes over them cost a third of the time. It makes no reference
    cycles worth collecting (reference counting frees what it drops), so the collector
    pauses while it runs, process-wide, and runs once after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            gc.collect(1)


def _rebuild(
    app: Application[Any],
    engine: Engine,
    names: Iterable[str] | None,
    *,
    batch_size: int,
    progress: Progress | None,
) -> RebuildResult:
    classes = projection_classes(names)
    started = time.perf_counter()
    ensure_schema(engine)
    engine_w = write_engine(engine)
    generation = _claim(engine_w, [c.name for c in classes])
    try:
        return _build(app, engine, classes, generation, batch_size, progress, started)
    except BaseException:
        _abandon(engine_w, [c.name for c in classes], generation)
        raise


def _abandon(engine_w: Engine, names: list[str], generation: int) -> None:
    """After a failed rebuild: drop its tables and its claim (best effort; the live tables
    were never touched)."""
    try:
        with engine_w.begin() as conn:
            lock_schema(conn)
            _drop_leftovers(conn, names, generation)
            conn.execute(
                update(projection_state)
                .where(
                    projection_state.c.name.in_(names),
                    projection_state.c.build_generation == generation,
                )
                .values(build_generation=None, build_version=None, build_position=None)
            )
    except Exception:
        log.exception("cleaning up after a failed rebuild failed; the next rebuild will")


def _build(
    app: Application[Any],
    engine: Engine,
    classes: list[type[Projection]],
    generation: int,
    batch_size: int,
    progress: Progress | None,
    started: float,
) -> RebuildResult:
    engine_w = write_engine(engine)
    shadow = make_tables(f"__g{generation}")
    projections = [cls(shadow) for cls in classes]
    with engine_w.begin() as conn:
        # Keys and unique constraints now; other indexes once the rows are in (faster).
        for p in projections:
            for table in tables_of(type(p), shadow):
                conn.execute(CreateTable(table))
                p.deferred_indexes.extend(table.indexes)
    projector = Projector(app, engine, projections, slot=BUILD_SLOT, generation=generation)
    projector.defer_writes()
    head = app.recorder.max_notification_id() or 0
    events = 0
    position = 0
    if progress:
        progress(0, head)
    for after, batch in _read(projector, batch_size):
        projector.process_decoded(batch, after=after)
        events += len(batch)
        position = batch[-1][0]
        if position >= head:
            head = app.recorder.max_notification_id() or position
        if progress:
            progress(position, max(head, position))
    projector.write_deferred()
    with engine_w.begin() as conn:
        for p in projections:
            for index in p.deferred_indexes:
                index.create(conn, checkfirst=True)
            p.deferred_indexes = []
    position, more = _swap(engine_w, projector, generation, batch_size)
    events += more
    if progress:
        progress(position, max(head, position))
    elapsed = time.perf_counter() - started
    log.info(
        "rebuilt %s (generation %d) to notification %d: %d events in %.1f s",
        ", ".join(c.name for c in classes),
        generation,
        position,
        events,
        elapsed,
    )
    return RebuildResult(
        names=tuple(c.name for c in classes),
        generation=generation,
        position=position,
        events=events,
        elapsed_s=elapsed,
    )


def _read(projector: Projector, batch_size: int) -> Iterator[tuple[int, list[Decoded]]]:
    """The log from the start in decoded batches ``(after, events)``. In this thread: a
    reader thread one batch ahead cost more CPU (contention for the GIL) than it overlapped."""
    after = 0
    while events := projector.read_decoded(after, batch_size):
        yield after, events
        after = events[-1][0]


def _claim(engine_w: Engine, names: list[str]) -> int:
    """Take the next generation for ``names`` and drop what earlier, unfinished rebuilds
    of them left behind."""
    with engine_w.begin() as conn:
        lock_schema(conn)
        states = conn.execute(select(projection_state).with_for_update()).mappings().all()
        generation = 1 + max(
            (max(s["generation"], s["build_generation"] or 0) for s in states), default=0
        )
        _drop_leftovers(conn, names)
        for cls in projection_classes(names):
            conn.execute(
                update(projection_state)
                .where(projection_state.c.name == cls.name)
                .values(build_generation=generation, build_version=cls.version, build_position=0)
            )
    return generation


def _drop_leftovers(conn: Connection, names: list[str], generation: int | None = None) -> None:
    """Drop rebuild tables of these projections (of one ``generation``, or all)."""
    bases = {base for cls in projection_classes(names) for base in cls.table_names}
    pattern = re.compile(r"^(?P<base>rm_[a-z_]+?)__g(?P<generation>\d+)$")
    quote = conn.dialect.identifier_preparer.quote
    for table in inspect(conn).get_table_names():
        match = pattern.match(table)
        if not match or match["base"] not in bases:
            continue
        if generation is None or int(match["generation"]) == generation:
            conn.exec_driver_sql(f"DROP TABLE {quote(table)}")


def _swap(
    engine_w: Engine, projector: Projector, generation: int, batch_size: int
) -> tuple[int, int]:
    """Catch up and put the new tables in place, in one transaction; returns the position
    and how many notifications the catch-up covered."""
    events = 0
    with engine_w.begin() as conn:
        lock_schema(conn)
        states = {
            s["name"]: s
            for s in conn.execute(select(projection_state).with_for_update()).mappings()
        }
        positions = {}
        for p in projector.projections:
            if states[p.name]["build_generation"] != generation:
                raise RebuildSuperseded(f"another rebuild of {p.name!r} took over")
            positions[p.name] = int(states[p.name]["build_position"] or 0)
        while True:
            after = min(positions.values())
            notifications = projector.app.recorder.select_notifications(
                after + 1, batch_size, inclusive_of_start=True
            )
            if not notifications:
                break
            written = projector.process_in(conn, projector.decode(notifications), after=after)
            for p in written:
                p.batch_committed()  # written into this transaction: not to be written again
            positions = {p.name: p.position for p in projector.projections}
            events += len(notifications)
        quote = conn.dialect.identifier_preparer.quote
        for p in projector.projections:
            for base in type(p).table_names:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(base)}")
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(f'{base}__g{generation}')} RENAME TO {quote(base)}"
                )
            conn.execute(
                update(projection_state)
                .where(projection_state.c.name == p.name)
                .values(
                    version=type(p).version,
                    generation=generation,
                    position=positions[p.name],
                    build_generation=None,
                    build_version=None,
                    build_position=None,
                )
            )
    return max(positions.values()), events
