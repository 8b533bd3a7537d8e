"""Exact money: an integer count of minor units and an ISO 4217 currency.

Amounts live as ``int`` minor units everywhere inside (events, aggregates, tables). Decimal
strings exist only at the edges, converted with the currency's exponent; rounding is never
silent: more fractional digits than the currency has is an error, and so are floats, NaN,
infinities and signs where they are not allowed.
"""

from __future__ import annotations

import re
from decimal import Decimal

from ledger.domain.errors import (
    AmountNotPositive,
    InvalidAmount,
    TooManyDecimals,
    UnknownCurrency,
)

# ISO 4217 minor units of the currencies a community fund is likely to hold. A currency not
# listed here is refused rather than guessed.
CURRENCY_EXPONENTS: dict[str, int] = {
    "CNY": 2, "HKD": 2, "MOP": 2, "TWD": 2, "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2,
    "CAD": 2, "AUD": 2, "NZD": 2, "SGD": 2, "MYR": 2, "THB": 2, "PHP": 2, "INR": 2,
    "IDR": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "HUF": 2, "ZAR": 2,
    "BRL": 2, "MXN": 2, "ARS": 2, "RUB": 2, "TRY": 2, "ILS": 2, "AED": 2, "SAR": 2,
    "EGP": 2, "NGN": 2, "KES": 2, "PKR": 2, "BDT": 2, "LKR": 2, "NPR": 2, "MNT": 2,
    "JPY": 0, "KRW": 0, "VND": 0, "ISK": 0, "CLP": 0, "PYG": 0, "UGX": 0, "XAF": 0,
    "XOF": 0, "KMF": 0, "RWF": 0, "BIF": 0, "DJF": 0, "GNF": 0, "VUV": 0, "XPF": 0,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "IQD": 3, "LYD": 3, "TND": 3,
}  # fmt: skip

# The largest amount one entry may carry: 10^15 minor units (10 trillion yuan). A signed
# 64-bit column holds about 9.2 * 10^18, so some 9,200 such entries could overflow a running
# sum: the bound of one entry does not bound a fund's figures by itself. That is
# ``ledger.domain.figures.FIGURE_MINOR_MAX`` (10^17), checked by every money command.
AMOUNT_MINOR_MAX = 10**15

_DECIMAL_RE = re.compile(r"^(?P<sign>-)?(?P<int>[0-9]{1,18})(?:\.(?P<frac>[0-9]{1,18}))?$")


def exponent_of(currency: str) -> int:
    """The number of fractional digits of ``currency`` (CNY → 2, JPY → 0)."""
    try:
        return CURRENCY_EXPONENTS[currency] if isinstance(currency, str) else CURRENCY_EXPONENTS[""]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {currency!r}", currency=currency) from None


def parse_amount(text: object, *, currency: str, allow_zero: bool = False) -> int:
    """Convert a decimal string ("1234.50") to minor units of ``currency``.

    Only ``str`` (or an exact ``int`` / ``Decimal``) is accepted: a float has already lost
    exactness. The amount must be positive (or zero when ``allow_zero``).
    """
    exponent = exponent_of(currency)
    if isinstance(text, (bool, float)):
        raise InvalidAmount("amounts are decimal strings, not floats", value=repr(text))
    if isinstance(text, int):
        text = str(text)
    elif isinstance(text, Decimal):
        if not text.is_finite():
            raise InvalidAmount(f"amount {text} is not a number", value=str(text))
        text = format(text, "f")
    if not isinstance(text, str):
        raise InvalidAmount("amounts are decimal strings", value=repr(text))
    match = _DECIMAL_RE.fullmatch(text)  # not .match: "$" also matches before a final "\n"
    if match is None:
        raise InvalidAmount(f"{text!r} is not a decimal amount", value=text)
    frac = match["frac"] or ""
    if len(frac) > exponent:
        raise TooManyDecimals(
            f"{text} has more than {exponent} fractional digits for {currency}",
            value=text,
            currency=currency,
            exponent=exponent,
        )
    frac = frac.ljust(exponent, "0")
    minor: int = int(match["int"]) * 10**exponent + (int(frac) if frac else 0)
    if match["sign"]:
        minor = -minor
    return check_amount(minor, allow_zero=allow_zero)


def check_amount(amount_minor: int, *, allow_zero: bool = False) -> int:
    """Refuse a non-integer, a negative (or zero) or an absurdly large amount."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise InvalidAmount("amount must be an integer of minor units", value=repr(amount_minor))
    if amount_minor < 0 or (amount_minor == 0 and not allow_zero):
        raise AmountNotPositive(
            f"amount must be {'zero or more' if allow_zero else 'positive'}",
            amount_minor=amount_minor,
        )
    if amount_minor > AMOUNT_MINOR_MAX:
        raise InvalidAmount("amount is larger than any entry may be", amount_minor=amount_minor)
    return amount_minor


def format_amount(amount_minor: int, *, currency: str) -> str:
    """Minor units to the canonical decimal string: 123450 CNY → "1234.50"."""
    exponent = exponent_of(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exponent)
    if exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{exponent}d}"
