"""``ledger fund host``: the host charity's details from the command line."""

from __future__ import annotations

import pytest
from test_cli import FUND, OPEN_FUND, assert_one_line_error, ledger_env, ok, ok_json, run

__all__ = ["ledger_env"]  # the fixture, shared with test_cli

HOST = ("--name", "示例公益基金会", "--credit-code", "53100000500021676K")


@pytest.mark.usefixtures("ledger_env")
def test_fund_host_records_the_host_and_fund_show_shows_it() -> None:
    ok(*OPEN_FUND)
    assert ok_json("fund", "show", FUND)["host_details"] is None
    out = ok("fund", "host", FUND, *HOST, "--public-fundraising", "yes", "--actor", "admin")
    assert out.stdout.splitlines() == [
        f"host of {FUND}",
        "  name: 示例公益基金会",
        "  credit_code: 53100000500021676K",
        "  public_fundraising: true",
    ]
    shown = ok_json("fund", "show", FUND)
    assert shown["host_details"] == {
        "name": "示例公益基金会",
        "credit_code": "53100000500021676K",
        "public_fundraising": True,
    }
    text = ok("fund", "show", FUND).stdout
    assert "host credit code: 53100000500021676K · public fundraising (公开募捐资格): yes" in text
    no = ok_json("fund", "host", FUND, *HOST, "--public-fundraising", "no", "--actor", "admin")
    assert no["public_fundraising"] is False


@pytest.mark.usefixtures("ledger_env")
def test_fund_host_refuses_a_bad_credit_code_in_one_line() -> None:
    ok(*OPEN_FUND)
    result = run(
        "fund", "host", FUND, "--name", "示例公益基金会", "--credit-code", "53100000500021676J",
        "--public-fundraising", "yes", "--actor", "admin",
    )  # fmt: skip
    assert_one_line_error(result, exit_code=1, slug="invalid-credit-code")
    assert ok_json("fund", "show", FUND)["host_details"] is None


@pytest.mark.usefixtures("ledger_env")
def test_fund_host_takes_only_yes_or_no() -> None:
    ok(*OPEN_FUND)
    result = run("fund", "host", FUND, *HOST, "--public-fundraising", "maybe", "--actor", "admin")
    assert result.exit_code == 2
