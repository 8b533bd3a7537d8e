"""``ledger grant progress``: progress notes from the command line, shown by ``grant show``."""

from __future__ import annotations

import pytest
from test_cli import FUND, OPEN_FUND, assert_one_line_error, ledger_env, ok, ok_json, run

__all__ = ["ledger_env"]  # the fixture, shared with test_cli


def committed_grant() -> str:
    ok(*OPEN_FUND)
    ok("donation", "record", FUND, "--amount", "500.00", "--received-on", "2026-01-05",
       "--channel", "cash", "--key", "d1", "--actor", "出纳")  # fmt: skip
    grant = ok_json("grant", "propose", FUND, "--title", "课桌椅", "--amount", "100.00",
                    "--grantee-name", "河边小学", "--key", "g1", "--actor", "甲")  # fmt: skip
    ok("grant", "approve", grant["id"], "--actor", "乙")
    ok("grant", "approve", grant["id"], "--actor", "丙")
    return str(grant["id"])


@pytest.mark.usefixtures("ledger_env")
def test_grant_progress_records_a_note_and_grant_show_lists_it() -> None:
    grant_id = committed_grant()
    today = ok_json("grant", "show", grant_id)["proposed_on"]
    args = (
        "grant", "progress", grant_id, "--on", today, "--note", "课桌椅已送到",
        "--evidence", "e" * 64, "--evidence", "f" * 64, "--key", "p1", "--actor", "出纳",
    )  # fmt: skip
    out = ok(*args).stdout.splitlines()
    assert out[0] == "recorded progress note 1"
    assert "  note: 课桌椅已送到" in out
    again = ok_json(*args)
    assert again["created"] is False
    assert again["no"] == 1
    assert again["evidence_sha256"] == ["e" * 64, "f" * 64]
    shown = ok_json("grant", "show", grant_id)
    assert [p["note"] for p in shown["progress"]] == ["课桌椅已送到"]
    assert shown["disclosure"]["status"] == "up-to-date"


@pytest.mark.usefixtures("ledger_env")
def test_grant_progress_refuses_a_final_account_before_the_end_in_one_line() -> None:
    grant_id = committed_grant()
    today = ok_json("grant", "show", grant_id)["proposed_on"]
    result = run("grant", "progress", grant_id, "--on", today, "--note", "n", "--final",
                 "--key", "p1", "--actor", "出纳")  # fmt: skip
    assert_one_line_error(result, exit_code=1, slug="invalid-state")
    ok("grant", "close", grant_id, "--reason", "完成", "--actor", "甲")
    final = ok_json("grant", "progress", grant_id, "--on", today, "--note", "决算：结余退回",
                    "--final", "--key", "p1", "--actor", "出纳")  # fmt: skip
    assert final["final"] is True
    assert ok_json("grant", "show", grant_id)["disclosure"]["status"] == "done"


@pytest.mark.usefixtures("ledger_env")
def test_grant_progress_refuses_a_bad_evidence_hash() -> None:
    grant_id = committed_grant()
    today = ok_json("grant", "show", grant_id)["proposed_on"]
    result = run("grant", "progress", grant_id, "--on", today, "--note", "n",
                 "--evidence", "xyz", "--key", "p1", "--actor", "出纳")  # fmt: skip
    assert_one_line_error(result, exit_code=1, slug="invalid-field")
