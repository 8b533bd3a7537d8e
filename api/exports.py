"""Exports (CSV, Beancount, hledger files) on a budget of their own.

An export is built whole, on one short-lived connection of the public reads' pool, into a
spooled temporary file (memory up to ``EXPORT_SPOOL_MEMORY_BYTES``, then disk; at most
``EXPORT_BYTES_MAX``), by one of ``EXPORTS_BUILDING_MAX`` threads of its own; only then is
it sent. So a slow client, or one that leaves halfway, never holds a database connection,
and the connection is back in its pool before the first byte leaves.

At most ``EXPORTS_IN_FLIGHT_MAX`` exports are being built or sent at once; beyond that a
request is answered at once with 503 ``too-many-exports`` and ``Retry-After``. A client that
takes longer than ``EXPORT_SEND_TIMEOUT_S`` to read one is cut off. Its slot, its file and
its connection are given back however the response ends (sent, disconnected, cut off).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.errors import ExportTooLarge, TooManyExports
from api.limits import (
    BUSY_RETRY_AFTER_S,
    EXPORT_BYTES_MAX,
    EXPORT_CHUNK_BYTES,
    EXPORT_SEND_TIMEOUT_S,
    EXPORT_SPOOL_MEMORY_BYTES,
    EXPORTS_BUILDING_MAX,
    EXPORTS_IN_FLIGHT_MAX,
)

log = logging.getLogger(__name__)


class Exports:
    """The exports' slots and builder threads of one server process."""

    def __init__(
        self,
        *,
        in_flight_max: int = EXPORTS_IN_FLIGHT_MAX,
        building_max: int = EXPORTS_BUILDING_MAX,
    ) -> None:
        self.in_flight_max = in_flight_max
        self._in_flight = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(building_max, thread_name_prefix="ledger-export")

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _enter(self) -> None:
        with self._lock:
            if self._in_flight >= self.in_flight_max:
                raise TooManyExports(
                    f"{self.in_flight_max} exports are under way; retry shortly",
                    headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
                    limit=self.in_flight_max,
                    retry_after_s=BUSY_RETRY_AFTER_S,
                )
            self._in_flight += 1

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    async def respond(
        self,
        build: Callable[[], Iterable[bytes]],
        *,
        media_type: str,
        headers: dict[str, str],
    ) -> Response:
        """Take a slot (or 503), build the export in a builder thread, answer it. An
        error of the build (404, 422) is raised before any byte is sent."""
        self._enter()
        try:
            loop = asyncio.get_running_loop()
            spooled = await loop.run_in_executor(self._executor, _spool, build)
        except BaseException:
            self._leave()
            raise
        return SpooledResponse(spooled, self._leave, media_type=media_type, headers=headers)


def _spool(build: Callable[[], Iterable[bytes]]) -> IO[bytes]:
    """Everything ``build`` yields, in a temporary file; the generator is closed (and its
    connection returned) before this returns, whatever happens."""
    spooled: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=EXPORT_SPOOL_MEMORY_BYTES)  # noqa: SIM115 - handed to the response, which closes it
    size = 0
    chunks = iter(build())
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > EXPORT_BYTES_MAX:
                raise ExportTooLarge(
                    f"the export exceeds {EXPORT_BYTES_MAX} bytes; ask for a shorter period",
                    limit_bytes=EXPORT_BYTES_MAX,
                )
            spooled.write(chunk)
    except BaseException:
        spooled.close()
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    spooled.seek(0)
    return spooled


class SpooledResponse(Response):
    """Sends a spooled export in chunks; gives back its slot and file however it ends."""

    def __init__(
        self,
        spooled: IO[bytes],
        release: Callable[[], None],
        *,
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        self.spooled = spooled
        self.release = release
        size = spooled.seek(0, 2)
        spooled.seek(0)
        super().__init__(
            content=None,
            media_type=media_type,
            headers={**headers, "content-length": str(size)},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with anyio.move_on_after(EXPORT_SEND_TIMEOUT_S) as timer:
                async with anyio.create_task_group() as group:

                    async def until_disconnect() -> None:
                        while (await receive())["type"] != "http.disconnect":
                            pass
                        group.cancel_scope.cancel()

                    group.start_soon(until_disconnect)
                    await self._send(send)
                    group.cancel_scope.cancel()
            if timer.cancelled_caught:
                log.warning("an export's client took over %s s; cut off", EXPORT_SEND_TIMEOUT_S)
        finally:
            self.spooled.close()
            self.release()

    async def _send(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        while chunk := self.spooled.read(EXPORT_CHUNK_BYTES):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
