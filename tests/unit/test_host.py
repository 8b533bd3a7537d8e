"""The host charity's details on a fund, and the unified social credit code's check
character (GB 32100-2015)."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.domain.credit_code import CREDIT_CODE_ALPHABET, check_character, check_credit_code
from ledger.domain.errors import InvalidCreditCode, InvalidField
from ledger.domain.fund import Fund

# Codes as published by their holders (national enterprise credit information system).
KNOWN_VALID = (
    "91350100M000100Y43",  # the worked example of GB 32100-2015
    "91110000802100433B",  # 北京百度网讯科技有限公司
    "91440300708461136T",  # 深圳市腾讯计算机系统有限公司
    "91110108551385082Q",  # 小米科技有限责任公司
    "53100000500021676K",  # a foundation registered with the Ministry of Civil Affairs
)
HOST_CODE = "53100000500021676K"


@pytest.mark.parametrize("code", KNOWN_VALID)
def test_known_credit_codes_are_valid(code: str) -> None:
    assert check_credit_code(code) == code
    assert check_character(code[:17]) == code[17]


def test_the_check_character_of_the_standards_example() -> None:
    assert check_character("91350100M000100Y4") == "3"


def test_a_check_sum_of_zero_is_written_as_zero() -> None:
    # 17 zeros sum to 0: 31 - 0 = 31, written "0"
    assert check_character("0" * 17) == "0"
    assert check_credit_code("0" * 18) == "0" * 18


def test_the_alphabet_has_no_i_o_z_s_v() -> None:
    assert len(CREDIT_CODE_ALPHABET) == 31
    assert not set("IOZSV") & set(CREDIT_CODE_ALPHABET)


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("91350100M000100Y4", "has 18 characters, not 17"),  # one short
        ("91350100M000100Y433", "has 18 characters, not 19"),  # one long
        ("", "not 0"),
        ("91350100m000100Y43", "'m'"),  # lower case
        ("91350100I000100Y4" + "3", "'I'"),  # a letter outside the alphabet
        ("91350100O000100Y43", "'O'"),
        ("91350100M000100Y4 ", "' '"),
        ("91350100M000100Y44", "check character is '4', its digits give '3'"),  # wrong check
        ("91350100M000010Y43", "check character"),  # two digits swapped
        ("９1350100M000100Y43", "'９'"),  # a full-width digit
    ],
)
def test_each_kind_of_invalid_credit_code_is_refused(code: str, why: str) -> None:
    with pytest.raises(InvalidCreditCode) as excinfo:
        check_credit_code(code)
    assert why in str(excinfo.value)
    assert excinfo.value.facts["field"] == "credit_code"


def test_a_credit_code_must_be_text() -> None:
    with pytest.raises(InvalidCreditCode):
        check_credit_code(91350100)


def test_an_invalid_credit_code_is_invalid_input() -> None:
    assert issubclass(InvalidCreditCode, InvalidField)
    assert InvalidCreditCode.slug == "invalid-credit-code"


# -- the fund --------------------------------------------------------------------------------


def record(fund: Fund, **overrides: Any) -> bool:
    fields: dict[str, Any] = {
        "name": "示例公益基金会",
        "credit_code": HOST_CODE,
        "public_fundraising": True,
        "actor": "admin",
    }
    fields.update(overrides)
    return fund.record_host_details(**fields)


def test_a_fund_opened_without_host_details_has_none(open_fund: Any) -> None:
    fund = open_fund()
    assert fund.host == "Host charity"
    assert fund.host_credit_code is None
    assert fund.host_public_fundraising is None


def test_recording_host_details_records_one_event(
    open_fund: Any, event_names: Any, replayed: Any
) -> None:
    fund = open_fund()
    fund.collect_events()
    assert record(fund) is True
    events = fund.collect_events()
    assert [type(e).__qualname__ for e in events] == ["Fund.HostDetailsRecorded"]
    (e,) = events
    assert (e.name, e.credit_code, e.public_fundraising, e.actor) == (
        "示例公益基金会",
        HOST_CODE,
        True,
        "admin",
    )
    assert (fund.host, fund.host_credit_code, fund.host_public_fundraising) == (
        "示例公益基金会",
        HOST_CODE,
        True,
    )


def test_host_details_replay(open_fund: Any, replayed: Any) -> None:
    fund = open_fund()
    record(fund, public_fundraising=False)
    rebuilt = replayed(fund.collect_events())
    assert rebuilt.__dict__ == fund.__dict__
    assert rebuilt.host_public_fundraising is False


def test_the_same_host_details_again_record_nothing(open_fund: Any, event_names: Any) -> None:
    fund = open_fund()
    record(fund)
    fund.collect_events()
    assert record(fund) is False
    assert record(fund, name=" 示例公益基金会 ") is False
    assert event_names(fund) == []
    assert record(fund, public_fundraising=False) is True
    assert event_names(fund) == ["Fund.HostDetailsRecorded"]


def test_host_details_with_a_bad_credit_code_are_refused(open_fund: Any, event_names: Any) -> None:
    fund = open_fund()
    fund.collect_events()
    with pytest.raises(InvalidCreditCode):
        record(fund, credit_code="53100000500021676J")
    assert event_names(fund) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "host name"),
        ({"name": "x" * 201}, "host name"),
        ({"name": "a\x00b"}, "host name"),
        ({"public_fundraising": "yes"}, "public_fundraising"),
        ({"public_fundraising": 1}, "public_fundraising"),
    ],
)
def test_host_details_are_checked(open_fund: Any, overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as excinfo:
        record(open_fund(), **overrides)
    assert excinfo.value.facts["field"] == field


def test_the_host_name_may_be_200_characters(open_fund: Any) -> None:
    assert record(open_fund(), name="x" * 200) is True
