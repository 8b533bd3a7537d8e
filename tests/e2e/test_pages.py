"""The public pages over HTTP (in-process): languages, formats, the CSP, HTML error pages,
the receipt lookup, and what they never show. The browser tests are in
``test_pages_browser.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_api_support import FUND, World, serve

CHINESE_HEADING = "资金情况"
ENGLISH_HEADING = "The money"


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Any) -> Iterator[World]:
    with serve(sqlite_url, tmp_path, clock.now) as w:
        w.open_fund()
        yield w


def page(world: World, path: str, **headers: str) -> Any:
    response = world.client.get(path, headers=headers)
    assert response.headers["content-type"].startswith("text/html"), response.text
    return response


def test_a_fund_page_is_chinese_by_default(world: World) -> None:
    response = page(world, f"/funds/{FUND}")
    assert response.status_code == 200
    assert '<html lang="zh-Hans">' in response.text
    assert CHINESE_HEADING in response.text


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "heading"),
    [
        ("en", None, None, ENGLISH_HEADING),
        ("zh", "en", "en", CHINESE_HEADING),
        (None, "en", "zh-CN", ENGLISH_HEADING),
        (None, None, "en-GB,en;q=0.9", ENGLISH_HEADING),
        (None, None, "fr-FR, en;q=0.5", ENGLISH_HEADING),
        (None, None, "fr-FR", CHINESE_HEADING),
        ("xx", None, "en", ENGLISH_HEADING),
    ],
)
def test_the_language_is_the_query_then_the_cookie_then_accept_language(
    world: World, query: str | None, cookie: str | None, accept: str | None, heading: str
) -> None:
    world.client.cookies.clear()
    if cookie is not None:
        world.client.cookies.set("lang", cookie)
    headers = {"Accept-Language": accept} if accept else {}
    path = f"/funds/{FUND}" + (f"?lang={query}" if query else "")
    assert heading in page(world, path, **headers).text


def test_choosing_a_language_sets_the_cookie(world: World) -> None:
    response = page(world, f"/funds/{FUND}?lang=en")
    assert "lang=en" in response.headers["set-cookie"]
    assert ENGLISH_HEADING in page(world, "/funds/" + FUND).text  # the client kept it


def test_money_and_dates_are_formatted_in_the_language(world: World) -> None:
    world.donate("1234.50", received_on="2026-11-27")
    zh = page(world, f"/funds/{FUND}?lang=zh").text
    assert "¥1,234.50" in zh
    assert "2026年11月27日" in zh
    en = page(world, f"/funds/{FUND}?lang=en").text
    assert "CN¥1,234.50" in en
    assert "November 27, 2026" in en


def test_pages_carry_a_csp_that_allows_only_the_server_and_no_inline_script(
    world: World,
) -> None:
    world.donate()
    for path in ("/", f"/funds/{FUND}", "/receipts", f"/funds/{FUND}/reports/2026-Q4/poster"):
        response = page(world, path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "'unsafe-inline'" not in csp
        assert "<script>" not in response.text  # no inline script
        assert " style=" not in response.text  # no inline style either
        external = re.findall(r'(?:src|href)="(https?:)?//', response.text)
        assert external == [], path


def test_an_unknown_page_is_an_html_404_and_the_api_keeps_its_problems(world: World) -> None:
    response = page(world, "/no-such-page")
    assert response.status_code == 404
    assert "找不到页面" in response.text
    assert page(world, "/funds/no-such-fund").status_code == 404
    api = world.client.get("/api/funds/no-such-fund")
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"


def test_a_malformed_period_or_receipt_is_an_html_422(world: World) -> None:
    for path in (f"/funds/{FUND}/reports/2026-Q5", "/receipts/%3Cscript%3E"):
        response = page(world, path)
        assert response.status_code == 422, path
        assert "网址格式不正确" in response.text


def test_the_receipt_form_leads_to_the_receipt_page(world: World) -> None:
    donation = world.donate("88.00")
    response = world.client.get(
        "/receipts", params={"receipt_no": donation["receipt_no"]}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/receipts/{donation['receipt_no']}"
    shown = page(world, response.headers["location"]).text
    assert "¥88.00" in shown
    assert "/static/audit/verify-receipt.js" in shown  # the audit log's check, in the browser
    assert "正在您的浏览器中验证" in shown  # until it has run
    assert "JavaScript 已关闭" in shown  # and, without it, says it did not check


def test_the_donations_page_finds_a_receipt_and_pages_the_rest(world: World) -> None:
    receipts = [world.donate(f"{n}.00")["receipt_no"] for n in range(1, 4)]
    found = page(world, f"/funds/{FUND}/donations?receipt={receipts[1]}").text
    assert receipts[1] in found
    assert receipts[0] not in found
    missing = page(world, f"/funds/{FUND}/donations?receipt=nope").text
    assert "nope" in missing  # "no donation with receipt number nope"


def test_a_grant_page_shows_its_approvals_and_a_grant_of_no_such_fund_is_not_found(
    world: World,
) -> None:
    world.donate("1000.00")
    grant = world.committed_grant("500.00")
    shown = page(world, f"/funds/{FUND}/grants/{grant['id']}").text
    assert grant["title"] in shown
    assert "¥500.00" in shown
    assert page(world, f"/funds/other-fund/grants/{grant['id']}").status_code == 404


def test_no_page_shows_a_donors_name_or_contact(world: World) -> None:
    donation = world.donate(donor={"name": "欧阳明珠", "contact": "13912345678"})
    for path in (
        "/",
        f"/funds/{FUND}",
        f"/funds/{FUND}/donations",
        f"/receipts/{donation['receipt_no']}",
        f"/funds/{FUND}/reports/2026-Q4",
        f"/funds/{FUND}/reports/2026-11/poster",
        "/no-such-page",
    ):
        text = page(world, path).text
        assert "欧阳明珠" not in text, path
        assert "13912345678" not in text, path
    assert donation["donor"] in page(world, f"/funds/{FUND}").text  # the masked name is shown


def test_a_kept_page_is_rendered_again_once_the_read_models_move(world: World) -> None:
    world.donate("100.00")
    first = page(world, f"/funds/{FUND}?lang=zh").text
    assert first == page(world, f"/funds/{FUND}?lang=zh").text
    assert 'data-figure="received">¥100.00<' in first
    world.donate("23.00")
    assert 'data-figure="received">¥123.00<' in page(world, f"/funds/{FUND}?lang=zh").text


def test_the_fund_page_shows_the_hosts_credit_code_and_fundraising_status_once_recorded(
    world: World,
) -> None:
    assert "尚未登记" in page(world, f"/funds/{FUND}?lang=zh").text
    body = {
        "name": "茶乡公益基金会",
        "credit_code": "53100000500021676K",
        "public_fundraising": True,
    }
    response = world.client.put(f"/api/funds/{FUND}/host", json=body, headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    shown = page(world, f"/funds/{FUND}?lang=zh").text
    assert "53100000500021676K" in shown
    assert "茶乡公益基金会" in shown
    assert "尚未登记" not in shown
