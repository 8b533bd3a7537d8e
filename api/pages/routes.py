"""The public pages' routes: HTML for people, beside the JSON of ``/api`` (which they read
through the same functions, ``api.pages.data``). Not in the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.audit import public_key_of
from api.deps import ServicesDep
from api.errors import NoCheckpoint
from api.funds import SlugPath
from api.limits import CURSOR_LEN_MAX
from api.pages import data
from api.pages.cache import PageCache, positions
from api.pages.charts import flows_svg, qr_svg
from api.pages.i18n import formats, translations
from api.pages.render import PAGE_HEADERS, language_of, render, render_html, respond
from api.schemas import DonationPublicOut
from api.writes import Services
from projections.queries import fund_row

router = APIRouter(include_in_schema=False)

RECEIPT_NO_LEN_MAX = 64
RECEIPT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
QUARTER_PATTERN = r"^[0-9]{4}-Q[1-4]$"
PERIOD_PATTERN = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$"
DONATIONS_PER_PAGE = 50

ReceiptPath = Annotated[
    str, Path(max_length=RECEIPT_NO_LEN_MAX, pattern=RECEIPT_PATTERN, description="Receipt no.")
]
QuarterPath = Annotated[str, Path(pattern=QUARTER_PATTERN)]
PeriodPath = Annotated[str, Path(pattern=PERIOD_PATTERN)]


def _chart(
    request: Request, months: list[data.MonthRow], currency: str, *, chart_id: str = "chart"
) -> str:
    code = language_of(request)
    fmt = formats(code)
    gettext = translations(code).gettext
    return flows_svg(
        months,
        title=gettext("Money in and out, month by month (last 12 months)"),
        labels=(gettext("Money in"), gettext("Money out")),
        month_label=fmt.short_month,
        chart_id=chart_id,
        axis_money=lambda minor: fmt.money(str(minor // 100), currency).split(".")[0],
    )


@router.get("/", response_class=HTMLResponse)
def index(request: Request, services: ServicesDep) -> HTMLResponse:
    with services.read() as conn:
        funds = data.funds_index(conn, today=services.today(), cursors=services.cursors)
    cards = [
        (f, _chart(request, months, f.currency, chart_id=f"chart-{f.slug}")) for f, months in funds
    ]
    return render(request, "index.html", {"funds": cards})


def _verifier_key(services: Services) -> str | None:
    """The audit log's verifier key (what ``ledger audit public-key`` prints); None while
    the ledger has no signing key."""
    try:
        return public_key_of(services)
    except NoCheckpoint:
        return None


def _cache(request: Request) -> PageCache:
    cache: PageCache = request.app.state.page_cache
    return cache


@router.get("/funds/{slug}", response_class=HTMLResponse)
def fund(request: Request, slug: SlugPath, services: ServicesDep) -> HTMLResponse:
    today = services.today()
    cache = _cache(request)
    with services.read() as conn:
        key = ("fund", slug, language_of(request), today, positions(conn))
        html = cache.get(key)
        if html is not None:
            return respond(request, html)
        page = data.fund_page_data(conn, slug, today=today, cursors=services.cursors)
    html = render_html(
        request,
        "fund.html",
        {
            "page": page,
            "fund": page.fund,
            "chart": _chart(request, page.months, page.fund.currency),
            "verifier_key": _verifier_key(services),
            "quarter": f"{today.year}-Q{(today.month - 1) // 3 + 1}",
            "month": today.isoformat()[:7],
        },
    )
    cache.put(key, html)
    return respond(request, html)


@router.get("/funds/{slug}/grants/{grant_id}", response_class=HTMLResponse)
def grant(
    request: Request,
    slug: SlugPath,
    grant_id: Annotated[str, Path(max_length=64, pattern=r"^[0-9a-f-]{1,64}$")],
    services: ServicesDep,
) -> HTMLResponse:
    with services.read() as conn:
        fund_out, grant_out = data.fund_grant(conn, slug, grant_id, today=services.today())
    return render(request, "grant.html", {"fund": fund_out, "grant": grant_out})


@router.get("/funds/{slug}/donations", response_class=HTMLResponse)
def donations(
    request: Request,
    slug: SlugPath,
    services: ServicesDep,
    receipt: Annotated[str | None, Query(max_length=RECEIPT_NO_LEN_MAX)] = None,
    cursor: Annotated[str | None, Query(max_length=CURSOR_LEN_MAX)] = None,
) -> HTMLResponse:
    receipt = (receipt or "").strip() or None
    with services.read() as conn:
        fund_out, items, next_cursor = data.donations_page(
            conn,
            slug,
            limit=DONATIONS_PER_PAGE,
            cursor=None if receipt else cursor,
            cursors=services.cursors,
        )
        found: list[DonationPublicOut] | None = None
        if receipt is not None:
            fund_id = fund_row(conn, slug)["fund_id"]
            found = data.donation_by_receipt_in_fund(conn, fund_id, receipt)
    return render(
        request,
        "donations.html",
        {
            "fund": fund_out,
            "items": found if found is not None else items,
            "receipt": receipt,
            "next_cursor": None if receipt else next_cursor,
            "first_page": cursor is None,
        },
    )


@router.get("/receipts", response_class=HTMLResponse, response_model=None)
def receipts(
    request: Request,
    receipt_no: Annotated[str | None, Query(max_length=RECEIPT_NO_LEN_MAX)] = None,
) -> Response:
    """The lookup form; submitted, it goes to the receipt's own page."""
    if receipt_no and receipt_no.strip():
        target = request.url_for("receipt_page", receipt_no=receipt_no.strip())
        return RedirectResponse(str(target.path), status_code=303, headers=PAGE_HEADERS)
    return render(request, "receipts.html", {})


@router.get("/receipts/{receipt_no}", response_class=HTMLResponse, name="receipt_page")
def receipt(request: Request, receipt_no: ReceiptPath, services: ServicesDep) -> HTMLResponse:
    cache = _cache(request)
    with services.read() as conn:
        key = ("receipt", receipt_no, language_of(request), positions(conn))
        html = cache.get(key)
        if html is not None:
            return respond(request, html)
        found = data.receipt(conn, receipt_no)
    context = {"r": found, "fund": found.fund, "verifier_key": _verifier_key(services)}
    html = render_html(request, "receipt.html", context)
    cache.put(key, html)
    return respond(request, html)


@router.get("/funds/{slug}/reports/{period}", response_class=HTMLResponse)
def report(
    request: Request, slug: SlugPath, period: QuarterPath, services: ServicesDep
) -> HTMLResponse:
    with services.read() as conn:
        fund_out, _, _ = data.fund_and_figures(conn, slug)
        built = data.period_report(conn, slug, period)
    return render(request, "report.html", {"fund": fund_out, "report": built, "period": period})


@router.get("/funds/{slug}/reports/{period}/poster", response_class=HTMLResponse)
def poster(
    request: Request, slug: SlugPath, period: PeriodPath, services: ServicesDep
) -> HTMLResponse:
    with services.read() as conn:
        fund_out, _, _ = data.fund_and_figures(conn, slug)
        built = data.period_report(conn, slug, period)
    live = f"{str(request.base_url).rstrip('/')}/funds/{slug}"
    return render(
        request,
        "poster.html",
        {
            "fund": fund_out,
            "report": built,
            "period": period,
            "live_url": live,
            "qr": qr_svg(live, title=live),
        },
    )
