"""``ledger projections …``: the read models' status and rebuild.

These commands read their settings from ``LEDGER_*`` only (not from ``--database-url``):
a rebuild's worker processes open the store with the same settings.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import Engine

from api.cli.group import command_group
from ledger.application import LedgerApp
from ledger.settings import get_settings
from projections.db import open_store
from projections.errors import ProjectionError, RebuildFailed, RebuildSuperseded
from projections.rebuild import REBUILD_BATCH_EVENTS, rebuild
from projections.registry import PROJECTION_NAMES, ensure_schema
from projections.status import projection_status

projections_app = command_group(
    "Read models: where they are in the event log, and rebuilding them."
)
console = Console()


@contextmanager
def _opened() -> Iterator[tuple[LedgerApp, Engine]]:
    app, engine = open_store(get_settings())
    try:
        yield app, engine
    finally:
        engine.dispose()
        app.close()


@projections_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Position, lag and version of each projection."""
    with _opened() as (app, engine):
        ensure_schema(engine)
        rows = projection_status(app, engine)
    if as_json:
        data: list[dict[str, Any]] = [
            {
                "name": r.name,
                "version": r.version,
                "tables_version": r.tables_version,
                "position": r.position,
                "head": r.head,
                "lag": r.lag,
                "generation": r.generation,
                "rebuilding": r.rebuilding,
                "stale": r.stale,
            }
            for r in rows
        ]
        console.print_json(json.dumps(data))
        return
    table = Table(title="Read models")
    for column in ("projection", "version", "position", "head", "lag", "state"):
        table.add_column(column, justify="left" if column in ("projection", "state") else "right")
    for r in rows:
        if r.rebuilding:
            state = f"rebuilding (at {r.build_position or 0:,})"
        elif r.stale:
            state = f"needs a rebuild (tables v{r.tables_version})"
        else:
            state = "ok" if r.lag == 0 else "behind"
        table.add_row(r.name, str(r.version), f"{r.position:,}", f"{r.head:,}", f"{r.lag:,}", state)
    console.print(table)


@projections_app.command("rebuild")
def rebuild_command(
    name: Annotated[
        str | None,
        typer.Argument(help=f"One projection ({', '.join(PROJECTION_NAMES)}); all if left out."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=100, max=100_000, help="Events per transaction.")
    ] = REBUILD_BATCH_EVENTS,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Processes that load at once (projections with no topic in common); "
            "default: one per CPU.",
        ),
    ] = None,
) -> None:
    """Rebuild read models from the whole event log into new tables, then swap them in."""
    names = None if name is None else [name]
    with _opened() as (app, engine):
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"rebuilding {name or 'all'}", total=None)

            def advance(position: int, head: int) -> None:
                progress.update(task, completed=position, total=max(head, 1))

            try:
                result = rebuild(
                    app,
                    engine,
                    names,
                    batch_size=batch_size,
                    progress=advance,
                    opener=functools.partial(open_store, get_settings()),
                    workers=jobs,
                )
            except (ProjectionError, RebuildFailed, RebuildSuperseded) as e:
                # The live tables are untouched and the rebuild's own were dropped: say so
                # (the error table gives the exit code and the type).
                e.add_note("the rebuild failed, the read models are as before")
                raise
    console.print(
        f"rebuilt {', '.join(result.names)}: {result.events:,} events in "
        f"{result.elapsed_s:.1f} s ({result.events_per_s:,.0f}/s), generation "
        f"{result.generation}, at notification {result.position:,}, "
        f"{result.processes} process{'es' if result.processes > 1 else ''}"
    )
