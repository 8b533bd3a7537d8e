"""``ledger init``, ``demo``, ``serve`` and ``projector``: setting a ledger up and running
its server and its projections."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from api.cli.common import prepare_storage, read_models, state
from api.cli.funds import print_fund
from api.reads import fund_out
from api.tokens import TokenStore
from ledger.demo import DEMO_FUND_SLUG, load_demo
from ledger.engine.gc import tune_gc_for_server
from ledger.settings import Settings
from ledger.store import parse_url
from projections.audit import ensure_signing_key, sign_now
from projections.db import make_engine
from projections.registry import ensure_schema

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]


def register(app: typer.Typer) -> None:
    """These are commands of the root, not a group of their own."""
    app.command()(init)
    app.command()(demo)
    app.command()(serve)
    app.command()(projector)
    app.command()(backup)


def _shown_url(url: str) -> str:
    """The database URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _print_where(settings: Settings) -> None:
    store = parse_url(settings.database_url)
    if store.kind == "sqlite":
        typer.echo(f"database: {Path(store.path).expanduser().resolve()} (SQLite)")
    else:
        typer.echo(f"database: {_shown_url(settings.database_url)}")
    typer.echo(f"keys: {Path(settings.key_dir).expanduser().resolve()}")


def _prepare_read_side(settings: Settings) -> None:
    """The read models' and the API's tables (a SQL database only)."""
    if parse_url(settings.database_url).kind == "memory":
        return
    engine = make_engine(settings.database_url)
    try:
        ensure_schema(engine)
        TokenStore(engine).ensure_schema()
    finally:
        engine.dispose()


def init(ctx: typer.Context) -> None:
    """Create the database tables and the key folder (safe to run again)."""
    current = state(ctx)
    prepare_storage(current.settings)
    _ = current.app  # constructing the application creates the tables and the keys
    _prepare_read_side(current.settings)
    signer = ensure_signing_key(Path(current.settings.key_dir), current.settings.audit_origin)
    typer.echo("ledger ready")
    _print_where(current.settings)
    typer.echo(f"audit log: {signer.name}; verifier key (ledger audit public-key):")
    typer.echo(f"  {signer.verifier.vkey}")


def demo(
    ctx: typer.Context,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Load the demo and print its figures only.")
    ] = False,
    host: HostOpt = DEFAULT_HOST,
    port: PortOpt = DEFAULT_PORT,
) -> None:
    """Load the 茶乡振兴基金 demo fund and serve the API (unless --no-serve).

    Three months of history, safe to run again; its figures are printed first.
    """
    current = state(ctx)
    prepare_storage(current.settings)
    ledger = current.app
    load_demo(ledger, today=ledger.today())
    _prepare_read_side(current.settings)
    signer = ensure_signing_key(Path(current.settings.key_dir), current.settings.audit_origin)
    _print_where(current.settings)
    typer.echo()
    with read_models(ctx) as conn:
        print_fund(fund_out(conn, DEMO_FUND_SLUG))
    checkpoint = sign_now(current.engine, signer)  # the demo serves a checkpoint at once
    typer.echo(f"audit log: checkpoint of {checkpoint.size} events; verifier key:")
    typer.echo(f"  {signer.verifier.vkey}")
    if no_serve:
        return
    current.close()  # the server opens its own
    typer.echo()
    typer.echo(
        f"serving on http://{host}:{port}/api/funds/{DEMO_FUND_SLUG} "
        "(writes need a token: ledger token create --name NAME --role treasurer --fund SLUG)"
    )
    _serve(current.settings, host=host, port=port, workers=1, access_log=True)


def serve(
    ctx: typer.Context,
    host: HostOpt = DEFAULT_HOST,
    port: PortOpt = DEFAULT_PORT,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Server processes.")] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = True,
) -> None:
    """Serve the HTTP API (JSON under /api); the projections run in the same process.

    With --workers N > 1 every worker runs them too, one at a time (the others stand by),
    and writes answer once durable: send their Ledger-Position back as Ledger-Min-Position
    to read them (docs/api.md)."""
    current = state(ctx)
    prepare_storage(current.settings)
    _serve(current.settings, host=host, port=port, workers=workers, access_log=access_log)


def projector(ctx: typer.Context) -> None:
    """Keep the read models current, in this process, until stopped (Ctrl-C): for
    deployments that run them apart from the API (LEDGER_PROJECTIONS_IN_PROCESS=false).
    One projector works at a time; others stand by and take over."""
    from projections.runner import ProjectionRunner

    current = state(ctx)
    prepare_storage(current.settings)
    engine = current.engine
    ensure_schema(engine)
    tune_gc_for_server()
    runner = ProjectionRunner(current.app, engine).start()
    typer.echo(f"projecting {current.settings.database_url} (Ctrl-C to stop)", err=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while runner.running:
            runner.join(timeout_s=1.0)
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
        current.close()


def backup(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="The new file to write the backup to.")],
) -> None:
    """Back up a SQLite ledger while it runs (SQLite's online backup: one consistent copy
    of events, donor keys and read models). PostgreSQL: use pg_dump (docs/operations.md).
    The key folder is backed up separately."""
    from ledger.backup import backup_sqlite

    settings = state(ctx).settings
    store = parse_url(settings.database_url)
    if store.kind != "sqlite":
        typer.echo(
            "ledger backup copies a SQLite database; on PostgreSQL run "
            f"pg_dump --format=custom --file={target} (docs/operations.md)",
            err=True,
        )
        raise typer.Exit(2)
    size = backup_sqlite(Path(store.path).expanduser(), target)
    typer.echo(f"backed up {store.path} to {target} ({size:,} bytes)")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve(settings: Settings, *, host: str, port: int, workers: int, access_log: bool) -> None:
    import uvicorn

    from api.app import create_api

    if workers == 1:
        api = create_api(settings)
        tune_gc_for_server()
        uvicorn.run(
            api,
            host=host,
            port=port,
            access_log=access_log,
            log_level="info",
            server_header=False,
        )
        return
    # Worker processes read their settings from the environment. Every worker runs the
    # projections; one works (PostgreSQL: an advisory lock, which standbys on other hosts
    # share; SQLite: a file lock), the others stand by and take over within a second if it
    # dies. uvicorn restarts a worker that dies. A write answers once durable, with its
    # position (``Ledger-Position``), instead of waiting for whichever worker projects.
    os.environ["LEDGER_PROJECTIONS_IN_PROCESS"] = str(settings.projections_in_process).lower()
    os.environ.setdefault("LEDGER_WRITES_WAIT_FOR_READ_MODELS", "false")
    os.environ["LEDGER_DATABASE_URL"] = settings.database_url
    os.environ["LEDGER_KEY_DIR"] = str(settings.key_dir)
    os.environ["LEDGER_TIMEZONE"] = settings.timezone
    uvicorn.run(
        "api.app:create_api_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
        server_header=False,
    )
