"""The ``ledger`` command line, end to end: through Typer's runner and as a real process.

Each test has its own SQLite database and key folder under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from api.cli import app
from ledger.settings import get_settings

SUBPROCESS_TIMEOUT_S = 120

FUND = "river-school"
OPEN_FUND = (
    "fund", "open", FUND, "--name", "河边小学基金", "--currency", "CNY", "--host", "示例公益基金会",
    "--committee", "甲", "--committee", "乙", "--committee", "丙", "--approvals-required", "2",
    "--purpose", "education=教育", "--actor", "admin",
)  # fmt: skip


@pytest.fixture
def ledger_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/l.db",
        "LEDGER_KEY_DIR": str(tmp_path / "keys"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "--format", "json").stdout)


def figures(slug: str) -> dict[str, Any]:
    figures: dict[str, Any] = ok_json("fund", "show", slug)["figures"]
    return figures


def assert_one_line_error(result: Result, *, exit_code: int, slug: str | None = None) -> None:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    if slug is not None:
        assert lines[0].endswith(f"[{slug}]")


def row_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def record_args(amount: str, key: str, *extra: str) -> tuple[str, ...]:
    return (
        "donation", "record", FUND, "--amount", amount, "--received-on", "2025-01-15",
        "--channel", "bank", "--key", key, "--actor", "treasurer", *extra,
    )  # fmt: skip


def record_donation(amount: str, key: str, *extra: str) -> Result:
    return run(*record_args(amount, key, *extra))


# -- demo ------------------------------------------------------------------------------------


def test_demo_twice_records_nothing_new_and_prints_the_same_figures(
    ledger_env: dict[str, str], tmp_path: Path
) -> None:
    first = ok("demo", "--no-serve")
    figures_first = figures("tea-village")
    rows_first = row_counts(tmp_path / "l.db")

    second = ok("demo", "--no-serve")

    assert second.stdout == first.stdout
    assert figures("tea-village") == figures_first
    assert row_counts(tmp_path / "l.db") == rows_first
    assert rows_first["stored_events"] > 30


def test_demo_history_has_the_expected_figures(ledger_env: dict[str, str]) -> None:
    result = ok("demo", "--no-serve")

    assert "茶乡振兴基金 (tea-village)" in result.stdout
    shown = ok_json("fund", "show", "tea-village")
    assert shown["committee"] == ["李德福", "王秀英", "张建国"]
    assert shown["approvals_required"] == 2
    # By code, as GET /api/funds/{slug} lists them (the CLI shows the API's view).
    assert [p["code"] for p in shown["purposes"]] == ["education", "elderly-care"]
    assert len(shown["closed_periods"]) == 1
    totals = shown["figures"]["totals"]
    assert totals == {
        "received": "70640.00",
        "refunded": "2400.00",
        "committed": "27000.00",
        "released": "600.00",
        "disbursed": "19400.00",
        "expenses": "2005.00",
        "on_hand": "46835.00",
        "available": "39835.00",
    }
    assert shown["figures"]["purposes"]["education"]["available"] == "7300.00"
    for line in ("received", "on_hand", "available"):
        assert line in result.stdout


def test_demo_as_a_real_process_prints_the_figures(
    ledger_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **ledger_env}
    command = [sys.executable, "-m", "api.cli", "demo", "--no-serve"]

    first = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT_S, check=False,
    )  # fmt: skip
    second = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT_S, check=False,
    )  # fmt: skip

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "茶乡振兴基金" in first.stdout
    assert "70640.00" in first.stdout
    assert second.stdout == first.stdout
    assert first.stderr == ""


# -- funds and donations ---------------------------------------------------------------------


def test_init_creates_the_database_and_the_keys(ledger_env: dict[str, str], tmp_path: Path) -> None:
    result = ok("init")

    assert (tmp_path / "l.db").exists()
    assert any((tmp_path / "keys").iterdir())
    assert str(tmp_path / "l.db") in result.stdout


def test_database_url_option_overrides_the_environment(
    ledger_env: dict[str, str], tmp_path: Path
) -> None:
    other = tmp_path / "other" / "o.db"

    ok("--database-url", f"sqlite:///{other}", "init")

    assert other.exists()
    assert not (tmp_path / "l.db").exists()


def test_a_recorded_donation_shows_in_the_figures(ledger_env: dict[str, str]) -> None:
    ok(*OPEN_FUND)

    result = record_donation("100.00", "d-1", "--purpose", "education", "--donor-name", "王小明")

    assert result.exit_code == 0, result.stderr
    assert f"receipt_no: {FUND}-2025-000001" in result.stdout
    assert "id: " in result.stdout
    shown = figures(FUND)
    assert shown["totals"]["received"] == "100.00"
    assert shown["purposes"]["education"]["available"] == "100.00"
    assert shown["unrestricted"]["received"] == "0.00"
    text = ok("fund", "show", FUND).stdout
    assert "100.00" in text


def test_a_retried_donation_records_nothing_new(ledger_env: dict[str, str]) -> None:
    ok(*OPEN_FUND)
    first = json.loads(record_donation("100.00", "d-1", "--format", "json").stdout)

    again = json.loads(record_donation("100.00", "d-1", "--format", "json").stdout)
    other = record_donation("200.00", "d-1")

    assert (first["created"], again["created"]) == (True, False)
    assert again["receipt_no"] == first["receipt_no"]
    assert_one_line_error(other, exit_code=1, slug="idempotency-key-reused")
    assert figures(FUND)["totals"]["received"] == "100.00"


def test_an_amount_with_too_many_decimals_is_refused_and_records_nothing(
    ledger_env: dict[str, str],
) -> None:
    ok(*OPEN_FUND)

    result = record_donation("1.001", "d-1")

    assert_one_line_error(result, exit_code=1, slug="too-many-decimals")
    assert figures(FUND)["totals"]["received"] == "0.00"


def test_a_bad_amount_fails_the_same_way_in_a_real_process(
    ledger_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **ledger_env}
    ok(*OPEN_FUND)

    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "donation", "record", FUND, "--amount", "1.001",
         "--received-on", "2025-01-15", "--channel", "cash", "--key", "d-1", "--actor", "t"],
        env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT_S, check=False,
    )  # fmt: skip

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: 1.001 has more than 2 fractional digits for CNY [too-many-decimals]"
    ]
    assert figures(FUND)["totals"]["received"] == "0.00"


def test_an_unknown_fund_is_refused(ledger_env: dict[str, str]) -> None:
    ok("init")

    assert_one_line_error(run("fund", "show", "nope"), exit_code=1, slug="fund-not-found")
    assert_one_line_error(
        run("donation", "record", "nope", "--amount", "5", "--received-on", "2025-01-15",
            "--channel", "cash", "--key", "k", "--actor", "t"),
        exit_code=1,
        slug="fund-not-found",
    )  # fmt: skip


def test_a_usage_mistake_exits_2_with_one_line(ledger_env: dict[str, str]) -> None:
    assert_one_line_error(run("donation", "record", FUND), exit_code=2)
    assert_one_line_error(run("fund", "show", FUND, "--format", "xml"), exit_code=2)
    assert_one_line_error(run("fund", "open", "x", "--purpose", "no-equals-sign"), exit_code=2)
    assert_one_line_error(run("--no-such-option"), exit_code=2)


def test_refund_and_reversal(ledger_env: dict[str, str]) -> None:
    ok(*OPEN_FUND)
    first = json.loads(record_donation("100.00", "d-1", "--format", "json").stdout)
    second = json.loads(record_donation("30.00", "d-2", "--format", "json").stdout)

    ok("donation", "refund", first["id"], "--amount", "40.00", "--reason", "asked back",
       "--key", "r-1", "--actor", "treasurer")  # fmt: skip
    ok("donation", "reverse", second["id"], "--reason", "recorded in error", "--actor", "t")
    too_much = run("donation", "refund", first["id"], "--amount", "60.01", "--reason", "x",
                   "--key", "r-2", "--actor", "treasurer")  # fmt: skip

    assert_one_line_error(too_much, exit_code=1, slug="refund-too-large")
    totals = figures(FUND)["totals"]
    assert (totals["received"], totals["refunded"], totals["on_hand"]) == (
        "130.00",
        "70.00",
        "60.00",
    )


# -- grants and expenses ---------------------------------------------------------------------


def test_a_grant_through_its_whole_life(ledger_env: dict[str, str]) -> None:
    ok(*OPEN_FUND)
    ok(*record_args("1000.00", "d-1", "--purpose", "education"))
    grant = ok_json(
        "grant", "propose", FUND, "--title", "图书角", "--amount", "600.00",
        "--grantee-name", "河边小学", "--purpose", "education", "--key", "g-1", "--actor", "甲",
    )  # fmt: skip
    grant_id = grant["id"]
    assert grant["status"] == "proposed"

    own = run("grant", "approve", grant_id, "--actor", "甲")
    assert_one_line_error(own, exit_code=1, slug="self-approval")
    assert ok_json("grant", "approve", grant_id, "--actor", "乙")["status"] == "proposed"
    assert ok_json("grant", "approve", grant_id, "--actor", "丙")["status"] == "committed"
    paid = ok_json(
        "grant", "disburse", grant_id, "--amount", "400.00", "--method", "bank",
        "--reference", "TX-1", "--key", "t-1", "--actor", "treasurer",
    )  # fmt: skip
    over = run(
        "grant", "disburse", grant_id, "--amount", "200.01", "--method", "bank",
        "--reference", "TX-2", "--key", "t-2", "--actor", "treasurer",
    )  # fmt: skip
    closed = ok_json("grant", "close", grant_id, "--reason", "done", "--actor", "乙")

    assert paid["tranche_no"] == 1
    assert_one_line_error(over, exit_code=1, slug="grant-overdrawn")
    assert (closed["status"], closed["disbursed"], closed["released"]) == (
        "closed",
        "400.00",
        "200.00",
    )
    assert [a["member"] for a in closed["approvals"]] == ["乙", "丙"]  # the API's shape
    education = figures(FUND)["purposes"]["education"]
    assert education == {
        "received": "1000.00",
        "refunded": "0.00",
        "committed": "600.00",
        "released": "200.00",
        "disbursed": "400.00",
        "expenses": "0.00",
        "on_hand": "600.00",
        "available": "600.00",
    }


def test_a_grant_larger_than_the_available_money_does_not_commit(
    ledger_env: dict[str, str],
) -> None:
    ok(*OPEN_FUND)
    ok(*record_args("100.00", "d-1"))
    grant_id = ok_json(
        "grant", "propose", FUND, "--title", "t", "--amount", "100.01", "--grantee-name", "g",
        "--key", "g-1", "--actor", "treasurer",
    )["id"]  # fmt: skip
    ok("grant", "approve", grant_id, "--actor", "甲")

    result = run("grant", "approve", grant_id, "--actor", "乙")

    assert_one_line_error(result, exit_code=1, slug="insufficient-funds")
    assert ok_json("grant", "show", grant_id)["status"] == "proposed"
    assert figures(FUND)["totals"]["committed"] == "0.00"


def test_rejected_and_cancelled_grants(ledger_env: dict[str, str]) -> None:
    ok(*OPEN_FUND)
    ok(*record_args("500.00", "d-1"))

    def propose(key: str) -> str:
        grant_id: str = ok_json(
            "grant", "propose", FUND, "--title", key, "--amount", "200", "--grantee-name", "g",
            "--key", key, "--actor", "treasurer",
        )["id"]  # fmt: skip
        return grant_id

    rejected, cancelled = propose("g-1"), propose("g-2")
    assert ok_json("grant", "reject", rejected, "--reason", "no", "--actor", "甲")["status"] == (
        "rejected"
    )
    ok("grant", "approve", cancelled, "--actor", "甲")
    ok("grant", "approve", cancelled, "--actor", "乙")
    assert ok_json("grant", "cancel", cancelled, "--reason", "x", "--actor", "丙")["status"] == (
        "cancelled"
    )
    unrestricted = figures(FUND)["unrestricted"]
    assert (unrestricted["committed"], unrestricted["released"], unrestricted["available"]) == (
        "200.00",
        "200.00",
        "500.00",
    )


def test_expenses_purposes_and_closed_months(ledger_env: dict[str, str]) -> None:
    ok(*OPEN_FUND)
    ok("fund", "purpose-add", FUND, "--code", "roads", "--name", "道路", "--actor", "admin")
    ok(*record_args("300.00", "d-1"))
    expense = ok_json(
        "expense", "record", FUND, "--amount", "45.50", "--category", "administration",
        "--paid-on", "2025-01-20", "--payee", "bank", "--description", "fees",
        "--key", "e-1", "--actor", "treasurer",
    )  # fmt: skip
    ok("fund", "close-period", FUND, "2025-01", "--actor", "treasurer")

    late = record_args("5.00", "d-2")
    assert_one_line_error(run(*late), exit_code=1, slug="period-closed")
    ok("expense", "reverse", FUND, expense["id"], "--reason", "double entry", "--actor", "t")

    shown = ok_json("fund", "show", FUND)
    assert "roads" in shown["figures"]["purposes"]
    assert shown["closed_periods"] == ["2025-01"]
    assert shown["figures"]["totals"]["expenses"] == "0.00"
    assert shown["figures"]["totals"]["available"] == "300.00"


def test_fund_show_shows_what_the_api_shows_on_the_same_database(
    ledger_env: dict[str, str],
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_api

    ok(*OPEN_FUND)
    ok(*record_args("1000.00", "d-1", "--purpose", "education"))
    ok(*record_args("250.00", "d-2"))
    grant_id = ok_json(
        "grant", "propose", FUND, "--title", "t", "--amount", "300.00", "--grantee-name", "g",
        "--purpose", "education", "--key", "g-1", "--actor", "treasurer",
    )["id"]  # fmt: skip
    ok("grant", "approve", grant_id, "--actor", "甲")
    ok("grant", "approve", grant_id, "--actor", "乙")
    ok("grant", "disburse", grant_id, "--amount", "100.00", "--method", "bank",
       "--reference", "TX-1", "--key", "t-1", "--actor", "treasurer")  # fmt: skip
    ok("expense", "record", FUND, "--amount", "20.00", "--category", "program",
       "--paid-on", "2025-01-20", "--payee", "p", "--description", "d", "--key", "e-1",
       "--actor", "treasurer")  # fmt: skip

    shown = ok_json("fund", "show", FUND)
    with TestClient(create_api(get_settings())) as client:
        served = client.get(f"/api/funds/{FUND}")

    assert served.status_code == 200, served.text
    assert shown == served.json()
    assert shown["figures"]["totals"]["on_hand"] == "1130.00"
    assert shown["figures"]["purposes"]["education"]["available"] == "700.00"
    text = ok("fund", "show", FUND).stdout
    assert "1130.00" in text
    assert "700.00" in text


# -- help ------------------------------------------------------------------------------------

COMMANDS = [
    (),
    ("init",),
    ("demo",),
    ("fund",),
    ("fund", "open"),
    ("fund", "show"),
    ("fund", "purpose-add"),
    ("fund", "close-period"),
    ("donation",),
    ("donation", "record"),
    ("donation", "refund"),
    ("donation", "reverse"),
    ("donation", "show"),
    ("grant",),
    ("grant", "propose"),
    ("grant", "approve"),
    ("grant", "reject"),
    ("grant", "cancel"),
    ("grant", "close"),
    ("grant", "disburse"),
    ("grant", "reverse-disbursement"),
    ("grant", "show"),
    ("expense",),
    ("expense", "record"),
    ("expense", "reverse"),
    ("serve",),
    ("token",),
    ("token", "create"),
    ("token", "list"),
    ("token", "revoke"),
    ("projections",),
    ("projections", "status"),
    ("projections", "rebuild"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ledger")
def test_every_command_has_help_and_help_touches_nothing(
    command: tuple[str, ...], ledger_env: dict[str, str], tmp_path: Path
) -> None:
    result = ok(*command, "--help")

    assert "Usage" in result.stdout
    assert not (tmp_path / "l.db").exists()
