"""Languages of the public pages: which one a request gets, its catalogue, and Babel's
formatting of money, numbers and dates in it.

A request's language: ``?lang=`` (``zh`` or ``en``), then the ``lang`` cookie the language
switch sets, then ``Accept-Language``; Simplified Chinese when none of them names one we have.
The catalogues are ``locale/<locale>/LC_MESSAGES/messages.mo`` beside this module, compiled
from the ``.po`` files by ``pybabel compile`` and committed (docs/pages.md).
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.numbers import format_currency, format_decimal, format_percent

LOCALE_DIR = Path(__file__).parent / "locale"
LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Language:
    code: str  # what ?lang= and the cookie carry
    locale: str  # Babel's and the catalogue's name
    html_lang: str  # the <html lang> attribute
    name: str  # the language's own name, for the switch


LANGUAGES: dict[str, Language] = {
    "zh": Language("zh", "zh_Hans_CN", "zh-Hans", "中文"),
    "en": Language("en", "en", "en", "English"),
}
DEFAULT_LANGUAGE = "zh"


def _known(code: str | None) -> str | None:
    if not code:
        return None
    code = code.strip().lower().replace("_", "-")
    if code in LANGUAGES:
        return code
    primary = code.split("-", 1)[0]
    return primary if primary in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The best of ours in an Accept-Language header (by q, then order), or None."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")[:32]):  # a bounded header
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        known = _known(tag)
        if known is not None and q > 0:
            ranked.append((-q, i, known))
    return min(ranked)[2] if ranked else None


def choose(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    return (
        _known(query) or _known(cookie) or from_accept_language(accept_language) or DEFAULT_LANGUAGE
    )


@cache
def formats(code: str) -> Formats:
    return Formats(code)


@cache
def translations(code: str) -> gettext.NullTranslations:
    language = LANGUAGES[code]
    try:
        return gettext.translation("messages", LOCALE_DIR, languages=[language.locale])
    except FileNotFoundError:
        return gettext.NullTranslations()


@dataclass(frozen=True, slots=True)
class MoneyShape:
    """How the locale writes a non-negative amount of a currency, read once from Babel's
    own output: prefix, group and decimal symbols, fraction digits, suffix. Formatting with
    it gives Babel's text (a test compares them) at a fraction of the cost."""

    prefix: str
    group: str
    decimal: str
    digits: int
    suffix: str

    def apply(self, value: Decimal) -> str:
        text = f"{value:,.{self.digits}f}"
        if self.group != "," or self.decimal != ".":
            text = text.translate({ord(","): self.group, ord("."): self.decimal})
        return self.prefix + text + self.suffix


@cache
def money_shape(locale: str, currency: str) -> MoneyShape | None:
    """None when the locale's pattern is not the plain grouped-by-three one (Babel formats)."""
    sample = format_currency(Decimal("1234567.5"), currency, locale=locale)
    start, end = sample.find("1"), sample.rfind("5")
    body = sample[start:]
    if start < 0 or len(body) < 9 or body[1] != body[5] or body[1].isdigit():
        return None
    digits = 0
    tail = sample[end + 1 :] if end >= 0 else ""
    while digits < len(tail) and tail[digits].isdigit():
        digits += 1
    shape = MoneyShape(
        prefix=sample[:start],
        group=body[1],
        decimal=body[9] if len(body) > 9 and not body[9].isdigit() else ".",
        digits=digits + 1 if len(body) > 9 else 0,
        suffix=sample[end + 1 + digits :],
    )
    return shape if shape.apply(Decimal("1234567.5")) == sample else None


class Formats:
    """Babel's formats in one language (bound to the templates as ``fmt``)."""

    def __init__(self, code: str) -> None:
        self.language = LANGUAGES[code]
        self.locale = Locale.parse(self.language.locale)

    def money(self, amount: str | Decimal, currency: str) -> str:
        """A decimal string of the API (``"1234.50"``) in the locale: ¥1,234.50."""
        value = Decimal(amount)
        shape = money_shape(self.language.locale, currency)
        if shape is None or value < 0 or value.as_tuple().exponent < -shape.digits:  # type: ignore[operator]
            return format_currency(value, currency, locale=self.locale)
        return shape.apply(value)

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def percent(self, share: Decimal | str | None) -> str:
        if share is None:
            return "—"
        return format_percent(Decimal(share), format="#,##0.0%", locale=self.locale)

    def day(self, value: date | str | None) -> str:
        """2026年11月27日 / November 27, 2026."""
        if value is None:
            return "—"
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        return format_date(value, format="long", locale=self.locale)

    def short_month(self, value: str) -> str:
        """``YYYY-MM`` → 11月 / Nov (the chart's axis)."""
        return format_skeleton("MMM", date.fromisoformat(value + "-01"), locale=self.locale)

    def month(self, value: str) -> str:
        """``YYYY-MM`` → 2026年11月 / Nov 2026."""
        day = date.fromisoformat(value + "-01")
        return format_skeleton("yMMM", day, locale=self.locale)
