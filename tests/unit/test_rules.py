"""The rules shared by every aggregate, at their exact boundaries: the text policy and the
window of business dates (``ledger.domain.common``)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ledger.domain.common import (
    BUSINESS_DATE_GRACE_DAYS,
    check_business_date,
    check_date,
    check_text,
    identity_key,
)
from ledger.domain.errors import DateInFuture, DateTooEarly, InvalidDate, InvalidField

TODAY = date(2026, 11, 27)

# One of each character class the text policy refuses (issue 10, item 8).
REFUSED = {
    "NUL": "\x00",
    "BEL": "\x07",
    "ESC": "\x1b",
    "DEL": "\x7f",
    "C1 (NEL)": "\x85",
    "C1 (CSI)": "\x9b",
    "tab": "\t",
    "carriage return": "\r",
    "line feed in a name": "\n",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "byte order mark": "\ufeff",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "private use": "\ue000",
    "unassigned": "\U000e0fff",
    "lone surrogate": "\ud800",
}


@pytest.mark.parametrize("ch", REFUSED.values(), ids=REFUSED.keys())
def test_a_name_with_a_control_format_or_separator_character_is_refused(ch: str) -> None:
    with pytest.raises(InvalidField) as refused:
        check_text("name", f"张{ch}三", max_len=200)
    assert refused.value.facts["codepoint"] == f"U+{ord(ch):04X}"


def test_long_form_text_may_hold_line_feeds_and_nothing_else_of_those() -> None:
    assert check_text("note", "第一行\n第二行", max_len=200, multiline=True) == "第一行\n第二行"
    for ch in ("\r", "\t", "\u2028", "\x1b"):
        with pytest.raises(InvalidField):
            check_text("note", f"a{ch}b", max_len=200, multiline=True)


def test_text_is_recorded_in_nfc_and_trimmed() -> None:
    assert check_text("name", "  Zoe\u0308 ", max_len=200) == "Zo\u00eb"
    with pytest.raises(InvalidField):
        check_text("name", " \u3000 ", max_len=200)  # ideographic space only: blank
    assert check_text("name", "", max_len=200, required=False) == ""


def test_the_length_limit_counts_characters_after_normalising() -> None:
    decomposed = "e\u0301" * 10  # 20 code points, 10 characters in NFC
    assert check_text("name", decomposed, max_len=10) == "\u00e9" * 10
    with pytest.raises(InvalidField):
        check_text("name", "\u00e9" * 11, max_len=10)


def test_names_are_one_identity_in_nfc_only() -> None:
    assert identity_key("Zoe\u0308") == identity_key("Zo\u00eb")
    assert identity_key("Bob") != identity_key("bob")


@pytest.mark.parametrize(
    "text", ["20261127", "2026-W48-5", "2026-11-27T00:00", "1764720000", "2026-11-7", ""]
)
def test_only_iso_calendar_dates_are_dates(text: str) -> None:
    with pytest.raises(InvalidDate):
        check_date("received_on", text)
    assert check_date("received_on", "2026-11-27") == TODAY


def test_the_window_of_business_dates_at_its_exact_boundaries() -> None:
    opened_on = date(2026, 3, 1)
    earliest = opened_on - timedelta(days=BUSINESS_DATE_GRACE_DAYS)
    assert check_business_date("d", earliest, opened_on=opened_on, today=TODAY) == earliest
    assert check_business_date("d", TODAY, opened_on=opened_on, today=TODAY) == TODAY
    with pytest.raises(DateTooEarly):
        check_business_date("d", earliest - timedelta(days=1), opened_on=opened_on, today=TODAY)
    with pytest.raises(DateInFuture):
        check_business_date("d", TODAY + timedelta(days=1), opened_on=opened_on, today=TODAY)
