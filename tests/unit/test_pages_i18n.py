"""The pages' languages and formats, without a server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_currency

from api.pages.data import last_months, period_bounds
from api.pages.i18n import Formats, choose, from_accept_language


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "chosen"),
    [
        (None, None, None, "zh"),
        ("en", "zh", "zh", "en"),
        ("EN", None, None, "en"),
        ("zh-CN", None, None, "zh"),
        ("de", "en", None, "en"),
        (None, None, "en-US,en;q=0.9,zh;q=0.8", "en"),
        (None, None, "zh;q=0.5,en;q=0.9", "en"),
        (None, None, "en;q=0", "zh"),
        (None, None, "de, fr;q=0.9", "zh"),
        (None, None, "zh-Hant-TW", "zh"),
    ],
)
def test_the_language_is_the_query_then_the_cookie_then_accept_language(
    query: str | None, cookie: str | None, accept: str | None, chosen: str
) -> None:
    assert choose(query, cookie, accept) == chosen


def test_a_malformed_accept_language_chooses_nothing() -> None:
    assert from_accept_language(";;;,q=x,en;q=abc") is None


@pytest.mark.parametrize("code", ["zh", "en"])
@pytest.mark.parametrize("currency", ["CNY", "JPY", "USD", "BHD"])
@pytest.mark.parametrize(
    "amount", ["0", "0.00", "0.5", "5", "1234.50", "1000000.00", "99999999999.99", "-3.00"]
)
def test_money_is_formatted_exactly_as_babel_formats_it(
    code: str, currency: str, amount: str
) -> None:
    locale = {"zh": "zh_Hans_CN", "en": "en"}[code]
    expected = format_currency(Decimal(amount), currency, locale=locale)
    assert Formats(code).money(amount, currency) == expected


def test_dates_and_money_in_chinese_and_english() -> None:
    zh, en = Formats("zh"), Formats("en")
    assert zh.money("1234.50", "CNY") == "¥1,234.50"
    assert zh.day("2026-11-27") == "2026年11月27日"
    assert en.day("2026-11-27") == "November 27, 2026"
    assert zh.month("2026-11") == "2026年11月"
    assert zh.percent(Decimal("0.0523")) == "5.2%"


def test_periods_and_the_last_twelve_months() -> None:
    from datetime import date

    assert period_bounds("2026-Q4") == (date(2026, 10, 1), date(2026, 12, 31))
    assert period_bounds("2026-Q1") == (date(2026, 1, 1), date(2026, 3, 31))
    assert period_bounds("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert period_bounds("2026-12") == (date(2026, 12, 1), date(2026, 12, 31))
    months = last_months(date(2026, 3, 15))
    assert months[0] == "2025-04"
    assert months[-1] == "2026-03"
    assert len(months) == 12
