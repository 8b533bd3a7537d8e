"""The Beancount and hledger files over HTTP: streamed, public without donor details,
auditors with them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_api_support import FUND, World, problem, serve

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Any) -> Iterator[World]:
    with serve(sqlite_url, tmp_path, clock.now) as w:
        w.open_fund()
        yield w


@pytest.mark.parametrize(("name", "assertion"), [("beancount", " balance "), ("journal", " = ")])
def test_the_books_download_public_and_audited(world: World, name: str, assertion: str) -> None:
    world.donate("10.00")
    world.donate("25.50", purpose="elderly-care")
    public = world.get(f"/api/funds/{FUND}/exports/ledger.{name}")
    assert public.status_code == 200
    assert public.headers["content-type"].startswith("text/plain")
    assert f"{FUND}.{name}" in public.headers["content-disposition"]
    text = public.text
    assert "25.50 CNY" in text
    assert assertion in text
    assert "张三" not in text
    assert "13800000000" not in text
    audited = world.get(f"/api/funds/{FUND}/exports/ledger.{name}", "auditor").text
    assert "张三" in audited
    assert "13800000000" in audited


def test_a_range_and_its_errors(world: World) -> None:
    world.donate("10.00")
    ranged = world.get(
        f"/api/funds/{FUND}/exports/ledger.journal", **{"from": "2026-11-05", "to": "2026-11-30"}
    )
    assert ranged.status_code == 200
    assert "Opening balances" in ranged.text
    problem(
        world.get(
            f"/api/funds/{FUND}/exports/ledger.beancount",
            **{"from": "2026-11-05", "to": "2026-11-01"},
        ),
        422,
        "invalid-field",
    )
    problem(world.get("/api/funds/nope/exports/ledger.beancount"), 404, "fund-not-found")
