"""The transparency report, the CSV exports and the ``projections`` command line."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from read_models_support import (  # type: ignore[import-not-found]
    TEA,
    db_url,
    dump,
    engine,
    new_history,
    open_tea,
)
from sqlalchemy import Engine
from typer.testing import CliRunner

from api.cli.projections import projections_app
from ledger.application import DonorIn
from ledger.domain.errors import InvalidField
from ledger.settings import get_settings
from projections.db import make_engine
from projections.exports.csv_files import BOM, export_csv
from projections.queries import figures_as_of
from projections.reports import administration_share, build_report
from projections.runner import ProjectionRunner

__all__ = ["db_url", "engine"]


def small_fund(app: Any) -> None:
    """Two months of a small fund, in figures easy to check by hand."""
    open_tea(app)

    def donate(key: str, amount: int, day: str, purpose: str | None = None, **kw: Any) -> Any:
        return app.record_donation(
            slug=TEA,
            key=key,
            amount_minor=amount,
            received_on=day,
            channel="wechat",
            purpose=purpose,
            donor=kw.pop("donor", DonorIn(name="王小明", contact="wx:wangxm")),
            actor="treasurer",
            **kw,
        )

    donate("d1", 500_000, "2026-09-03", note="给老人买米")
    gift = donate("d2", 200_000, "2026-09-10", purpose="elderly-care").value
    donate("d3", 100_000, "2026-10-02", donor=DonorIn(anonymous=True), external_ref="BANK-77")
    app.refund_donation(
        donation_id=gift.id,
        key="r1",
        amount_minor=50_000,
        refunded_on="2026-10-05",
        reason="捐赠人要求",
        actor="treasurer",
    )
    for key, amount, category, day in (
        ("e1", 20_000, "administration", "2026-09-15"),
        ("e2", 60_000, "program", "2026-10-08"),
        ("e3", 10_000, "fundraising", "2026-10-09"),
    ):
        app.record_expense(
            slug=TEA,
            key=key,
            amount_minor=amount,
            category=category,
            paid_on=day,
            payee="牌坊村小卖部",
            description="敬老院茶叶",
            actor="treasurer",
        )
    grant = app.propose_grant(
        slug=TEA,
        key="g1",
        title="敬老院屋顶修缮",
        grantee_name="牌坊村村民委员会",
        grantee_id="91330000-X",
        amount_minor=300_000,
        actor="李主任",
    ).value
    app.approve_grant(grant_id=grant.id, note="同意", actor="王会计")
    app.approve_grant(grant_id=grant.id, note="同意", actor="张村长")
    app.disburse(
        grant_id=grant.id,
        key="t1",
        amount_minor=110_000,
        paid_on="2026-10-20",
        method="bank",
        reference="TR-001",
        actor="treasurer",
    )


def test_the_report_adds_up(make_app: Any, db_url: str, engine: Engine) -> None:
    app = make_app(db_url)
    small_fund(app)
    ProjectionRunner(app, engine).catch_up()
    with engine.connect() as conn:
        report = build_report(conn, TEA, date_from=date(2026, 10, 1), date_to=date(2026, 10, 31))
        whole = build_report(conn, TEA, date_from=date(2026, 1, 1), date_to=date(2026, 11, 27))

    assert report.name == "茶乡振兴基金"
    assert report.opening.totals.received_minor == 700_000
    assert report.opening.totals.expenses_minor == 20_000
    flows = report.flows
    assert flows.in_minor == 100_000
    assert flows.refunded_minor == 50_000
    assert flows.expenses_minor == 70_000
    assert flows.disbursed_minor == 110_000
    assert flows.committed_minor == 0  # committed on 2026-11-27, after the period
    assert flows.spending_minor == 180_000
    assert report.administration_share == Decimal("0.0000")
    assert whole.administration_share == Decimal("0.1000")  # 20,000 of 200,000 spent
    assert whole.flows.committed_minor == 300_000
    # closing = opening + flows, money on hand
    opening, closing = report.opening.totals, report.closing.totals
    moved = flows.in_minor - flows.refunded_minor - flows.disbursed_minor - flows.expenses_minor
    assert closing.on_hand_minor == opening.on_hand_minor + moved
    # per purpose and per month add up to the whole
    assert sum(p.flows.in_minor for p in report.purposes) == flows.in_minor
    assert [p.code for p in report.purposes] == ["", "education", "elderly-care"]
    elderly = next(p for p in report.purposes if p.code == "elderly-care")
    assert (elderly.name, elderly.flows.refunded_minor) == ("养老", 50_000)
    assert [m.month for m in whole.months] == ["2026-09", "2026-10", "2026-11"]
    assert sum(m.flows.expenses_minor for m in whole.months) == whole.flows.expenses_minor
    assert report.donations_count == 1
    (grant,) = report.grants
    assert (grant.status, grant.disbursed_minor, len(grant.approvals)) == ("committed", 110_000, 2)
    assert grant.tranches[0].in_period
    assert grant.tranches[0].reference == "TR-001"
    as_json = json.dumps(report.as_dict(), default=str, ensure_ascii=False)
    assert "敬老院屋顶修缮" in as_json
    assert "available_minor" in as_json
    with pytest.raises(InvalidField), engine.connect() as conn:
        build_report(conn, TEA, date_from=date(2026, 10, 2), date_to=date(2026, 10, 1))


def test_administration_share_has_no_value_without_spending() -> None:
    from projections.reports import Flows

    assert administration_share(Flows()) is None
    share = administration_share(
        Flows(
            expenses_minor=3,
            disbursed_minor=0,
            expenses_by_category_minor={"administration": 1, "program": 2, "fundraising": 0},
        )
    )
    assert share == Decimal("0.3333")


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(BOM.encode("utf-8"))
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_csv_exports_have_a_bom_chinese_text_and_decimal_amounts(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    small_fund(app)
    ProjectionRunner(app, engine).catch_up()
    with engine.connect() as conn:
        exports = {
            k: export_csv(conn, TEA, k)
            for k in ("donations", "grants", "disbursements", "expenses", "journal")
        }
        full = export_csv(conn, TEA, "donations", full=True)
        october = export_csv(
            conn, TEA, "donations", date_from=date(2026, 10, 1), date_to=date(2026, 10, 31)
        )
        with pytest.raises(InvalidField):
            export_csv(conn, TEA, "passwords")
        on_hand = figures_as_of(conn, TEA).totals.on_hand_minor

    donations = read_csv(exports["donations"])
    assert [d["amount"] for d in donations] == ["5000.00", "2000.00", "1000.00"]
    assert donations[0]["donor"] == "王*明"
    assert donations[2]["donor"] == "爱心人士"
    assert donations[1]["status"] == "partially_refunded"
    public_text = exports["donations"].decode("utf-8")
    for secret in ("王小明", "wx:wangxm", "BANK-77", "给老人买米", "donor_id"):
        assert secret not in public_text
    audited = read_csv(full)
    assert audited[0]["note"] == "给老人买米"
    assert audited[2]["external_ref"] == "BANK-77"
    assert "王小明" not in full.decode("utf-8")  # sealed: only the application opens it
    assert len(read_csv(october)) == 1

    (grant,) = read_csv(exports["grants"])
    assert (grant["title"], grant["amount"], grant["disbursed"]) == (
        "敬老院屋顶修缮",
        "3000.00",
        "1100.00",
    )
    assert "王会计" in grant["approvals"]
    assert "grantee_id" not in grant
    (tranche,) = read_csv(exports["disbursements"])
    assert (tranche["grantee"], tranche["amount"]) == ("牌坊村村民委员会", "1100.00")
    expenses = read_csv(exports["expenses"])
    assert {e["category"] for e in expenses} == {"administration", "program", "fundraising"}
    assert expenses[0]["payee"] == "牌坊村小卖部"
    journal = read_csv(exports["journal"])
    assert journal[-1]["balance"] == f"{on_hand // 100}.{on_hand % 100:02d}"
    assert [line["line_no"] for line in journal] == [str(i) for i in range(1, len(journal) + 1)]
    assert journal[0]["reference"] == "tea-village-2026-000001"


def test_cli_status_and_rebuild(
    make_app: Any, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=31).run(40)
    monkeypatch.setenv("LEDGER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("LEDGER_KEY_DIR", str(tmp_path / "keys"))
    get_settings.cache_clear()
    cli = CliRunner()
    try:
        before = cli.invoke(projections_app, ["status", "--json"])
        assert before.exit_code == 0, before.output
        lag = {row["name"]: row["lag"] for row in json.loads(before.output)}
        head = app.recorder.max_notification_id()
        assert lag == dict.fromkeys(("funds", "donations", "grants", "flows", "journal"), head)

        rebuilt = cli.invoke(projections_app, ["rebuild"])
        assert rebuilt.exit_code == 0, rebuilt.output
        assert "rebuilt funds, donations, grants, flows, journal" in rebuilt.output
        assert "1 process" in rebuilt.output

        # Two processes at once, as asked (the default waits for a longer log).
        jobs = cli.invoke(projections_app, ["rebuild", "--jobs", "2"])
        assert jobs.exit_code == 0, jobs.output
        assert "rebuilt funds, donations, grants, flows, journal" in jobs.output
        assert f"{head} events" in jobs.output  # each read once
        assert "2 processes" in jobs.output
        assert cli.invoke(projections_app, ["rebuild", "--jobs", "0"]).exit_code == 2

        one = cli.invoke(projections_app, ["rebuild", "journal"])
        assert one.exit_code == 0, one.output
        after = cli.invoke(projections_app, ["status"])
        assert after.exit_code == 0
        assert "journal" in after.output
        assert "ok" in after.output

        # A failure: one line, exit status 1, the read models as they were. The database
        # refuses the journal's build position (a trigger), as a full disk would.
        engine = make_engine(sqlite_url)
        before_failure = dump(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TRIGGER full_disk BEFORE UPDATE OF build_position ON rm_projections "
                "WHEN NEW.name = 'journal' AND NEW.build_position > 0 "
                "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
            )
        failed = cli.invoke(projections_app, ["rebuild"])
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER full_disk")
        assert failed.exit_code == 1
        said = " ".join(failed.output.split())  # (the console wraps long lines)
        assert (
            "error: the rebuild failed, the read models are as before: projection 'journal' "
            f"failed at notification {head}: IntegrityError("
        ) in said
        assert "the disk is full" in said
        assert "Traceback" not in failed.output
        assert dump(engine) == before_failure
        engine.dispose()

        wrong = cli.invoke(projections_app, ["rebuild", "nonsense"])
        assert wrong.exit_code == 2
        assert "no projection nonsense" in wrong.output
    finally:
        get_settings.cache_clear()


def test_report_of_a_random_history_matches_the_journal_and_a_rebuild(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=41).run(120)
    ProjectionRunner(app, engine).catch_up()
    with engine.connect() as conn:
        for slug in history.slugs:
            report = build_report(conn, slug, date_from=date(2026, 4, 1), date_to=date(2026, 9, 30))
            moved = (
                report.flows.in_minor
                - report.flows.refunded_minor
                - report.flows.disbursed_minor
                - report.flows.expenses_minor
            )
            assert (
                report.closing.totals.on_hand_minor == report.opening.totals.on_hand_minor + moved
            )
            assert sum(m.flows.in_minor for m in report.months) == report.flows.in_minor
    live = dump(engine)
    from projections.rebuild import rebuild

    rebuild(app, engine)
    assert dump(engine) == live
