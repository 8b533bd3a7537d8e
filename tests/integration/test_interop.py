"""The Beancount and hledger exports, checked by the tools themselves.

A rich generated history is recorded through the use cases, projected, exported, and then
``bean-check``, ``bean-query``, ``hledger check`` and ``hledger bal`` must agree with the
read models to the cent; a changed amount must break the export's own balance assertions.

The tools: beancount and beanquery from PyPI (the dev extra), hledger from Debian
(``apt-get install hledger``). Missing tools skip these tests, except under ``CI=true``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from ledger.application import LedgerApp
from ledger.histories import HistoryCounts, record_history
from ledger.settings import Settings
from projections.db import make_engine
from projections.exports import chart
from projections.exports.ledgerfiles import beancount_lines, hledger_lines
from projections.queries import fund_figures
from projections.rebuild import rebuild
from projections.reports import build_report
from projections.tables import LIVE

TOOL_TIMEOUT_S = 120
MOVEMENTS = 700
DAYS = 220  # from 2025-01-06: two whole quarters and some


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is not installed (CI=true: the interop tests must run)")
        pytest.skip(f"{name} is not installed")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)


@dataclass
class World:
    app: LedgerApp
    engine: Engine
    counts: HistoryCounts
    slug: str
    tmp: Path

    def write(self, name: str, lines: Iterator[str]) -> Path:
        path = self.tmp / name
        with path.open("w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        return path

    def details(self, donation_id: str) -> Any:
        return self.app.donor_details(self.app.get_donation(donation_id))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("interop")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'ledger.db'}",
        key_dir=tmp / "keys",
        timezone="Asia/Shanghai",
    )
    app = LedgerApp(settings)
    counts = record_history(app, seed=2026, movements=MOVEMENTS, days=DAYS)
    engine = make_engine(settings.database_url)
    rebuild(app, engine)
    try:
        yield World(app, engine, counts, counts.slugs[0], tmp)
    finally:
        engine.dispose()
        app.close()


def _hledger_balances(path: Path, *query: str) -> dict[str, int]:
    done = _run(_tool("hledger"), "-f", str(path), "bal", "-N", "--flat", "-O", "csv", *query)
    assert done.returncode == 0, done.stderr
    out: dict[str, int] = {}
    for account, balance in list(csv.reader(io.StringIO(done.stdout)))[1:]:
        number, _, currency = balance.partition(" ")
        assert currency in ("CNY", ""), balance
        out[account] = _minor(number)
    return out


def _bean_query_balances(path: Path) -> dict[str, int]:
    query = "SELECT account, sum(number) AS total GROUP BY account ORDER BY account"
    done = _run(_tool("bean-query"), "-f", "csv", str(path), query)
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))[1:]
    return {account: _minor(total.strip()) for account, total in rows}


def _minor(number: str) -> int:
    return int(Decimal(number.replace(",", "")) * 100)


def _read_model_balances(world: World) -> dict[str, int]:
    """Every account's balance, from the read models' own tables (not the journal the
    export is written from): figures per purpose, grants by grantee, donations by channel,
    tranches by method."""
    with world.engine.connect() as conn:
        figures = fund_figures(conn, world.slug)
        fund_id = figures.fund_id
        d, g, t = LIVE.donations, LIVE.grants, LIVE.grant_tranches
        by_channel: dict[str, int] = defaultdict(int)
        for channel, amount, refunded, reversed_ in conn.execute(
            select(d.c.channel, d.c.amount_minor, d.c.refunded_minor, d.c.reversed_minor).where(
                d.c.fund_id == fund_id
            )
        ):
            by_channel[channel] += amount - refunded - reversed_
        cash_paid = sum(
            amount
            for (amount,) in conn.execute(
                select(t.c.amount_minor).where(
                    t.c.fund_id == fund_id, t.c.method == "cash", t.c.reversed.is_(False)
                )
            )
        )
        by_grantee: dict[str, int] = defaultdict(int)
        for grantee, committed, released in conn.execute(
            select(g.c.grantee_name, g.c.committed_minor, g.c.released_minor).where(
                g.c.fund_id == fund_id
            )
        ):
            by_grantee[chart.grant_account(grantee)] += committed - released
    totals = figures.totals
    cash = by_channel["cash"] - cash_paid
    in_kind = by_channel["in_kind"]
    out = {
        chart.CASH: cash,
        chart.IN_KIND: in_kind,
        chart.BANK: totals.on_hand_minor - cash - in_kind,
        chart.GRANTS_PAYABLE: -(
            totals.committed_minor - totals.released_minor - totals.disbursed_minor
        ),
        **{chart.EXPENSE_ACCOUNTS[c]: v for c, v in totals.expenses_by_category_minor.items()},
        **by_grantee,
    }
    lifted = 0
    sets = {"": figures.unrestricted, **figures.purposes}
    for code, f in sets.items():
        out[chart.donations_account(code)] = -(f.received_minor - f.refunded_minor)
        if code:
            used = f.committed_minor - f.released_minor + f.expenses_minor
            out[chart.restricted_account(code)] = used
            lifted += used
    out[chart.UNRESTRICTED_NET_ASSETS] = -lifted
    return {account: value for account, value in out.items() if value}


def test_the_history_is_rich(world: World) -> None:
    c = world.counts
    assert c.movements >= MOVEMENTS
    assert min(c.refunds, c.reversals, c.in_kind, c.grants_cancelled, c.tranches_bounced) > 0
    assert min(c.grants_closed_unspent, c.expenses_reversed, c.backdated, c.periods_closed) > 0


def test_both_tools_accept_the_export_and_agree_with_the_read_models(world: World) -> None:
    with world.engine.connect() as conn:
        bean = world.write("books.beancount", beancount_lines(conn, world.slug))
        journal = world.write("books.journal", hledger_lines(conn, world.slug))
    checked = _run(_tool("bean-check"), str(bean))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == ""
    checked = _run(_tool("hledger"), "-f", str(journal), "check", "-s")
    assert checked.returncode == 0, checked.stderr
    expected = _read_model_balances(world)
    assert _hledger_balances(journal) == expected
    assert {a: v for a, v in _bean_query_balances(bean).items() if v} == expected
    text = bean.read_text()
    assert text.count(" balance ") >= 7 * 8  # month ends (and the end) × accounts
    assert ";; Closed months (corrections of them are dated later): 2025-01, " in text
    assert re.search(r"^\d{4}-\d\d-01 balance Assets:1002-Bank ", text, re.M)


def test_a_quarter_agrees_with_the_quarterly_report(world: World) -> None:
    start, end = date(2025, 4, 1), date(2025, 6, 30)
    with world.engine.connect() as conn:
        report = build_report(conn, world.slug, date_from=start, date_to=end)
        bean = world.write(
            "q2.beancount", beancount_lines(conn, world.slug, date_from=start, date_to=end)
        )
        journal = world.write(
            "q2.journal", hledger_lines(conn, world.slug, date_from=start, date_to=end)
        )
    checked = _run(_tool("bean-check"), str(bean))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert _run(_tool("hledger"), "-f", str(journal), "check", "-s").returncode == 0
    flows = report.flows
    balances = _hledger_balances(journal)
    income = sum(v for a, v in balances.items() if a.startswith(chart.DONATIONS))
    assert -income == flows.in_minor - flows.refunded_minor
    for purpose in report.purposes:
        received = balances.get(chart.donations_account(purpose.code), 0)
        assert -received == purpose.flows.in_minor - purpose.flows.refunded_minor
    for category, amount in flows.expenses_by_category_minor.items():
        assert balances.get(chart.EXPENSE_ACCOUNTS[category], 0) == amount
    grants = sum(v for a, v in balances.items() if a.startswith(chart.GRANTS + ":"))
    assert grants == flows.committed_minor - flows.released_minor
    assets = sum(v for a, v in balances.items() if a.startswith("Assets:"))
    assert assets == report.closing.totals.on_hand_minor
    opening = _hledger_balances(journal, "desc:Opening balances")
    opening_assets = sum(v for a, v in opening.items() if a.startswith("Assets:"))
    assert opening_assets == report.opening.totals.on_hand_minor
    payable = balances.get(chart.GRANTS_PAYABLE, 0) - opening.get(chart.GRANTS_PAYABLE, 0)
    assert payable == flows.disbursed_minor - flows.committed_minor + flows.released_minor
    assert sum(_bean_query_balances(bean).values()) == 0


def _tamper(text: str, indent: str) -> str:
    """Change one donation's amount on both of its postings (the transaction still
    balances; only the assertions can tell)."""
    pattern = re.compile(
        rf"^({indent}Assets:1002-Bank  )(\d+\.\d\d)"
        rf"( CNY\n{indent}Income:4101-Donations:Unrestricted  -)(\d+\.\d\d)( CNY)$",
        re.M,
    )
    match = pattern.search(text)
    assert match is not None
    changed = f"{Decimal(match.group(2)) + Decimal('0.01'):.2f}"
    replacement = f"{match.group(1)}{changed}{match.group(3)}{changed}{match.group(5)}"
    return text[: match.start()] + replacement + text[match.end() :]


def test_a_changed_amount_fails_the_exports_own_assertions(world: World) -> None:
    with world.engine.connect() as conn:
        bean = "\n".join(beancount_lines(conn, world.slug)) + "\n"
        journal = "\n".join(hledger_lines(conn, world.slug)) + "\n"
    bad_bean = world.tmp / "tampered.beancount"
    bad_bean.write_text(_tamper(bean, "  "), encoding="utf-8")
    bad_journal = world.tmp / "tampered.journal"
    bad_journal.write_text(_tamper(journal, "    "), encoding="utf-8")
    checked = _run(_tool("bean-check"), str(bad_bean))
    assert checked.returncode != 0
    assert "Balance failed for 'Assets:1002-Bank'" in checked.stdout + checked.stderr
    checked = _run(_tool("hledger"), "-f", str(bad_journal), "check")
    assert checked.returncode != 0
    assert "balance assertion" in checked.stderr


def test_the_public_export_has_no_donor_details_and_the_auditors_has(world: World) -> None:
    with world.engine.connect() as conn:
        public = "\n".join(beancount_lines(conn, world.slug))
        audit = "\n".join(beancount_lines(conn, world.slug, donor_details=world.details))
        public_journal = "\n".join(hledger_lines(conn, world.slug))
        d = LIVE.donations
        donation_id = conn.execute(
            select(d.c.donation_id).where(d.c.donor_details_kept.is_(True)).limit(1)
        ).scalar_one()
    personal = world.details(donation_id)
    assert personal is not None
    secrets = [s for s in (personal.name, personal.contact) if s]
    for text in (public, public_journal):
        assert "donor-contact" not in text
        assert "donor-id" not in text
        assert not any(secret in text for secret in secrets)
        assert not re.search(r"138\d{8}", text)
    assert "donor-contact:" in audit
    assert "recorded-by:" in audit
    assert all(secret in audit for secret in secrets)


def test_links_and_corrections_tie_movements_together(world: World) -> None:
    with world.engine.connect() as conn:
        text = "\n".join(beancount_lines(conn, world.slug))
    refund = re.search(r'"退款 Refund of ([\w-]+):.*\^([\w-]+)\n', text)
    assert refund is not None
    assert refund.group(1) == refund.group(2)
    assert f'  corrects: "{refund.group(1)}"' in text
    grant_links = re.findall(r"\^(grant-[\w-]+)", text)
    per_grant = {link: grant_links.count(link) for link in grant_links}
    assert max(per_grant.values()) >= 3  # a commitment, its tranches, a release
    assert re.search(r'"退票 Tranche \d+ bounced', text)
    assert '  position: "' in text
    assert '  recorded: "' in text


@pytest.mark.postgres
def test_the_export_agrees_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=pg_url, key_dir=tmp_path / "keys", timezone="Asia/Shanghai")
    app = LedgerApp(settings)
    engine = make_engine(pg_url)
    try:
        counts = record_history(app, seed=7, movements=250, days=100)
        rebuild(app, engine)
        world = World(app, engine, counts, counts.slugs[0], tmp_path)
        with engine.connect() as conn:
            bean = world.write("pg.beancount", beancount_lines(conn, world.slug))
            journal = world.write("pg.journal", hledger_lines(conn, world.slug))
        checked = _run(_tool("bean-check"), str(bean))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        checked = _run(_tool("hledger"), "-f", str(journal), "check", "-s")
        assert checked.returncode == 0, checked.stderr
        assert _hledger_balances(journal) == _read_model_balances(world)
    finally:
        engine.dispose()
        app.close()
