"""Errors at the edges: one table (``ERRORS``) maps exception classes to an HTTP status, a
problem type and the command line's exit code. Over HTTP every error leaves as
``application/problem+json`` (RFC 9457) with a stable ``type`` slug::

    type     the error's slug, e.g. "insufficient-funds" (stable; listed in docs/api.md)
    title    a short, fixed sentence per type
    status   the HTTP status
    detail   what happened this time
    ...      the error's facts (field, fund, id, ...) as extension members

Ledger errors (``ledger.domain.errors``) carry their own slug; the edge's own problems
(authentication, idempotency keys, body size, routing) are the ``ApiProblem`` classes below.
The read models' errors get their type from the table. Anything else is a bug: logged
with its traceback, answered ``500 internal-error`` without one. Routers and commands never
build error answers themselves: they raise. The command line (``api.cli.group``) prints
``error: <message> [<type>]`` and exits with the table's code.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.audit.checkpoint import CheckpointError
from ledger.audit.merkle import ProofError
from ledger.audit.note import NoteError
from ledger.audit.verify import VerificationError
from ledger.audit.witness import WitnessError
from ledger.domain.errors import (
    Conflict,
    FigureLimitReached,
    Forbidden,
    InvalidInput,
    LedgerError,
    NotFound,
    RuleViolated,
)
from ledger.domain.money import format_amount
from ledger.privacy import KeyFileError
from projections.errors import ProjectionError, RebuildFailed, RebuildSuperseded, UnknownProjection

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
SERVER_ERROR_DETAIL = "something went wrong on the server; it has been logged"
_RESERVED = frozenset({"type", "title", "status", "detail", "instance"})


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


class Problem(BaseModel):
    """An RFC 9457 problem; the error's facts come as extra members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable slug of the error, e.g. insufficient-funds")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request's path")


# -- the edge's own problems ------------------------------------------------------------------


class ApiProblem(Exception):
    """A problem found by the HTTP edge itself (not a ledger rule)."""

    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self, detail: str, *, headers: Mapping[str, str] | None = None, **facts: Any
    ) -> None:
        super().__init__(detail)
        self.message = detail
        self.headers = dict(headers or {})
        self.facts = facts


class BadRequest(ApiProblem):
    slug = "bad-request"
    title = "Bad request"


class Unauthorized(ApiProblem):
    slug = "unauthorized"
    title = "A valid bearer token is needed"

    def __init__(self, detail: str, **facts: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **facts)


class RoleNotAllowed(ApiProblem):
    slug = "role-not-allowed"
    title = "The token's role may not do this"


class FundNotAllowed(ApiProblem):
    slug = "fund-not-allowed"
    title = "The token may not write to this fund"


class IdempotencyKeyMissing(ApiProblem):
    slug = "idempotency-key-missing"
    title = "An Idempotency-Key header is needed"


class IdempotencyKeyInvalid(ApiProblem):
    slug = "idempotency-key-invalid"
    title = "The Idempotency-Key header is not valid"


class BodyTooLarge(ApiProblem):
    slug = "body-too-large"
    title = "The request body is too large"


class ValidationFailed(ApiProblem):
    slug = "validation-error"
    title = "The request is not valid"


class InvalidCursor(ApiProblem):
    slug = "invalid-cursor"
    title = "The cursor is not one this API gave out"


class RouteNotFound(ApiProblem):
    slug = "route-not-found"
    title = "No such route"


class MethodNotAllowed(ApiProblem):
    slug = "method-not-allowed"
    title = "Method not allowed"


class Unavailable(ApiProblem):
    slug = "unavailable"
    title = "The ledger is not available"


class NoCheckpoint(ApiProblem):
    slug = "no-checkpoint"
    title = "No signed checkpoint of that size"


class TreeSizeOutOfRange(ApiProblem):
    slug = "tree-size-out-of-range"
    title = "The log has no tree of that size, or no leaf at that index"


class ReceiptNotFound(ApiProblem):
    slug = "receipt-not-found"
    title = "No gift with that receipt number"


class Busy(ApiProblem):
    slug = "busy"
    title = "The server is busy; retry after the time Retry-After gives"


class TooManyExports(ApiProblem):
    slug = "too-many-exports"
    title = "Too many exports at once; retry after the time Retry-After gives"


class ExportTooLarge(ApiProblem):
    slug = "export-too-large"
    title = "The export is too large; narrow it with from and to"


class RateLimited(ApiProblem):
    slug = "rate-limited"
    title = "Too many requests; retry after the time Retry-After gives"


class InternalError(ApiProblem):
    slug = "internal-error"
    title = "Internal error"


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """How both edges answer an error class: the HTTP ``status``, the CLI's ``exit_code``,
    and, for errors without a slug of their own, the problem ``type`` and ``title``."""

    status: int
    exit_code: int
    slug: str | None = None
    title: str | None = None


EXIT_FAILED = 1  # the ledger refused the command, or something else failed
EXIT_USAGE = 2  # the command line itself was wrong
EXIT_NOT_VERIFIED = 3  # an export, a checkpoint, a proof or a receipt does not verify

# Exception class -> how the API and the CLI answer it; the most specific class of an
# exception's MRO wins. Ledger errors and the edge's problems carry their own slug.
ERRORS: dict[type[Exception], ErrorKind] = {
    # ledger errors
    InvalidInput: ErrorKind(422, EXIT_FAILED),
    NotFound: ErrorKind(404, EXIT_FAILED),
    Forbidden: ErrorKind(403, EXIT_FAILED),
    RuleViolated: ErrorKind(409, EXIT_FAILED),
    FigureLimitReached: ErrorKind(409, EXIT_FAILED),
    Conflict: ErrorKind(409, EXIT_FAILED),
    LedgerError: ErrorKind(400, EXIT_FAILED),
    # the HTTP edge's own
    ApiProblem: ErrorKind(400, EXIT_FAILED),
    BadRequest: ErrorKind(400, EXIT_FAILED),
    IdempotencyKeyMissing: ErrorKind(400, EXIT_FAILED),
    IdempotencyKeyInvalid: ErrorKind(400, EXIT_FAILED),
    Unauthorized: ErrorKind(401, EXIT_FAILED),
    RoleNotAllowed: ErrorKind(403, EXIT_FAILED),
    FundNotAllowed: ErrorKind(403, EXIT_FAILED),
    RouteNotFound: ErrorKind(404, EXIT_FAILED),
    MethodNotAllowed: ErrorKind(405, EXIT_FAILED),
    BodyTooLarge: ErrorKind(413, EXIT_FAILED),
    ValidationFailed: ErrorKind(422, EXIT_FAILED),
    InvalidCursor: ErrorKind(422, EXIT_FAILED),
    NoCheckpoint: ErrorKind(404, EXIT_FAILED),
    TreeSizeOutOfRange: ErrorKind(422, EXIT_FAILED),
    ReceiptNotFound: ErrorKind(404, EXIT_FAILED),
    InternalError: ErrorKind(500, EXIT_FAILED),
    Unavailable: ErrorKind(503, EXIT_FAILED),
    # the verifiable log (``ledger audit``): what does not verify
    VerificationError: ErrorKind(422, EXIT_NOT_VERIFIED, "not-verified", "It does not verify"),
    CheckpointError: ErrorKind(422, EXIT_NOT_VERIFIED, "checkpoint-invalid", "Bad checkpoint"),
    NoteError: ErrorKind(422, EXIT_NOT_VERIFIED, "note-invalid", "Bad signed note or key"),
    ProofError: ErrorKind(422, EXIT_NOT_VERIFIED, "proof-invalid", "A proof does not hold"),
    WitnessError: ErrorKind(409, EXIT_NOT_VERIFIED, "witness-refused", "The witness refused"),
    Busy: ErrorKind(503, EXIT_FAILED),
    TooManyExports: ErrorKind(503, EXIT_FAILED),
    ExportTooLarge: ErrorKind(422, EXIT_FAILED),
    RateLimited: ErrorKind(429, EXIT_FAILED),
    # the read models (``ledger projections``; the live tables are left as they were)
    UnknownProjection: ErrorKind(404, EXIT_USAGE, "unknown-projection", "No such projection"),
    ProjectionError: ErrorKind(500, EXIT_FAILED, "projection-failed", "A projection failed"),
    RebuildFailed: ErrorKind(500, EXIT_FAILED, "rebuild-failed", "A rebuild process failed"),
    RebuildSuperseded: ErrorKind(
        409, EXIT_FAILED, "rebuild-superseded", "Another rebuild took over"
    ),
    # a fault of the server's keys: logged, answered 500 without its message
    KeyFileError: ErrorKind(500, EXIT_FAILED, KeyFileError.slug, KeyFileError.title),
    # anything else is a bug: logged with its traceback, never shown with it
    Exception: ErrorKind(500, EXIT_FAILED, "internal-error", "Internal error"),
}


def kind_for(error_class: type[BaseException]) -> ErrorKind:
    for cls in error_class.__mro__:
        kind = ERRORS.get(cls)
        if kind is not None:
            return kind
    return ERRORS[Exception]


def status_for(error_class: type[BaseException]) -> int:
    return kind_for(error_class).status


def status_of(error: BaseException) -> int:
    return status_for(type(error))


def exit_code_of(error: BaseException) -> int:
    return kind_for(type(error)).exit_code


def type_and_title(error_class: type[BaseException]) -> tuple[str, str]:
    """The problem ``type`` (slug) and ``title`` of an error class."""
    slug, title = getattr(error_class, "slug", None), getattr(error_class, "title", None)
    if isinstance(slug, str) and isinstance(title, str):
        return slug, title
    kind = kind_for(error_class)
    assert kind.slug is not None, error_class  # every row without a slug has a slugged class
    assert kind.title is not None, error_class
    return kind.slug, kind.title


def one_line(error: BaseException) -> str:
    """The CLI's line for an error: ``<message> [<type>]`` (notes added on the way first)."""
    slug, _ = type_and_title(type(error))
    if isinstance(error, (LedgerError, ApiProblem)):
        message = error.message
    elif kind_for(type(error)) is ERRORS[Exception]:
        message = f"{type(error).__name__}: {error}"
    else:
        message = str(error)
    notes = getattr(error, "__notes__", None) or []
    return ": ".join([*notes, message]) + f" [{slug}]"


def all_problem_types() -> dict[str, tuple[int, str]]:
    """Every problem type this API can answer with: slug -> (status, title)."""
    out: dict[str, tuple[int, str]] = {}

    def walk(cls: type[Any]) -> None:
        slug = getattr(cls, "slug", None)
        if isinstance(slug, str) and cls is not ApiProblem:
            out.setdefault(slug, (status_for(cls), cls.title))
        for sub in cls.__subclasses__():
            walk(sub)

    walk(LedgerError)
    walk(ApiProblem)
    for kind in ERRORS.values():
        if kind.slug is not None and kind.title is not None:
            out.setdefault(kind.slug, (kind.status, kind.title))
    return dict(sorted(out.items()))


# -- rendering ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return str(value)


def problem_body(
    *,
    slug: str,
    title: str,
    status: int,
    detail: str,
    instance: str | None,
    facts: Mapping[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": slug, "title": title, "status": status, "detail": detail}
    if instance is not None:
        body["instance"] = instance
    for key, value in _money_as_decimal_strings(facts).items():
        if key not in _RESERVED:
            body[key] = _plain(value)
    return body


def _money_as_decimal_strings(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Amounts leave as decimal strings, as everywhere in the API: a fact ``x_minor`` of an
    error that names its ``currency`` becomes ``x`` ("12.50"); without a currency it is left
    out (the detail says what was wrong)."""
    currency = facts.get("currency")
    out: dict[str, Any] = {}
    for key, value in facts.items():
        if not key.endswith("_minor"):
            out[key] = value
        elif isinstance(currency, str) and isinstance(value, int):
            with contextlib.suppress(LedgerError):
                out[key.removesuffix("_minor")] = format_amount(value, currency=currency)
    return out


def problem_response(error: BaseException, *, instance: str | None = None) -> ProblemResponse:
    """The problem of any error of the table. A server error that is not the edge's own
    says nothing of what went wrong: its message may hold internals."""
    status = status_of(error)
    slug, title = type_and_title(type(error))
    if isinstance(error, (LedgerError, ApiProblem)):
        detail, facts = error.message, error.facts
    elif status < 500:
        detail, facts = str(error), {}
    else:
        detail, facts = SERVER_ERROR_DETAIL, {}
    body = problem_body(
        slug=slug, title=title, status=status, detail=detail, instance=instance, facts=facts
    )
    headers = error.headers if isinstance(error, ApiProblem) else None
    return ProblemResponse(body, status_code=status, headers=headers)


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_problem(errors: Sequence[Any]) -> ValidationFailed:
    items = []
    for error in errors:
        loc = list(error.get("loc", ()))
        items.append(
            {
                "field": _field_of(loc),
                "location": str(loc[0]) if loc else "body",
                "message": str(error.get("msg", "")),
                "kind": str(error.get("type", "")),
            }
        )
    first = items[0] if items else {"field": "body", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}"
    if len(items) > 1:
        detail += f" (and {len(items) - 1} more)"
    return ValidationFailed(detail, field=first["field"], errors=items)


# -- handlers ----------------------------------------------------------------------------------


async def _problem(request: Request, exc: Exception) -> ProblemResponse:
    if status_of(exc) >= 500 and not isinstance(exc, ApiProblem):
        log.error("error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(exc, instance=request.url.path)


async def _request_validation(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_problem(exc.errors()), instance=request.url.path)


async def _http_exception(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    problem: ApiProblem
    if exc.status_code == 404:
        problem = RouteNotFound(f"no route {request.method} {request.url.path}")
    elif exc.status_code == 405:
        problem = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    elif exc.status_code == 413:
        problem = BodyTooLarge(str(exc.detail))
    else:
        problem = BadRequest(str(exc.detail))
    response = problem_response(problem, instance=request.url.path)
    for name, value in (exc.headers or {}).items():
        response.headers.setdefault(name, value)
    if exc.status_code not in {kind.status for kind in ERRORS.values()}:
        response.status_code = exc.status_code
    return response


async def _unexpected(request: Request, exc: Exception) -> ProblemResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(InternalError(SERVER_ERROR_DETAIL), instance=request.url.path)


def install_handlers(api: FastAPI) -> None:
    for error_class in ERRORS:
        if error_class is not Exception:
            api.add_exception_handler(error_class, _problem)
    api.add_exception_handler(RequestValidationError, _request_validation)
    api.add_exception_handler(StarletteHTTPException, _http_exception)
    api.add_exception_handler(Exception, _unexpected)


# -- OpenAPI -----------------------------------------------------------------------------------

DESCRIPTIONS = {
    400: "Bad request (a missing or invalid Idempotency-Key header)",
    401: "Missing, unknown or revoked bearer token",
    403: "The token's role or funds do not allow this, or a ledger rule of duty (self-approval)",
    404: "No such fund, donation, grant, expense or tranche",
    409: "A ledger rule refuses this, or the Idempotency-Key was used for other content",
    413: "Request body larger than 64 KiB",
    422: "Invalid input (a field, an amount, a date, an unknown field)",
    429: "Too many requests from this token or address (Retry-After)",
    500: "Internal error (logged on the server)",
    503: "The ledger's store is not reachable, or the server is busy (Retry-After)",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: each status with the Problem model."""
    return {
        status: {
            "model": Problem,
            "description": DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status in sorted(set(statuses) | {429, 500})
    }
