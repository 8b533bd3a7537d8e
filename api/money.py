"""Money at the edge: decimal strings in, minor units to the application."""

from __future__ import annotations

from ledger.domain.errors import InvalidInput
from ledger.domain.money import parse_amount


def amount_minor(text: str, *, currency: str, field: str = "amount") -> int:
    """``"100.00"`` → 10000 for CNY; too many decimals, zero or less → 422 naming ``field``."""
    try:
        return parse_amount(text, currency=currency)
    except InvalidInput as e:
        e.facts.setdefault("field", field)
        raise
