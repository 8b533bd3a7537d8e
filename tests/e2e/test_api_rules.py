"""The ledger's rules where a user meets them over HTTP: committee membership and identity,
bounded figures, the business-date window, corrections never dated before what they
correct, the text policy, and fund opening under concurrent retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_api_support import (
    COMMITTEE,
    FUND,
    OTHER_FUND,
    World,
    donation_body,
    problem,
    serve,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OTHER_COMMITTEE = ["陈校长", "赵老师", "孙家长"]


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Any) -> Iterator[World]:
    with serve(sqlite_url, tmp_path, clock.now) as w:
        w.open_fund()
        yield w


def _grant(world: World, fund: str, who: str = "treasurer", amount: str = "10.00") -> Any:
    body = {"title": "课桌", "grantee": {"name": "河边小学"}, "amount": amount}
    return world.create(f"/api/funds/{fund}/grants", body, who)


def _committed_other(world: World) -> dict[str, Any]:
    """A committed grant of the other fund, approved by its own committee."""
    world.open_fund(slug=OTHER_FUND, committee=OTHER_COMMITTEE)
    for member in OTHER_COMMITTEE:
        world.token(member, "committee", funds=(OTHER_FUND,))
    world.donate("100.00", fund=OTHER_FUND)
    grant = _grant(world, OTHER_FUND)
    for member in OTHER_COMMITTEE[:2]:
        response = world.post(f"/api/grants/{grant['id']}/approvals", {}, member)
        assert response.status_code == 200, response.text
    committed: dict[str, Any] = response.json()
    assert committed["status"] == "committed"
    return committed


# -- committee membership and identity (issue 10, item 2) -------------------------------------


def test_a_member_of_one_fund_may_not_cancel_or_reject_another_funds_grant(
    world: World,
) -> None:
    committed = _committed_other(world)
    proposed = _grant(world, OTHER_FUND)
    attacker = COMMITTEE[0]  # on the tea village's committee, token bound to it
    for path, grant in (
        ("cancellation", committed),
        ("closure", committed),
        ("rejection", proposed),
    ):
        response = world.post(f"/api/grants/{grant['id']}/{path}", {"reason": "x"}, attacker)
        problem(response, 403, "fund-not-allowed")
    # Even a token that may act for both funds acts only as a member of the fund's committee.
    world.token("两地委员", "committee", funds=(FUND, OTHER_FUND))
    for path, grant in (
        ("cancellation", committed),
        ("closure", committed),
        ("rejection", proposed),
        ("approvals", proposed),
    ):
        body = {} if path == "approvals" else {"reason": "x"}
        response = world.post(f"/api/grants/{grant['id']}/{path}", body, "两地委员")
        problem(response, 403, "not-committee-member")
    assert world.get(f"/api/grants/{committed['id']}").json()["status"] == "committed"
    assert world.get(f"/api/grants/{proposed['id']}").json()["status"] == "proposed"
    figures = world.get(f"/api/funds/{OTHER_FUND}").json()["figures"]["totals"]
    assert figures["released"] == "0.00"
    # Its own committee may.
    done = world.post(
        f"/api/grants/{committed['id']}/cancellation", {"reason": "x"}, OTHER_COMMITTEE[2]
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled"


def test_a_committee_token_that_is_no_member_may_not_propose(world: World) -> None:
    world.token("外人", "committee", funds=(FUND,))
    body = {"title": "t", "grantee": {"name": "g"}, "amount": "1.00"}
    response = world.post(f"/api/funds/{FUND}/grants", body, "外人", key="k1")
    problem(response, 403, "not-committee-member")
    assert world.post(f"/api/funds/{FUND}/grants", body, COMMITTEE[1], key="k2").status_code == 201
    assert world.post(f"/api/funds/{FUND}/grants", body, "treasurer", key="k3").status_code == 201


def test_treasurer_and_committee_tokens_must_name_their_funds(world: World) -> None:
    for role in ("treasurer", "committee"):
        with pytest.raises(Exception, match="only an admin token may be unscoped"):
            world.token(f"无范围{role}", role)
    world.token("总管", "admin")  # admins (and auditors, who only read) may be unscoped
    world.token("总审计", "auditor")


def test_a_member_is_known_by_the_nfc_form_of_the_name(world: World) -> None:
    world.token("Zoe\u0308", "committee", funds=(OTHER_FUND,))  # decomposed
    world.open_fund(slug=OTHER_FUND, committee=["Zo\u00eb", "陈校长"])  # composed
    world.token("陈校长", "committee", funds=(OTHER_FUND,))
    grant = _grant(world, OTHER_FUND, who="陈校长")
    approved = world.post(f"/api/grants/{grant['id']}/approvals", {}, "Zoe\u0308")
    assert approved.status_code == 200, approved.text
    assert [a["member"] for a in approved.json()["approvals"]] == ["Zo\u00eb"]
    problem(world.post(f"/api/grants/{grant['id']}/approvals", {}, "陈校长"), 403, "self-approval")


def test_a_donation_keeps_working_for_a_treasurer_bound_to_the_fund(world: World) -> None:
    assert world.donate("1.00")["receipt_no"] == f"{FUND}-2026-000001"
    world.token("别处出纳", "treasurer", funds=(OTHER_FUND,))
    response = world.post(f"/api/funds/{FUND}/donations", donation_body(), "别处出纳", key="z")
    problem(response, 403, "fund-not-allowed")


# -- bounded figures (issue 10, item 3) --------------------------------------------------------

LARGEST = "10000000000000.00"  # the most one entry may carry: 10^15 fen


def test_donations_that_would_take_a_figure_past_the_bound_are_refused(world: World) -> None:
    for _ in range(100):
        world.donate(LARGEST)
    totals = world.get(f"/api/funds/{FUND}").json()["figures"]["totals"]
    assert totals["received"] == "1000000000000000.00"  # the bound, exactly: 10^17 fen
    body = problem(
        world.post(f"/api/funds/{FUND}/donations", donation_body("0.01"), key="over"),
        409,
        "figure-limit-reached",
    )
    assert body["figure"] == "received"
    assert body["room"] == "0.00"
    # Nothing stalled: the read models answer, a fund opened afterwards reads at once.
    world.open_fund(slug=OTHER_FUND)
    assert world.get(f"/api/funds/{OTHER_FUND}").status_code == 200
    health = world.get("/api/health").json()
    assert health["status"] == "ok"
    assert world.get(f"/api/funds/{FUND}/exports/journal.csv").status_code == 200
    assert world.get(f"/api/funds/{FUND}/report").status_code == 200


def test_a_read_model_that_cannot_write_an_event_stops_alone_and_health_names_it(
    sqlite_url: str, tmp_path: Path, clock: Any
) -> None:
    """A value no 64-bit column holds (what a log written before the bound can carry) is
    found only when the batch is written: the funds read model is set aside, the others
    reach the head, and /api/health says which one failed and why."""
    from fastapi.testclient import TestClient

    from api.app import create_api
    from api.writes import Services
    from ledger.application import LedgerApp
    from ledger.domain.common import fund_id
    from ledger.settings import Settings
    from projections.funds import FundsProjection
    from projections.registry import PROJECTIONS
    from projections.runner import ProjectionRunner
    from projections.tables import Tables

    settings = Settings(
        database_url=sqlite_url, key_dir=tmp_path / "keys", timezone="Asia/Shanghai"
    )
    ledger = LedgerApp(settings, clock=clock.now)
    ledger.open_fund(
        slug=FUND, name="n", currency="CNY", host="h", committee=["a", "b"], actor="admin"
    )
    for i in range(150):
        ledger.record_donation(
            slug=FUND, key=f"d{i}", amount_minor=100, received_on="2026-11-02",
            channel="cash", actor="t",
        )  # fmt: skip
    credits = [
        n.id
        for n in ledger.recorder.select_notifications(1, 100)
        if n.topic.endswith("Fund.DonationCredited")
    ]
    bad = credits[2]  # then about 300 events: each retry of the batch names another
    tea = str(fund_id(FUND))

    class OverflowingFunds(FundsProjection):
        def __init__(self, tables: Tables) -> None:
            super().__init__(tables)
            for topic, handle in list(self.handlers.items()):

                def handler(n: int, oid: str, e: Any, handle: Any = handle) -> None:
                    handle(n, oid, e)
                    if n == bad and oid == tea:
                        row = self.funds.cache[oid]
                        row["received_minor"] += 2**63  # no SQLite INTEGER holds it
                        self.funds.changed(oid, row)

                self.handlers[topic] = handler

    projections = [OverflowingFunds if p.name == "funds" else p for p in PROJECTIONS]
    services = Services.open(settings, app=ledger, run_projections=False)
    services.runner = ProjectionRunner(
        ledger, services.engine, projections=projections, attempts_max=3, backoff_s_first=0.001
    ).start()
    try:
        head = ledger.recorder.max_notification_id()
        # Set aside after three failed attempts, not after three per event of the batch.
        assert services.runner.wait_for(head, timeout_s=5)
        assert "funds" in services.runner.projector.excluded
        with TestClient(create_api(settings, services=services)) as client:
            health = client.get("/api/health").json()
        assert health["status"] == "degraded"
        by_name = {p["name"]: p for p in health["projections"]}
        assert by_name["funds"]["failing"] is True
        assert "OverflowError" in by_name["funds"]["error"]
        assert by_name["funds"]["position"] < bad
        others = [p for name, p in by_name.items() if name != "funds"]
        assert others
        assert all(not p["failing"] and p["lag"] == 0 for p in others)
    finally:
        services.close()
        ledger.close()


# -- business dates (issue 10, item 5) ---------------------------------------------------------


@pytest.mark.parametrize(
    "received_on",
    ["1764720000", "20261102", "2026-W45-1", "2026-11-2", "2026-02-30", "2026-11-02T00:00"],
)
def test_a_date_that_is_not_an_iso_calendar_date_is_refused(world: World, received_on: str) -> None:
    response = world.post(
        f"/api/funds/{FUND}/donations", donation_body(received_on=received_on), key="k"
    )
    problem(response, 422, "validation-error")


def test_a_number_is_no_date(world: World) -> None:
    response = world.post(
        f"/api/funds/{FUND}/donations", donation_body(received_on=1764720000), key="k"
    )
    problem(response, 422, "validation-error")


def test_business_dates_stay_within_the_window_of_the_fund(world: World, clock: Any) -> None:
    from datetime import timedelta

    from ledger.domain.common import BUSINESS_DATE_GRACE_DAYS

    opened_on = clock.today()  # the fund was opened by the fixture, today
    earliest = opened_on - timedelta(days=BUSINESS_DATE_GRACE_DAYS)
    path = f"/api/funds/{FUND}/donations"
    for day, key in ((earliest, "first"), (opened_on, "today")):
        response = world.post(path, donation_body(received_on=day.isoformat()), key=key)
        assert response.status_code == 201, response.text
    assert response.json()["receipt_no"] == f"{FUND}-2026-000001"
    early = earliest - timedelta(days=1)
    for day in (early.isoformat(), "0001-01-01", "0026-12-01", "1900-01-01"):
        body = problem(
            world.post(path, donation_body(received_on=day), key=f"e{day}"),
            422,
            "date-too-early",
        )
        assert body["earliest"] == earliest.isoformat()
    tomorrow = (opened_on + timedelta(days=1)).isoformat()
    problem(world.post(path, donation_body(received_on=tomorrow), key="t"), 422, "date-in-future")
    expense = {"amount": "1.00", "category": "program", "payee": "p", "description": "d"}
    problem(
        world.post(f"/api/funds/{FUND}/expenses", {**expense, "paid_on": "1900-01-01"}, key="x"),
        422,
        "date-too-early",
    )
    # The report of the fund still answers: no entry is dated outside its window.
    assert world.get(f"/api/funds/{FUND}/report").status_code == 200


# -- one text policy (issue 10, item 8) -------------------------------------------------------

CHARACTERS = {
    "NUL": "\x00",
    "BEL": "\x07",
    "ESC": "\x1b",
    "DEL": "\x7f",
    "C1": "\x9b",
    "newline": "\n",
    "U+202E": "\u202e",
    "U+200B": "\u200b",
    "U+2028": "\u2028",
    "BOM": "\ufeff",
}


@pytest.mark.parametrize("ch", CHARACTERS.values(), ids=CHARACTERS.keys())
def test_every_text_field_refuses_control_format_and_separator_characters(
    world: World, ch: str
) -> None:
    path = f"/api/funds/{FUND}/donations"
    for i, donor in enumerate(
        (
            {"name": f"张{ch}三", "contact": "13800000000"},
            {"name": "张三", "contact": f"138{ch}00000000"},
            {"name": "张三", "public_name": f"张{ch}先生"},
        )
    ):
        response = world.post(path, donation_body(donor=donor), key=f"d{i}")
        assert response.status_code == 422, (donor, response.text)
    for field in ("name", "host"):
        response = world.post(
            "/api/funds", {**_fund_body(), field: f"河边{ch}基金"}, "admin", key=f"f{field}"
        )
        problem(response, 422, "invalid-field")
    response = world.post(
        "/api/funds", {**_fund_body(), "committee": ["陈校长", f"赵{ch}老师"]}, "admin", key="fc"
    )
    problem(response, 422, "invalid-field")
    grant = {"title": f"课{ch}桌", "grantee": {"name": "g"}, "amount": "1.00"}
    problem(world.post(f"/api/funds/{FUND}/grants", grant, key="g"), 422, "invalid-field")


def test_two_members_that_differ_by_a_zero_width_space_are_refused(world: World) -> None:
    body = {**_fund_body(), "committee": ["刘一", "刘一\u200b"]}
    problem(world.post("/api/funds", body, "admin", key="z"), 422, "invalid-field")


def test_the_public_mask_of_a_donor_never_carries_a_control_character(world: World) -> None:
    donated = world.donate(donor={"name": " 王小明 ", "contact": "13800000000"})
    assert donated["donor"] == "王*明"
    public = world.get(f"/api/funds/{FUND}/donations").json()["items"]
    for item in public:
        assert all(ch.isprintable() for ch in item["donor"]), item
    response = world.post(
        f"/api/funds/{FUND}/donations",
        donation_body(donor={"name": "\x1b[31m张三"}),
        key="esc",
    )
    problem(response, 422, "invalid-field")


def test_text_is_stored_trimmed_and_in_nfc(world: World) -> None:
    grant = world.create(
        f"/api/funds/{FUND}/grants",
        {"title": "  Cafe\u0301 ", "grantee": {"name": "g"}, "amount": "1.00"},
    )
    assert grant["title"] == "Caf\u00e9"


def _fund_body() -> dict[str, Any]:
    from test_api_support import FUND_BODY

    return {**FUND_BODY, "slug": "text-fund"}


# -- corrections never dated before what they correct (issue 10, item 7) ----------------------


def test_a_correction_dated_before_what_it_corrects_is_refused(world: World) -> None:
    world.donate("100.00", received_on="2026-11-02")
    grant = world.committed_grant("30.00")  # committed today, 2026-11-27
    path = f"/api/grants/{grant['id']}/disbursements"
    tranche = {"amount": "10.00", "method": "bank", "reference": "TX1"}
    body = problem(
        world.post(path, {**tranche, "paid_on": "2026-11-26"}, key="t0"), 422, "invalid-field"
    )
    assert body["field"] == "paid_on"
    assert world.post(path, {**tranche, "paid_on": "2026-11-27"}, key="t1").status_code == 201
    reversal = f"/api/grants/{grant['id']}/disbursements/1/reversal"
    problem(
        world.post(reversal, {"reason": "退票", "reversed_on": "2026-11-26"}),
        422,
        "invalid-field",
    )
    expense = world.create(
        f"/api/funds/{FUND}/expenses",
        {
            "amount": "5.00",
            "category": "program",
            "paid_on": "2026-11-20",
            "payee": "p",
            "description": "d",
        },
    )
    problem(
        world.post(
            f"/api/expenses/{expense['id']}/reversal",
            {"reason": "退货", "reversed_on": "2026-11-19"},
        ),
        422,
        "invalid-field",
    )
    done = world.post(
        f"/api/expenses/{expense['id']}/reversal", {"reason": "退货", "reversed_on": "2026-11-20"}
    )
    assert done.status_code == 200, done.text
    for day in ("2026-11-02", "2026-11-19", "2026-11-20", "2026-11-26", "2026-11-27"):
        figures = world.get(f"/api/funds/{FUND}/balance", as_of=day).json()["figures"]
        for part in (figures["totals"], figures["unrestricted"], *figures["purposes"].values()):
            assert all(not value.startswith("-") for value in part.values()), (day, part)
