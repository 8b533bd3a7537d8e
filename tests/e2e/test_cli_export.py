"""``ledger export beancount|hledger``: the books of a fund recorded from the command line,
brought up to date and written to a file, checked by the tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from api.cli import app
from ledger.settings import get_settings

FUND = "river-school"
OPEN_FUND = (
    "fund", "open", FUND, "--name", "河边小学基金", "--currency", "CNY", "--host", "示例公益基金会",
    "--committee", "甲", "--committee", "乙", "--committee", "丙", "--approvals-required", "2",
    "--purpose", "education=教育", "--actor", "admin",
)  # fmt: skip
TOOL_TIMEOUT_S = 60


@pytest.fixture
def ledger_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path}/l.db")
    monkeypatch.setenv("LEDGER_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def ok(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is not installed (CI=true)")
        pytest.skip(f"{name} is not installed")
    return found


def _record(amount: str, day: str, *extra: str) -> None:
    ok(
        "donation", "record", FUND, "--amount", amount, "--received-on", day,
        "--channel", "wechat", "--donor-name", "张三", "--donor-contact", "13800000000",
        "--key", f"gift-{amount}-{day}", "--actor", "出纳", *extra,
    )  # fmt: skip


def test_export_writes_books_both_tools_accept(ledger_env: Path) -> None:
    ok("init")
    ok(*OPEN_FUND)
    _record("100.00", "2025-01-15")
    _record("30.50", "2025-02-03", "--purpose", "education")
    ok("export", "beancount", FUND, "--to", "books.beancount")
    ok("export", "hledger", FUND, "--to", "books.journal", "--with-donors")
    bean = (ledger_env / "books.beancount").read_text(encoding="utf-8")
    journal = (ledger_env / "books.journal").read_text(encoding="utf-8")
    assert "130.50 CNY" in bean  # the bank's balance, asserted
    assert "张三" not in bean
    assert "张三" in journal
    assert "13800000000" in journal
    checked = subprocess.run(
        [_tool("bean-check"), "books.beancount"],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = subprocess.run(
        [_tool("hledger"), "-f", "books.journal", "check", "-s"],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    quarter = ok("export", "hledger", FUND, "--from", "2025-02-01", "--to-date", "2025-03-31")
    assert "Opening balances" in quarter.stdout
    assert "2025-01-15" not in quarter.stdout.split("Opening balances")[1]


def test_export_errors_are_one_line(ledger_env: Path) -> None:
    ok("init")
    for args in (
        ("export", "beancount", "nope"),
        ("export", "hledger", "nope", "--from", "2025-13-01"),
        ("export", "hledger", "nope", "--from", "2025-03-01", "--to-date", "2025-02-01"),
    ):
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 1, (result.stdout, result.stderr)
        assert len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith("error: ")
    assert not list(ledger_env.glob("*.partial"))
