"""The public transparency pages (DESIGN §8): server-rendered HTML in Simplified Chinese and
English, beside the JSON API. ``install(api)`` mounts the routes, the static files at
``/assets`` and the HTML error pages (404, 422, 500) for every path outside ``/api``.

Modules: ``routes`` (the router), ``data`` (what a page shows, through the API's own queries
and serializers), ``render`` (Jinja2, the CSP), ``i18n`` (languages and Babel's formats),
``charts`` (the flows chart and the QR code, inline SVG). See docs/pages.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.errors import status_of
from api.pages.cache import PageCache
from api.pages.render import STATIC, STATIC_URL, render
from api.pages.routes import router

Handler = Callable[[Request, Exception], Awaitable[Response]]


def is_page_request(request: Request) -> bool:
    """Anything outside the JSON API and the static files is a page for a person."""
    path = request.url.path
    return not (path.startswith("/api") or path.startswith(STATIC_URL) or path == "/openapi.json")


def _status(exc: Exception) -> int:
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    if isinstance(exc, RequestValidationError):
        return 422
    return status_of(exc)


def _html_first(handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not is_page_request(request):
            return await handler(request, exc)
        status = _status(exc)
        if status >= 500:
            await handler(request, exc)  # logged there
        return render(request, "error.html", {"status": status}, status_code=status)

    return handle


def install(api: FastAPI, *, cache_entries: int) -> None:
    """After ``api.errors.install_handlers``: the pages, their files, their error pages,
    and the cache of rendered pages (``cache_entries`` pages at most; 0: none)."""
    api.state.page_cache = PageCache(cache_entries)
    api.include_router(router)
    api.mount(STATIC_URL, StaticFiles(directory=STATIC), name="assets")
    handlers: dict[Any, Handler] = dict(api.exception_handlers)
    for key, handler in handlers.items():
        api.add_exception_handler(key, _html_first(handler))


__all__ = ["install", "is_page_request"]
