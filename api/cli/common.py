"""What every command group of the ``ledger`` command line shares: the settings and the
application of the running command, the read models brought up to date, the common
options and the two output formats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from sqlalchemy import Connection, Engine

from ledger.application import LedgerApp
from ledger.settings import Settings, get_settings
from ledger.store import parse_url
from projections.db import make_engine
from projections.runner import ProjectionRunner

# How long a command that shows figures may spend bringing the read models up to date.
CATCH_UP_TIMEOUT_S = 120.0


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


# -- the command's state: made on first use, closed with the command -------------------------


@dataclass
class State:
    settings: Settings
    _app: LedgerApp | None = None
    _engine: Engine | None = None

    @property
    def app(self) -> LedgerApp:
        if self._app is None:
            self._app = LedgerApp(self.settings)
        return self._app

    @property
    def engine(self) -> Engine:
        """The read models' engine."""
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._app is not None:
            self._app.close()
            self._app = None


def state(ctx: typer.Context) -> State:
    """The root's state; a group run on its own (tests) reads ``LEDGER_*``."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State(get_settings())
        root.call_on_close(root.obj.close)
    return root.obj


def ledger(ctx: typer.Context) -> LedgerApp:
    return state(ctx).app


def prepare_storage(settings: Settings) -> None:
    """SQLite creates its file, not the folder it lives in (made by ``init`` and ``demo``)."""
    store = parse_url(settings.database_url)
    if store.kind == "sqlite":
        Path(store.path).expanduser().parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def read_models(ctx: typer.Context) -> Iterator[Connection]:
    """A connection to the read models, after they have caught up with the event log in
    this process: what the command shows is what the API shows, and includes the writes
    just made. (With a ``ledger projector`` running elsewhere this only waits for it to
    have written fewer batches.)"""
    current = state(ctx)
    runner = ProjectionRunner(current.app, current.engine)
    reached = runner.catch_up(timeout_s=CATCH_UP_TIMEOUT_S)
    head = current.app.recorder.max_notification_id() or 0
    if reached < head:
        typer.echo(
            f"warning: the read models are {head - reached:,} events behind the log",
            err=True,
        )
    with current.engine.connect() as conn:
        yield conn


# -- shared options --------------------------------------------------------------------------

ActorOpt = Annotated[
    str, typer.Option("--actor", metavar="NAME", help="Who records this (kept in the event).")
]
KeyOpt = Annotated[
    str,
    typer.Option(
        "--key",
        metavar="KEY",
        help="Idempotency key: the same key and content again records nothing new.",
    ),
]
FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", help="text for people, json for programs.")
]
AmountOpt = Annotated[
    str, typer.Option("--amount", metavar="DECIMAL", help="In the fund's currency, e.g. 100.00.")
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; kept in the event.")]
FundArg = Annotated[str, typer.Argument(help="The fund's slug.")]
ReversedOnOpt = Annotated[
    str | None, typer.Option("--reversed-on", metavar="YYYY-MM-DD", help="Default: today.")
]


# -- output ----------------------------------------------------------------------------------


def console() -> Console:
    # No markup or emoji codes: names and notes are printed as given.
    return Console(highlight=False, markup=False, emoji=False)


def emit(fmt: OutputFormat, data: BaseModel | dict[str, Any], headline: str) -> None:
    """JSON as it is, or a headline and ``key: value`` lines. A model is shown as the API
    sends it."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", by_alias=True)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    typer.echo(headline)
    for key, value in data.items():
        if isinstance(value, (list, dict, bool)):
            value = json.dumps(value, ensure_ascii=False)
        elif value is None:
            value = "-"
        typer.echo(f"  {key}: {value}")


def with_created(model: BaseModel, created: bool) -> dict[str, Any]:
    """A write's answer with whether it recorded something new."""
    return model.model_dump(mode="json", by_alias=True) | {"created": created}


def verb(created: bool, done: str) -> str:
    return done if created else "already recorded with this key; nothing new"
