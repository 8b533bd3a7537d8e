"""The public pages in a real browser: Debian's chromium driven by Playwright, against a real
``ledger serve`` on 127.0.0.1 holding the demo fund.

Skipped only where there is no chromium, and never under ``CI=true``. Screenshots (desktop
and 375 px) go to ``tests/artifacts/screenshots/`` (kept as CI artifacts, not committed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from babel.numbers import format_currency

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "tests" / "artifacts" / "screenshots"
START_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 180
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
SLUG = "tea-village"
FIGURES = ("received", "committed", "disbursed", "on_hand", "available")
LOCALES = {"zh": "zh_Hans_CN", "en": "en"}


def _chromium_or_skip() -> None:
    if Path(CHROMIUM).exists() and shutil.which("pdftotext"):
        return
    reason = f"{CHROMIUM} or pdftotext is missing"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run, not skip)")
    pytest.skip(reason)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ledger demo --no-serve`` then ``ledger serve`` on a free port; its base URL."""
    _chromium_or_skip()
    tmp = tmp_path_factory.mktemp("pages")
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp / 'ledger.db'}",
        "LEDGER_KEY_DIR": str(tmp / "keys"),
    }
    subprocess.run(
        [sys.executable, "-m", "api.cli", "demo", "--no-serve"],
        env=env, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=True,
    )  # fmt: skip
    port = _free_port()
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, (tmp / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert "Traceback" not in (tmp / "serve.log").read_text()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Visits:
    """A browser context that records every request its pages make."""

    def __init__(self, browser: Any, **options: Any) -> None:
        self.context = browser.new_context(**options)
        self.requests: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))

    def page(self) -> Any:
        return self.context.new_page()

    def hosts(self) -> set[str]:
        return {urlsplit(url).netloc for url in self.requests}


@pytest.fixture
def visits(browser: Any) -> Iterator[Any]:
    made: list[Visits] = []

    def make(**options: Any) -> Visits:
        v = Visits(browser, **options)
        made.append(v)
        return v

    yield make
    for v in made:
        v.context.close()


def _api(server: str, path: str) -> Any:
    response = httpx.get(f"{server}{path}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _money(amount: str, lang: str) -> str:
    return format_currency(Decimal(amount), "CNY", locale=LOCALES[lang])


def _shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


# -- the fund page -----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_fund_page_shows_the_apis_figures_and_a_visible_chart(
    server: str, visits: Any, lang: str
) -> None:
    fund = _api(server, f"/api/funds/{SLUG}")
    v = visits(viewport=DESKTOP)
    page = v.page()
    page.goto(f"{server}/funds/{SLUG}?lang={lang}")
    assert page.locator("html").get_attribute("lang") == ("zh-Hans" if lang == "zh" else "en")
    assert page.locator("h1").inner_text() == fund["name"]
    for name in FIGURES:
        shown = page.locator(f'[data-figure="{name}"]').inner_text()
        assert shown == _money(fund["figures"]["totals"][name], lang), name
    heading = "资金情况" if lang == "zh" else "The money"
    assert page.get_by_role("heading", name=heading).is_visible()
    chart = page.locator("svg.chart")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 300
    assert box["height"] > 100
    assert chart.locator("rect").count() >= 24  # two bars a month, twelve months
    for code, figures in fund["figures"]["purposes"].items():
        name = next(p["name"] for p in fund["purposes"] if p["code"] == code)
        row = page.locator("table.figures tbody tr", has_text=name)
        assert _money(figures["on_hand"], lang) in row.inner_text()
    _shot(page, f"fund-{lang}-desktop")
    page.set_viewport_size(PHONE)
    _shot(page, f"fund-{lang}-phone")
    _shot(page, f"fund-{lang}-phone-screen", full_page=False)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert v.hosts() == {urlsplit(server).netloc}


def test_the_fund_page_works_with_javascript_off(server: str, visits: Any) -> None:
    page = visits(java_script_enabled=False).page()
    page.goto(f"{server}/funds/{SLUG}")
    assert page.locator("svg.chart").is_visible()
    assert page.locator("table.flows tbody tr").count() == 12


def test_the_language_switch_is_remembered(server: str, visits: Any) -> None:
    v = visits(viewport=DESKTOP, locale="zh-CN")
    page = v.page()
    page.goto(f"{server}/funds/{SLUG}")
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    page.get_by_role("link", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", name="The money").is_visible()
    page.goto(f"{server}/")  # no ?lang=: the cookie decides
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("link", name="中文").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "社区基金"
    assert page.locator("svg.chart").is_visible()  # each fund with its chart
    _shot(page, "index-zh-desktop")


def test_a_donor_looks_up_a_receipt(server: str, visits: Any) -> None:
    donation = _api(server, f"/api/funds/{SLUG}/donations?limit=1")["items"][0]
    v = visits(viewport=DESKTOP)
    page = v.page()
    page.goto(f"{server}/receipts?lang=zh")
    page.get_by_label("收据编号").fill(donation["receipt_no"])
    page.get_by_role("button", name="查询").click()
    page.wait_for_url(f"**/receipts/{donation['receipt_no']}")
    gift = page.locator("#gift").inner_text()
    assert _money(donation["amount"], "zh") in gift
    assert donation["donor"] in gift
    status = page.locator("#proof-status")
    page.wait_for_function(
        "!document.getElementById('proof-status').textContent.startsWith('正在')", timeout=20_000
    )
    assert status.inner_text().startswith("已在您的浏览器中验证"), status.inner_text()
    _shot(page, "receipt-zh-desktop")
    page.goto(f"{server}/receipts/NO-SUCH-RECEIPT")
    assert page.locator("h1").inner_text() == "找不到页面"
    assert v.hosts() == {urlsplit(server).netloc}


# -- print -------------------------------------------------------------------------------------


def _pdf_text(page: Any, path: Path) -> tuple[str, int]:
    page.emulate_media(media="print")
    page.pdf(path=str(path), format="A4", print_background=True)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return text, text.count("\f")


def test_the_quarterly_report_and_the_poster_print_on_a4(
    server: str, visits: Any, tmp_path: Path
) -> None:
    fund = _api(server, f"/api/funds/{SLUG}")
    page = visits(viewport=DESKTOP).page()
    page.goto(f"{server}/funds/{SLUG}?lang=zh")
    report_href = page.locator('a[href*="/reports/"]').first.get_attribute("href")
    assert report_href is not None
    period = report_href.rsplit("/", 1)[1]
    first, last = _quarter_bounds(period)
    report = _api(server, f"/api/funds/{SLUG}/report?from={first}&to={last}")

    page.goto(f"{server}{report_href}")
    text, _ = _pdf_text(page, tmp_path / "report.pdf")
    assert fund["name"] in text
    assert _money(report["flows"]["in"], "zh") in text
    assert _money(report["closing"]["totals"]["on_hand"], "zh") in text
    _shot(page, "report-zh-print")

    page.goto(f"{server}/funds/{SLUG}/reports/{period}/poster")
    assert page.locator("svg.qr").is_visible()
    text, pages = _pdf_text(page, tmp_path / "poster.pdf")
    assert pages == 1, text
    assert "村务公开" in text
    assert fund["name"] in text
    assert _money(report["flows"]["in"], "zh") in text
    assert f"/funds/{SLUG}" in text
    _shot(page, "poster-zh-print")


def _quarter_bounds(period: str) -> tuple[str, str]:
    year, quarter = int(period[:4]), int(period[-1])
    first_month = 3 * quarter - 2
    last_month = first_month + 2
    last_day = {3: 31, 6: 30, 9: 30, 12: 31}[last_month]
    return f"{year}-{first_month:02d}-01", f"{year}-{last_month:02d}-{last_day}"


# -- every page: nothing from elsewhere, no serious accessibility fault -------------------------


def _page_paths(server: str) -> list[str]:
    fund = _api(server, f"/api/funds/{SLUG}")
    grant = _api(server, f"/api/funds/{SLUG}/grants?limit=1")["items"][0]
    donation = _api(server, f"/api/funds/{SLUG}/donations?limit=1")["items"][0]
    del fund
    return [
        "/",
        f"/funds/{SLUG}",
        f"/funds/{SLUG}?lang=en",
        f"/funds/{SLUG}/grants/{grant['id']}",
        f"/funds/{SLUG}/donations",
        "/receipts",
        f"/receipts/{donation['receipt_no']}",
        f"/funds/{SLUG}/reports/2026-Q4",
        f"/funds/{SLUG}/reports/2026-Q4/poster",
        "/no-such-page",
    ]


def test_no_page_asks_any_host_but_the_server(server: str, visits: Any) -> None:
    v = visits(viewport=PHONE)
    page = v.page()
    for n, path in enumerate(_page_paths(server)):
        page.goto(f"{server}{path}")
        page.wait_for_load_state("networkidle")
        _shot(page, f"phone-{n:02d}", full_page=False)
    assert len(v.requests) >= len(_page_paths(server))
    assert v.hosts() == {urlsplit(server).netloc}, sorted(set(v.requests))


def test_no_page_has_a_serious_or_critical_accessibility_violation(
    server: str, visits: Any
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    page = visits(viewport=DESKTOP).page()
    found: dict[str, list[str]] = {}
    for path in _page_paths(server):
        page.goto(f"{server}{path}")
        results = axe.run(page)
        bad = [
            f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']}"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        if bad:
            found[path] = bad
    assert found == {}
