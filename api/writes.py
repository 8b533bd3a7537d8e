"""What the HTTP API works with: the ledger application, the read models' engine, the
projection runner and the token store, opened together and closed together.

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

from api.idempotency import FundKeys
from api.limits import READ_YOUR_WRITES_TIMEOUT_S, WORKER_THREADS
from api.positions import noted
from api.tokens import TokenStore
from ledger.application import LedgerApp
from ledger.domain.errors import FundNotFound, LedgerError
from ledger.privacy import PersonalData
from ledger.settings import Settings
from projections.db import make_engine
from projections.queries import fund_row
from projections.registry import ensure_schema
from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        owned: tuple[bool, bool, bool] = (True, True, True),
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.engine = engine
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
        """A read-only connection; its queries see one snapshot."""
        with self.engine.connect() as conn:
            yield conn

    def today(self) -> date:
        return self.ledger.today()

    def currency_of(self, slug: str) -> str:
        """The fund's currency (a fund never changes it, so it is remembered)."""
        currency = self._currencies.get(slug)
        if currency is not None:
            return currency
        try:
            with self.read() as conn:
                currency = str(fund_row(conn, slug)["currency"])
        except FundNotFound:
            currency = self.ledger.get_fund(slug).currency  # not projected yet, or unknown
        with self._lock:
            self._currencies[slug] = currency
        return currency

    def donor_details(self, donation_id: str) -> PersonalData | None:
        """A donor's decrypted name and contact (auditors only); None once erased."""
        try:
            return self.ledger.donor_details(self.ledger.get_donation(donation_id))
        except LedgerError:
            return None

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
