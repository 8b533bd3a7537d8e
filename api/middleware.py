"""The HTTP edge's middleware, outermost first: ``SecurityHeaders`` (protective headers on
every response, ``no-store`` on authenticated ones), ``RateLimit`` (per address, per token,
bad tokens; 429 with Retry-After), ``BodyLimit``.

Request bodies are limited to ``BODY_BYTES_MAX``: a larger ``Content-Length`` is refused
at once, and a body without one (chunked) is counted as it streams in. The body is read
here whole (it is small by then) and handed on, so the application never sees a part of
a body that turns out too large."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import (
    PROBLEM_MEDIA_TYPE,
    ApiProblem,
    BodyTooLarge,
    RateLimited,
    ValidationFailed,
    problem_body,
    status_of,
)
from api.limits import (
    RATE_LIMIT_BAD_TOKENS_PER_ADDRESS,
    RATE_LIMIT_PER_ADDRESS,
    RATE_LIMIT_PER_TOKEN,
)


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send, size)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        duplicate = _duplicate_key(b"".join(chunks)) if _is_json(scope) else None
        if duplicate is not None:
            refused = ValidationFailed(
                f"{duplicate}: the key appears more than once in the JSON body",
                field=duplicate,
                errors=[
                    {
                        "field": duplicate,
                        "location": "body",
                        "message": "duplicate key",
                        "kind": "duplicate_key",
                    }
                ],
            )
            await _send_problem(scope, send, refused)
            return
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _refuse(self, scope: Scope, send: Send, size: int) -> None:
        error = BodyTooLarge(
            f"the request body exceeds {self.max_bytes} bytes", limit_bytes=self.max_bytes
        )
        await _send_problem(scope, send, error, close=True)


async def _send_problem(
    scope: Scope, send: Send, error: ApiProblem, *, close: bool = False
) -> None:
    """Answer a problem found before the application runs."""
    status = status_of(error)
    body = problem_body(
        slug=error.slug,
        title=error.title,
        status=status,
        detail=error.message,
        instance=scope.get("path"),
        facts=error.facts,
    )
    payload = json.dumps(body, ensure_ascii=False).encode()
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(payload)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _duplicate_key(body: bytes) -> str | None:
    """The first key that appears twice in one object of a JSON body (JSON parsers keep
    the last one silently; a body that says two things is refused). Invalid JSON is left
    for the application to refuse."""
    if not body:
        return None
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as e:
        return e.key
    except ValueError:
        return None
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return bool(media == b"application/json" or media.endswith(b"+json"))
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(chunks: list[bytes], first: Message | None, receive: Receive) -> Receive:
    pending: list[Message] = (
        [first] if first is not None else [{"type": "http.request", "body": b"".join(chunks)}]
    )

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


# -- rate limits --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits of ``api.limits`` as ``limits`` items (tests may pass others)."""

    per_address: str = RATE_LIMIT_PER_ADDRESS
    per_token: str = RATE_LIMIT_PER_TOKEN
    bad_tokens_per_address: str = RATE_LIMIT_BAD_TOKENS_PER_ADDRESS


class RateLimiter:
    """Moving windows per client address, per bearer token (by a hash of it, never the token
    itself) and of bad tokens per address, in this process's memory."""

    def __init__(self, limits: RateLimits | None = None) -> None:
        chosen = limits or RateLimits()
        self._per_address = parse_many(chosen.per_address)
        self._per_token = parse_many(chosen.per_token)
        self._bad_tokens = parse_many(chosen.bad_tokens_per_address)
        self._windows = MovingWindowRateLimiter(MemoryStorage())

    def admit(self, address: str, bearer: str | None) -> None:
        """Count a request; raise ``RateLimited`` if it is over a limit."""
        if bearer is not None:
            for item in self._bad_tokens:
                if not self._windows.test(item, "bad", address):
                    self._refuse(item, ("bad", address), "unknown bearer tokens")
        self._hit(self._per_address, ("address", address), "requests from this address")
        if bearer is not None:
            digest = hashlib.sha256(bearer.encode()).hexdigest()[:32]
            self._hit(self._per_token, ("token", digest), "requests with this token")

    def bad_token(self, address: str) -> None:
        """Count an unknown or revoked token sent from ``address``."""
        for item in self._bad_tokens:
            self._windows.hit(item, "bad", address)

    def _hit(self, items: list[RateLimitItem], key: tuple[str, str], what: str) -> None:
        for item in items:
            if not self._windows.hit(item, *key):
                self._refuse(item, key, what)

    def _refuse(self, item: RateLimitItem, key: tuple[str, str], what: str) -> None:
        reset = self._windows.get_window_stats(item, *key).reset_time
        retry_after_s = max(1, math.ceil(reset - time.time()))
        raise RateLimited(
            f"too many {what}: at most {item}; retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
            limit=str(item),
            retry_after_s=retry_after_s,
        )


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def bearer_of(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return str(secret.strip())
    return None


class RateLimit:
    """Refuses requests over ``RateLimiter``'s limits before anything else runs."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.limiter.admit(client_address(scope), bearer_of(scope))
        except RateLimited as refused:
            await _send_problem(scope, send, refused)
            return
        await self.app(scope, receive, send)


# -- headers of every response ------------------------------------------------------------------

CSP_HTML = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CSP_OTHER = "default-src 'none'; frame-ancestors 'none'; sandbox"
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeaders:
    """The usual protective headers on every response; ``Cache-Control: no-store`` on every
    answer to a request with a bearer token (an auditor's carries decrypted donor data, and
    no answer made for a token belongs in a shared cache)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authenticated = bearer_of(scope) is not None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in _DROPPED
                    and not (authenticated and k.lower() == b"cache-control")
                ]
                html = any(
                    k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers
                )
                headers.extend(SECURITY_HEADERS)
                headers.append(
                    (b"content-security-policy", (CSP_HTML if html else CSP_OTHER).encode())
                )
                if authenticated:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Set here only (a server header is uvicorn's: ``server_header=False``, see api.cli.running).
_DROPPED = frozenset({b"server", b"content-security-policy", *(k for k, _ in SECURITY_HEADERS)})
