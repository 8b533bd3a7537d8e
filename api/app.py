"""The HTTP API: ``create_api(settings)`` makes the FastAPI application.

Nothing happens at import time or in ``create_api``: the ledger application, the read
models' engine, the projection runner and the token store are opened by the lifespan (and
closed by it), unless a test passes ``services`` it owns. JSON lives under ``/api``;
``/openapi.json`` documents every route, its access policy (``x-roles``) and every status
it can answer.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from api import (
    audit,
    donations,
    expenses,
    funds,
    giving360,
    grants,
    health,
    ledgerfiles,
    pages,
    reports,
)
from api.auth import api_routes, route_access
from api.errors import PROBLEM_MEDIA_TYPE, install_handlers
from api.idempotency import HEADER
from api.limits import BODY_BYTES_MAX, RATE_LIMIT_PER_ADDRESS, RATE_LIMIT_PER_TOKEN
from api.middleware import BodyLimit, RateLimit, RateLimiter, RateLimits, SecurityHeaders
from api.positions import Positions
from api.writes import Services
from ledger.application import LedgerApp
from ledger.engine.gc import tune_gc_for_server
from ledger.settings import Settings, get_settings

log = logging.getLogger(__name__)

OPEN_ATTEMPTS_MAX = 5
TITLE = "Community fund ledger"
VERSION = "0.1.0"
DESCRIPTION = (
    "An event-sourced ledger for small community funds. Money is given and returned as "
    "decimal strings in the fund's currency, dates as ISO 8601. Errors are "
    "application/problem+json with a stable `type`. See docs/api.md."
)
ROUTERS = (
    funds.router,
    donations.router,
    grants.router,
    expenses.router,
    reports.router,
    ledgerfiles.router,
    giving360.router,
    audit.router,
)


def create_api(
    settings: Settings,
    *,
    app: LedgerApp | None = None,
    clock: Callable[[], datetime] | None = None,
    services: Services | None = None,
    run_projections: bool | None = None,
    rate_limits: RateLimits | None = None,
) -> FastAPI:
    """The API on ``settings``' database. ``app``: a LedgerApp to use (the caller closes it);
    ``services``: everything ready-made (tests; the caller closes it); ``run_projections``:
    run the projection runner in this process (default: ``settings.projections_in_process``;
    otherwise a ``ledger projector`` process does, and writes wait on its positions)."""
    in_process = settings.projections_in_process if run_projections is None else run_projections

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            yield
            return
        opened = await anyio.to_thread.run_sync(
            lambda: _open_services(settings, app=app, clock=clock, run_projections=in_process)
        )
        api.state.services = opened
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(opened.close)

    api = FastAPI(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # No HTML docs page: FastAPI's loads Swagger UI from a CDN. The schema stays at
        # /openapi.json, for any OpenAPI viewer run locally.
        docs_url=None,
        redoc_url=None,
    )
    if services is not None:
        api.state.services = services
    install_handlers(api)
    limiter = RateLimiter(
        rate_limits
        or RateLimits(
            per_address=settings.rate_limit_per_address or RATE_LIMIT_PER_ADDRESS,
            per_token=settings.rate_limit_per_token or RATE_LIMIT_PER_TOKEN,
        )
    )
    api.state.rate_limiter = limiter
    # The last added runs first: headers on every answer, then the rate limits, then
    # ``Ledger-Min-Position``'s wait, then the body's size.
    api.add_middleware(BodyLimit, max_bytes=BODY_BYTES_MAX)
    api.add_middleware(Positions)  # (a request refused by the rate limits never waits)
    api.add_middleware(RateLimit, limiter=limiter)
    api.add_middleware(SecurityHeaders)
    for router in ROUTERS:
        api.include_router(router)
    api.include_router(health.router)
    api.mount(audit.STATIC_PATH, StaticFiles(directory=audit.STATIC_DIR), name="audit-static")
    pages.install(api, cache_entries=settings.page_cache_entries)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = _openapi(api)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


def _open_services(
    settings: Settings,
    *,
    app: LedgerApp | None,
    clock: Callable[[], datetime] | None,
    run_projections: bool,
) -> Services:
    """``Services.open``, tried again a few times after a database error: workers (and hosts)
    that start together run the store's idempotent DDL at the same moment, and PostgreSQL
    may refuse one of two concurrent ``CREATE OR REPLACE FUNCTION`` ("tuple concurrently
    updated")."""
    for attempt in range(OPEN_ATTEMPTS_MAX):
        try:
            return Services.open(settings, app=app, clock=clock, run_projections=run_projections)
        except PersistenceError as e:
            if attempt + 1 == OPEN_ATTEMPTS_MAX:
                raise
            log.warning("opening the ledger failed (attempt %d), trying again: %r", attempt + 1, e)
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
    raise AssertionError("unreachable")


def create_api_from_env() -> FastAPI:
    """For ``uvicorn --factory`` (several workers): settings from ``LEDGER_*``."""
    api = create_api(get_settings())
    tune_gc_for_server()
    return api


def _openapi(api: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=api.title, version=api.version, description=api.description, routes=api.routes
    )
    for route in api_routes(api.routes):
        if not route.include_in_schema:  # the HTML pages (api.pages)
            continue
        access = route_access(route)
        for method in route.methods or ():
            operation = schema["paths"][route.path_format].get(method.lower())
            if operation is None:
                continue
            _problems_only_as_problem_json(operation)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter.get("name") == HEADER:
                    parameter["required"] = True
            if access is not None:
                operation["x-roles"] = ["public"] if access.public else sorted(access.roles)
                if access.public:
                    operation["security"] = [{}, *operation.get("security", [])]
    return schema


def _problems_only_as_problem_json(operation: dict[str, Any]) -> None:
    """FastAPI lists a response model under application/json too; problems are only ever
    sent as application/problem+json."""
    for response in operation.get("responses", {}).values():
        content = response.get("content", {})
        if PROBLEM_MEDIA_TYPE in content and "application/json" in content:
            content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
