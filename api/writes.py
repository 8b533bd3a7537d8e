"""What the HTTP API works with: the ledger application, the read models' engines, the
projection runner and the token store, opened together and closed together.

Two connection budgets on the read models' database: ``engine`` (the projections, tokens,
idempotency keys and the lookups of writes: ``lookup()``) and ``read_engine``, a small pool
of its own for public reads (``read()``) that waits at most ``READ_POOL_TIMEOUT_S`` for a
connection and then answers 503 ``busy``. Reads, however many, never take a connection a
write or an authentication needs. Exports (``api.exports``) have a budget of their own too.

``Services.open(settings)`` makes them (the FastAPI lifespan does, or a test passes its own).
A write's answer carries its log position (``Ledger-Position``, ``api.positions``). With
``settings.writes_wait_for_read_models`` (one worker, the default) a write also waits —
bounded — until the read models hold it (``wait_until_projected()``), so that the client
reads its own writes without asking; otherwise it answers once durable, and a read that
sends ``Ledger-Min-Position`` waits instead. Several workers then never wait for each
other's projections: the serialization of every write behind one projector is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any, TypeVar

from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.cursors import CursorSigner
from api.errors import Busy
from api.exports import Exports
from api.idempotency import FundKeys
from api.limits import (
    BUSY_RETRY_AFTER_S,
    READ_POOL_OVERFLOW,
    READ_POOL_SIZE,
    READ_POOL_TIMEOUT_S,
    READ_YOUR_WRITES_TIMEOUT_S,
    WORKER_THREADS,
)
from api.positions import noted
from api.tokens import TokenStore
from ledger.application import LedgerApp
from ledger.domain.errors import DonationNotFound, FundNotFound
from ledger.privacy import PersonalData
from ledger.settings import Settings
from ledger.store import parse_url
from projections.db import make_engine
from projections.queries import fund_row
from projections.registry import ensure_schema
from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

T = TypeVar("T")


def make_read_engine(settings: Settings) -> Engine:
    """The public reads' own small pool (SQLite: its own connections to the same file)."""
    kind = parse_url(settings.database_url).kind
    if kind not in ("sqlite", "postgresql"):
        return make_engine(settings.database_url)
    return make_engine(
        settings.database_url,
        pool_size=READ_POOL_SIZE,
        max_overflow=READ_POOL_OVERFLOW,
        pool_timeout=READ_POOL_TIMEOUT_S,
    )


def json_response(model: BaseModel, *, status_code: int = 200) -> Response:
    """A model as JSON, skipping FastAPI's second validation of what the route built."""
    return Response(
        model.model_dump_json(by_alias=True),
        status_code=status_code,
        media_type="application/json",
    )


class Services:
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: LedgerApp,
        engine: Engine,
        runner: ProjectionRunner,
        tokens: TokenStore,
        read_engine: Engine | None = None,
        owned: tuple[bool, bool, bool] = (True, True, True),
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.engine = engine
        self.read_engine = read_engine if read_engine is not None else make_read_engine(settings)
        self.exports = Exports()
        self.cursors = CursorSigner.from_key_dir(settings.key_dir)
        self.runner = runner
        self.tokens = tokens
        self.fund_keys = FundKeys(engine)
        self.write_timeout_s = READ_YOUR_WRITES_TIMEOUT_S
        self.writes_wait = settings.writes_wait_for_read_models
        self._owns_ledger, self._owns_engine, self._owns_runner = owned
        self._executor = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="ledger-api")
        self._currencies: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        app: LedgerApp | None = None,
        clock: Callable[[], datetime] | None = None,
        run_projections: bool = True,
    ) -> Services:
        ledger = app if app is not None else LedgerApp(settings, clock=clock)
        engine = None
        try:
            engine = make_engine(settings.database_url)
            ensure_schema(engine)
            tokens = TokenStore(engine, clock=ledger.clock)
            tokens.ensure_schema()
            runner = ProjectionRunner(ledger, engine)
            # Batches are written by a thread of their own: commands of the event loop
            # (``write_async``) only queue theirs.
            ledger.batcher.start_writer()
            if run_projections:
                runner.start()
                if settings.writes_wait_for_read_models:
                    # The thread that made a batch durable projects it before its commands
                    # return: they then find their writes in the read models at once.
                    ledger.after_write.append(runner.project_up_to)
        except BaseException:
            if engine is not None:
                engine.dispose()
            if app is None:
                ledger.close()
            raise
        return cls(
            settings=settings,
            ledger=ledger,
            engine=engine,
            runner=runner,
            tokens=tokens,
            owned=(app is None, True, True),
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.exports.close()
        self.read_engine.dispose()
        self.ledger.batcher.stop_writer()
        with contextlib.suppress(ValueError):
            self.ledger.after_write.remove(self.runner.project_up_to)
        if self._owns_runner:
            self.runner.stop()
        if self._owns_engine:
            self.engine.dispose()
        if self._owns_ledger:
            self.ledger.close()

    # -- reading -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection of the public reads' pool; its queries see one snapshot. No free
        connection within ``READ_POOL_TIMEOUT_S``: 503 ``busy`` (with Retry-After)."""
        try:
            conn = self.read_engine.connect()
        except PoolTimeout:
            raise Busy(
                "every connection for reads is in use; retry shortly",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
                retry_after_s=BUSY_RETRY_AFTER_S,
            ) from None
        with conn:
            yield conn

    @contextlib.contextmanager
    def lookup(self) -> Iterator[Connection]:
        """A connection of the writers' budget, for what a write looks up first."""
        with self.engine.connect() as conn:
            yield conn

    def reads_available(self) -> bool:
        """Whether the public reads' pool hands out a connection (within its timeout)."""
        try:
            with self.read_engine.connect():
                return True
        except PoolTimeout:
            return False

    def today(self) -> date:
        return self.ledger.today()

    def currency_of(self, slug: str) -> str:
        """The fund's currency (a fund never changes it, so it is remembered)."""
        currency = self._currencies.get(slug)
        if currency is not None:
            return currency
        try:
            with self.lookup() as conn:
                currency = str(fund_row(conn, slug)["currency"])
        except FundNotFound:
            currency = self.ledger.get_fund(slug).currency  # not projected yet, or unknown
        with self._lock:
            self._currencies[slug] = currency
        return currency

    def donor_details(self, donation_id: str) -> PersonalData | None:
        """A donor's decrypted name and contact (auditors only); None once erased. A key
        fault (``KeyFileError``) is not an erasure: it propagates (500, logged)."""
        try:
            donation = self.ledger.get_donation(donation_id)
        except DonationNotFound:
            return None
        return self.ledger.donor_details(donation)

    # -- threads -----------------------------------------------------------------------------

    async def run(self, work: Callable[[], T]) -> T:
        """Run blocking ``work`` (a command and its wait) on the API's worker threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, work)

    # -- writing -----------------------------------------------------------------------------

    def write(self, command: Callable[[], Any]) -> Any:
        """Run a ledger command; its answer gives its position; wait until the read models
        hold what it wrote if writes wait."""
        before = self.ledger.last_position
        result = command()
        position = self.ledger.last_position
        if position is None or position == before:
            # It wrote nothing new (a retry): its original write may be very recent.
            position = self.ledger.recorder.max_notification_id()
        noted(position)
        if self.writes_wait:
            self.wait_until_projected(position)
        return result

    async def write_async(self, command: Callable[[], T]) -> T:
        """``write``, for the event loop: the command runs here (it only computes and
        queues), its writes are awaited rather than waited for in a worker thread, and the
        writer thread (which also projects each batch) answers through the loop. A
        conflict runs the command again (the ledger's one retry loop,
        ``run_command_async``)."""
        ledger = self.ledger
        if not ledger.batcher.has_writer:  # (``write`` notes the position)
            return await self.run(lambda: self.write(command))
        result, position = await ledger.run_command_async(command)
        if position is None:
            position = ledger.recorder.max_notification_id()
        noted(position)
        if not self.writes_wait:
            return result
        if position and not self.runner.wait_for(position, timeout_s=0):
            await self.run(functools.partial(self.wait_until_projected, position))
        return result

    def wait_until_projected(self, position: int | None) -> bool:
        if self.runner.wait_for(position, timeout_s=self.write_timeout_s, project=True):
            return True
        log.warning(
            "the read models did not reach position %s within %.1f s",
            position,
            self.write_timeout_s,
        )
        return False
