"""Log positions at the edge: how a client reads its own writes when writes do not wait.

- Every answer to a request that wrote carries ``Ledger-Position``: the log position of the
  write's last event (for a replayed write, the head of the log when it was answered).
- A request that sends ``Ledger-Min-Position: N`` (any method; usually a GET after a write)
  is answered only once every read model has processed the log up to ``N``, waiting at most
  ``READ_YOUR_WRITES_TIMEOUT_S``; after that it is refused with 503 ``unavailable``
  (``Retry-After: 1``), never answered from read models that do not hold the write yet.

With one worker (the default) a write itself waits until its events are projected, so a
client need not send anything; with several workers or hosts a write answers once it is
durable and the header is how to read it back (docs/api.md, "Reading your writes").

``noted(position)`` is called by ``Services`` when a command wrote; the middleware keeps one
holder per request in a context variable (shared by the worker thread a sync route runs in).
"""

from __future__ import annotations

import contextvars
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Unavailable, ValidationFailed, problem_response
from api.limits import READ_YOUR_WRITES_TIMEOUT_S

POSITION_HEADER = "Ledger-Position"
MIN_POSITION_HEADER = "Ledger-Min-Position"
POSITION_MAX = 2**63 - 1

_written: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "ledger_written", default=None
)


def noted(position: int | None) -> None:
    """Remember that the running request wrote up to ``position`` (its answer says so)."""
    holder = _written.get()
    if holder is not None and position:
        holder.append(position)


class Positions:
    """ASGI middleware: ``Ledger-Min-Position`` on the way in, ``Ledger-Position`` out."""

    def __init__(self, app: ASGIApp, *, timeout_s: float = READ_YOUR_WRITES_TIMEOUT_S) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = _min_position(scope)
        if wanted is not None:
            problem = await self._wait(scope, wanted)
            if problem is not None:
                await problem_response(problem, instance=scope.get("path"))(scope, receive, send)
                return
        holder: list[int] = []
        token = _written.set(holder)

        async def send_with_position(message: Message) -> None:
            if message["type"] == "http.response.start" and holder:
                headers = list(message.get("headers", []))
                headers.append((POSITION_HEADER.lower().encode(), str(max(holder)).encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_position)
        finally:
            _written.reset(token)

    async def _wait(self, scope: Scope, position: int | ValidationFailed) -> Exception | None:
        if isinstance(position, ValidationFailed):
            return position
        services: Any = getattr(scope["app"].state, "services", None)
        if services is None or position <= 0:
            return None
        runner = services.runner
        reached = await anyio.to_thread.run_sync(
            lambda: runner.wait_for(position, timeout_s=self.timeout_s)
        )
        if reached:
            return None
        return Unavailable(
            f"the read models have not reached position {position} "
            f"within {self.timeout_s:.0f} s; try again",
            headers={"Retry-After": "1"},
            position=position,
        )


def _min_position(scope: Scope) -> int | ValidationFailed | None:
    name = MIN_POSITION_HEADER.lower().encode()
    for key, value in scope.get("headers", ()):
        if key == name:
            text = value.decode("latin-1").strip()
            if not text.isdigit() or int(text) > POSITION_MAX:
                return ValidationFailed(
                    f"{MIN_POSITION_HEADER} must be a log position (a whole number)",
                    field=MIN_POSITION_HEADER,
                )
            return int(text)
    return None
