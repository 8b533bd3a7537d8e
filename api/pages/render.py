"""Rendering a page: one Jinja2 environment per language (the i18n extension bound to that
language's catalogue), the labels of the ledger's codes, and the headers every page carries
(the Content-Security-Policy among them)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from api.pages import i18n

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
STATIC_URL = "/assets"
VERIFY_SCRIPT = Path(__file__).parent.parent / "static" / "audit" / "verify-receipt.js"
VERIFY_SCRIPT_URL = "/static/audit/verify-receipt.js"
# No request leaves the server: everything from our own origin, no inline script, no
# framing, forms post back to us only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Vary": "Accept-Language, Cookie",
    "Cache-Control": "no-cache",
}


def _labels() -> dict[str, dict[str, str]]:
    """The words shown for the ledger's codes (extracted by Babel through ``_``)."""
    return {
        "grant_status": {
            "proposed": _("proposed"),
            "committed": _("committed"),
            "rejected": _("rejected"),
            "cancelled": _("cancelled"),
            "closed": _("closed"),
        },
        "donation_status": {
            "received": _("received"),
            "partially_refunded": _("partly refunded"),
            "refunded": _("refunded"),
            "reversed": _("reversed"),
        },
        "channel": {
            "cash": _("cash"),
            "bank": _("bank transfer"),
            "wechat": _("WeChat Pay"),
            "alipay": _("Alipay"),
            "in_kind": _("in kind"),
            "other": _("other"),
        },
        "category": {
            "program": _("programme"),
            "administration": _("administration"),
            "fundraising": _("fundraising"),
        },
        "correction": {
            "refund": _("refund of a donation"),
            "donation_reversal": _("donation recorded in error, reversed"),
            "disbursement_reversal": _("tranche returned (bounced)"),
            "expense_reversal": _("expense reversed"),
        },
    }


def _(text: str) -> str:  # a marker for extraction; translated when shown
    return text


@cache
def environment(code: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(code), newstyle=True)  # type: ignore[attr-defined]
    env.globals["fmt"] = i18n.formats(code)
    env.globals["labels"] = _labels()
    env.globals["languages"] = i18n.LANGUAGES
    env.globals["static"] = STATIC_URL
    return env


def _has_verify_script() -> bool:
    """The audit log's browser check of a receipt's inclusion proof, once it ships."""
    return VERIFY_SCRIPT.is_file() and VERIFY_SCRIPT.stat().st_size > 0


def language_of(request: Request) -> str:
    return i18n.choose(
        request.query_params.get("lang"),
        request.cookies.get(i18n.LANG_COOKIE),
        request.headers.get("accept-language"),
    )


def render_html(request: Request, template: str, context: dict[str, Any]) -> str:
    code = language_of(request)
    return str(
        environment(code)
        .get_template(template)
        .render(
            request=request,
            lang=i18n.LANGUAGES[code],
            path=request.url.path,
            verify_script=VERIFY_SCRIPT_URL if _has_verify_script() else None,
            **context,
        )
    )


def respond(request: Request, html: str, *, status_code: int = 200) -> HTMLResponse:
    """The page with its headers; ``?lang=`` of a language we have sets the cookie."""
    response = HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
    asked = request.query_params.get("lang")
    if asked is not None and asked in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANG_COOKIE,
            asked,
            max_age=i18n.LANG_COOKIE_MAX_AGE_S,
            httponly=True,
            samesite="lax",
        )
    return response


def render(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    return respond(request, render_html(request, template, context), status_code=status_code)
