"""The HTTP API through the ASGI app: every route, happy and unhappy paths, on SQLite; the
main flows also on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_api_support import (
    AUDITOR,
    COMMITTEE,
    FUND,
    FUND_BODY,
    OTHER_FUND,
    TREASURER,
    LedgerThatFails,
    World,
    donation_body,
    problem,
    serve,
)

from api.errors import all_problem_types

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Any) -> Iterator[World]:
    with serve(sqlite_url, tmp_path, clock.now) as w:
        w.open_fund()
        yield w


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_world(request: pytest.FixtureRequest, tmp_path: Path, clock: Any) -> Iterator[World]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    with serve(url, tmp_path, clock.now) as w:
        w.open_fund()
        yield w


def figures(world: World, part: str = "totals") -> dict[str, str]:
    got: dict[str, str] = world.get(f"/api/funds/{FUND}").json()["figures"][part]
    return got


# -- main flows (SQLite and PostgreSQL) --------------------------------------------------------


def test_a_fund_receives_grants_and_pays_them_and_every_read_sees_the_writes(
    any_world: World,
) -> None:
    w = any_world
    first = w.donate("1000.00")
    w.donate("300.50", purpose="education")
    assert first["receipt_no"] == f"{FUND}-2026-000001"
    assert figures(w)["received"] == "1300.50"
    assert figures(w, "unrestricted")["available"] == "1000.00"

    grant = w.committed_grant("600.00")
    paid = w.create(
        f"/api/grants/{grant['id']}/disbursements",
        {"amount": "250.00", "method": "bank", "reference": "PAY-1", "paid_on": "2026-11-20"},
    )
    assert paid["tranche_no"] == 1
    closed = w.post(f"/api/grants/{grant['id']}/closure", {"reason": "验收完毕"}, "committee")
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert closed.json()["released"] == "350.00"

    expense = w.create(
        f"/api/funds/{FUND}/expenses",
        {
            "amount": "20.00",
            "category": "administration",
            "paid_on": "2026-11-21",
            "payee": "打印店",
            "description": "公示海报",
        },
    )
    totals = figures(w)
    assert totals == {
        "received": "1300.50",
        "refunded": "0.00",
        "committed": "600.00",
        "released": "350.00",
        "disbursed": "250.00",
        "expenses": "20.00",
        "on_hand": "1030.50",
        "available": "1030.50",
    }
    assert w.get(f"/api/grants/{grant['id']}").json() == closed.json()
    reversed_ = w.post(f"/api/expenses/{expense['id']}/reversal", {"reason": "录错"})
    assert reversed_.status_code == 200
    assert reversed_.json()["reversed"] is True
    assert figures(w)["expenses"] == "0.00"
    listed = w.get(f"/api/funds/{FUND}/donations", "auditor").json()["items"]
    assert {d["donor_details"]["name"] for d in listed} == {"张三"}
    assert {d["recorded_by"] for d in listed} == {TREASURER}


def test_the_same_key_records_one_donation_even_when_sent_concurrently(any_world: World) -> None:
    w = any_world
    statuses: list[int] = []
    bodies: list[Any] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        response = w.post(f"/api/funds/{FUND}/donations", donation_body("88.00"), key="same")
        statuses.append(response.status_code)
        bodies.append(response.json())

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(statuses) == [200] * 7 + [201]
    assert all(b == bodies[0] for b in bodies)
    assert figures(w)["received"] == "88.00"
    assert len(w.get(f"/api/funds/{FUND}/donations").json()["items"]) == 1


# -- funds -------------------------------------------------------------------------------------


def test_opening_a_fund_is_idempotent_by_key(world: World) -> None:
    body = {**FUND_BODY, "slug": OTHER_FUND}
    first = world.post("/api/funds", body, "admin", key="open-river")
    again = world.post("/api/funds", body, "admin", key="open-river")
    other = world.post("/api/funds", {**body, "name": "别的"}, "admin", key="open-river")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    problem(other, 409, "idempotency-key-reused")
    problem(world.post("/api/funds", body, "admin"), 400, "idempotency-key-missing")
    problem(world.post("/api/funds", {**body, "name": "x"}, "admin", key="new"), 409, "duplicate")


def test_funds_are_listed_with_figures_and_paged(world: World) -> None:
    world.open_fund(slug=OTHER_FUND)
    page = world.get("/api/funds", limit=1).json()
    assert [f["slug"] for f in page["items"]] == [OTHER_FUND]
    rest = world.get("/api/funds", limit=1, cursor=page["next_cursor"]).json()
    assert [f["slug"] for f in rest["items"]] == [FUND]
    assert rest["next_cursor"] is None
    fund = world.get(f"/api/funds/{FUND}").json()
    assert set(fund["figures"]) == {"totals", "unrestricted", "purposes"}
    assert set(fund["figures"]["purposes"]) == {"elderly-care", "education"}
    assert set(fund["figures"]["totals"]) == {
        "received", "refunded", "committed", "released", "disbursed", "expenses", "on_hand",
        "available",
    }  # fmt: skip
    problem(world.get("/api/funds/no-such-fund"), 404, "fund-not-found")
    problem(world.get("/api/funds", limit=0), 422, "validation-error")
    problem(world.get("/api/funds", limit=501), 422, "validation-error")
    problem(world.get("/api/funds", cursor="garbage"), 422, "invalid-cursor")


def test_bad_fund_bodies_are_refused_with_the_field(world: World) -> None:
    bad = {**FUND_BODY, "slug": "Bad Slug"}
    body = problem(world.post("/api/funds", bad, "admin", key="k"), 422, "validation-error")
    assert body["field"] == "slug"
    body = problem(
        world.post("/api/funds", {**FUND_BODY, "slug": "x1", "extra": 1}, "admin", key="k2"),
        422,
        "validation-error",
    )
    assert body["field"] == "extra"
    body = problem(
        world.post("/api/funds", {**FUND_BODY, "slug": "x2", "currency": "XXX"}, "admin", key="k3"),
        422,
        "unknown-currency",
    )


def test_purposes_are_added_once(world: World) -> None:
    path = f"/api/funds/{FUND}/purposes"
    added = world.post(path, {"code": "roads", "name": "道路"}, "admin")
    assert added.status_code == 201
    assert {"code": "roads", "name": "道路"} in added.json()["purposes"]
    problem(world.post(path, {"code": "roads", "name": "道路"}, "admin"), 409, "duplicate")
    problem(world.post(path, {"code": "Roads!", "name": "x"}, "admin"), 422, "validation-error")
    problem(
        world.post("/api/funds/nope/purposes", {"code": "a", "name": "b"}, "admin"),
        404,
        "fund-not-found",
    )


def test_a_month_that_ended_can_be_closed_and_then_takes_no_entries(world: World) -> None:
    closed = world.post(f"/api/funds/{FUND}/periods/2026-10/close", None)
    assert closed.status_code == 200
    assert closed.json()["closed_periods"] == ["2026-10"]
    problem(
        world.post(
            f"/api/funds/{FUND}/donations", donation_body(received_on="2026-10-31"), key="a"
        ),
        409,
        "period-closed",
    )
    problem(world.post(f"/api/funds/{FUND}/periods/2026-11/close", None), 409, "period-not-ended")
    problem(world.post(f"/api/funds/{FUND}/periods/2026-13/close", None), 422, "validation-error")


# -- donations ---------------------------------------------------------------------------------


def test_a_donation_is_recorded_once_per_key(world: World) -> None:
    path = f"/api/funds/{FUND}/donations"
    first = world.post(path, donation_body("12.30"), key="d1")
    again = world.post(path, donation_body("12.30"), key="d1")
    other = world.post(path, donation_body("12.31"), key="d1")

    assert first.status_code == 201
    created = first.json()
    assert {"id", "receipt_no", "amount", "received_on"} <= set(created)
    assert created["amount"] == "12.30"
    assert created["donor"] == "张*"
    assert again.status_code == 200
    assert again.json() == created
    problem(other, 409, "idempotency-key-reused")
    problem(world.post(path, donation_body()), 400, "idempotency-key-missing")
    problem(world.post(path, donation_body(), key=""), 400, "idempotency-key-invalid")


@pytest.mark.parametrize(
    ("amount", "type_"),
    [
        ("100.001", "too-many-decimals"),
        ("0.00", "amount-not-positive"),
        ("0", "amount-not-positive"),
        ("-5.00", "validation-error"),
        (12.5, "validation-error"),
        (12, "validation-error"),
        ("1e3", "validation-error"),
        ("", "validation-error"),
    ],
)
def test_amounts_are_decimal_strings_in_the_funds_currency(
    world: World, amount: Any, type_: str
) -> None:
    response = world.post(f"/api/funds/{FUND}/donations", donation_body(amount), key="k")
    body = problem(response, 422, type_)
    assert body["field"] == "amount"


def test_the_smallest_amount_is_accepted(world: World) -> None:
    assert world.donate("0.01")["amount"] == "0.01"


@pytest.mark.parametrize(
    ("change", "status", "type_", "field"),
    [
        ({"received_on": "2026-11-28"}, 422, "date-in-future", "received_on"),
        ({"received_on": "2026-02-30"}, 422, "validation-error", "received_on"),
        ({"received_on": 20261101}, 422, "validation-error", "received_on"),
        ({"channel": "crypto"}, 422, "validation-error", "channel"),
        ({"purpose": "roads"}, 422, "unknown-purpose", None),
        ({"surprise": True}, 422, "validation-error", "surprise"),
        ({"donor": {"anonymous": "yes"}}, 422, "validation-error", "donor.anonymous"),
        ({"channel": "in_kind"}, 422, "invalid-field", "in_kind"),
    ],
)
def test_bad_donations_are_refused_with_the_field(
    world: World, change: dict[str, Any], status: int, type_: str, field: str | None
) -> None:
    response = world.post(f"/api/funds/{FUND}/donations", donation_body(**change), key="k")
    body = problem(response, status, type_)
    if field is not None:
        assert body["field"] == field


def test_an_in_kind_gift_and_an_anonymous_one(world: World) -> None:
    gift = world.donate(
        "3000.00",
        channel="in_kind",
        in_kind={"description": "茶苗 2000 株", "valuation_basis": "指导价"},
        donor={"anonymous": True, "name": "青岩茶厂"},
    )
    assert gift["in_kind"] == {"description": "茶苗 2000 株", "valuation_basis": "指导价"}
    assert gift["donor"] == "爱心人士"
    assert world.donate("1.00", donor={"name": "王小明", "public_name": "小明"})["donor"] == "小明"


def test_donations_are_masked_for_the_public_and_full_for_auditors(world: World) -> None:
    for i in range(3):
        world.donate(f"{i + 1}.00", received_on=f"2026-11-0{i + 1}")
    path = f"/api/funds/{FUND}/donations"
    public = world.get(path).json()["items"]
    assert [d["amount"] for d in public] == ["3.00", "2.00", "1.00"]  # newest first
    assert all("id" not in d and "donor_details" not in d for d in public)
    assert {d["donor"] for d in public} == {"张*"}
    assert "张三" not in world.get(path).text
    assert "13800000000" not in world.get(path, "committee").text

    full = world.get(path, "auditor").json()["items"]
    assert full[0]["donor_details"] == {"name": "张三", "contact": "13800000000"}
    treasurer = world.get(path, "treasurer").json()["items"]
    assert treasurer[0]["id"] == full[0]["id"]
    assert treasurer[0]["donor_details"] is None

    page = world.get(path, limit=2).json()
    assert len(page["items"]) == 2
    rest = world.get(path, limit=2, cursor=page["next_cursor"]).json()
    assert [d["amount"] for d in rest["items"]] == ["1.00"]
    assert rest["next_cursor"] is None
    problem(world.get(path, cursor="bm9wZQ"), 422, "invalid-cursor")
    problem(world.get("/api/funds/nope/donations"), 404, "fund-not-found")


def test_refunds_are_bounded_by_the_donation_and_idempotent(world: World) -> None:
    donation = world.donate("100.00")
    path = f"/api/donations/{donation['id']}/refunds"
    body = {"amount": "40.00", "reason": "多转了", "refunded_on": "2026-11-03"}
    first = world.post(path, body, key="r1")
    assert first.status_code == 201
    assert first.json()["amount"] == "40.00"
    again = world.post(path, body, key="r1")
    assert again.status_code == 200
    assert again.json() == first.json()
    problem(world.post(path, {**body, "amount": "41.00"}, key="r1"), 409, "idempotency-key-reused")
    problem(world.post(path, {**body, "amount": "60.01"}, key="r2"), 409, "refund-too-large")
    problem(world.post(path, body), 400, "idempotency-key-missing")
    problem(
        world.post("/api/donations/not-a-donation/refunds", body, key="r3"),
        404,
        "donation-not-found",
    )
    assert figures(world)["refunded"] == "40.00"


def test_a_donation_is_reversed_whole_once(world: World) -> None:
    donation = world.donate("100.00")
    world.create(f"/api/donations/{donation['id']}/refunds", {"amount": "30.00", "reason": "退"})
    path = f"/api/donations/{donation['id']}/reversal"
    reversed_ = world.post(path, {"reason": "录入错误"})
    assert reversed_.status_code == 200
    assert reversed_.json()["reversed"] == "70.00"
    assert world.post(path, {"reason": "录入错误"}).status_code == 200  # a retry
    problem(world.post(path, {"reason": "别的理由"}), 409, "already-reversed")
    problem(world.post(path, {}), 422, "validation-error")
    assert figures(world)["received"] == "100.00"
    assert figures(world)["on_hand"] == "0.00"


# -- grants ------------------------------------------------------------------------------------


def test_a_grant_commits_at_the_second_distinct_approval(world: World) -> None:
    world.donate("1000.00")
    grant = world.create(
        f"/api/funds/{FUND}/grants",
        {"title": "图书角", "grantee": {"name": "村小", "id": "ORG-1"}, "amount": "400.00"},
    )
    assert grant["status"] == "proposed"
    assert grant["proposed_by"] == TREASURER
    path = f"/api/grants/{grant['id']}/approvals"
    one = world.post(path, {"note": "看过了"}, COMMITTEE[0])
    assert one.json()["status"] == "proposed"
    problem(world.post(path, {}, COMMITTEE[0]), 409, "already-approved")
    two = world.post(path, {}, COMMITTEE[1])
    assert two.json()["status"] == "committed"
    assert [a["member"] for a in two.json()["approvals"]] == list(COMMITTEE[:2])
    assert figures(world)["available"] == "600.00"
    assert world.get(f"/api/grants/{grant['id']}").json() == two.json()


def test_the_proposer_may_not_approve_their_own_grant(world: World) -> None:
    world.donate("1000.00")
    grant = world.create(
        f"/api/funds/{FUND}/grants",
        {"title": "路灯", "grantee": {"name": "工程部"}, "amount": "10.00"},
        COMMITTEE[2],
    )
    problem(
        world.post(f"/api/grants/{grant['id']}/approvals", {}, COMMITTEE[2]), 403, "self-approval"
    )


def test_a_grant_needs_available_money_to_commit(world: World) -> None:
    world.donate("100.00")
    grant = world.create(
        f"/api/funds/{FUND}/grants",
        {"title": "大项目", "grantee": {"name": "x"}, "amount": "100.01"},
    )
    world.post(f"/api/grants/{grant['id']}/approvals", {}, COMMITTEE[0])
    problem(
        world.post(f"/api/grants/{grant['id']}/approvals", {}, COMMITTEE[1]),
        409,
        "insufficient-funds",
    )


def test_tranches_never_exceed_the_grant_and_can_be_reversed(world: World) -> None:
    world.donate("1000.00")
    grant = world.committed_grant("500.00")
    path = f"/api/grants/{grant['id']}/disbursements"
    body = {"amount": "300.00", "method": "bank", "reference": "PAY-1", "evidence_sha256": "a" * 64}
    first = world.post(path, body, key="t1")
    assert first.status_code == 201
    assert first.json()["tranche_no"] == 1
    again = world.post(path, body, key="t1")
    assert again.status_code == 200
    assert again.json() == first.json()
    problem(world.post(path, {**body, "amount": "200.01"}, key="t2"), 409, "grant-overdrawn")
    problem(world.post(path, {**body, "method": "gold"}, key="t3"), 422, "validation-error")
    reversal = f"/api/grants/{grant['id']}/disbursements/1/reversal"
    reversed_ = world.post(reversal, {"reason": "退票"})
    assert reversed_.status_code == 200
    assert reversed_.json()["tranches"][0]["reversed"] is True
    assert reversed_.json()["disbursed"] == "0.00"
    problem(world.post(reversal, {"reason": "again"}), 409, "already-reversed")
    problem(
        world.post(f"/api/grants/{grant['id']}/disbursements/9/reversal", {"reason": "x"}),
        404,
        "tranche-not-found",
    )


def test_grants_are_rejected_or_cancelled_by_the_committee(world: World) -> None:
    world.donate("1000.00")
    proposal = world.create(
        f"/api/funds/{FUND}/grants", {"title": "路灯", "grantee": {"name": "x"}, "amount": "10.00"}
    )
    rejected = world.post(
        f"/api/grants/{proposal['id']}/rejection", {"reason": "不在范围"}, "committee"
    )
    assert rejected.json()["status"] == "rejected"
    problem(
        world.post(f"/api/grants/{proposal['id']}/cancellation", {"reason": "x"}, "committee"),
        409,
        "invalid-state",
    )
    grant = world.committed_grant("200.00")
    cancelled = world.post(
        f"/api/grants/{grant['id']}/cancellation", {"reason": "取消"}, "committee"
    )
    assert cancelled.json()["status"] == "cancelled"
    assert figures(world)["available"] == "1000.00"
    problem(world.get("/api/grants/00000000-0000-0000-0000-000000000000"), 404, "grant-not-found")
    problem(world.post("/api/grants/nope/approvals", {}, "committee"), 404, "grant-not-found")


def test_a_funds_grants_are_listed_newest_first_and_paged(world: World) -> None:
    world.donate("1000.00")
    ids = [
        world.create(
            f"/api/funds/{FUND}/grants",
            {"title": f"g{i}", "grantee": {"name": "x"}, "amount": "1.00"},
        )["id"]
        for i in range(3)
    ]
    page = world.get(f"/api/funds/{FUND}/grants", limit=2).json()
    rest = world.get(f"/api/funds/{FUND}/grants", limit=2, cursor=page["next_cursor"]).json()
    listed = [g["id"] for g in page["items"] + rest["items"]]
    assert sorted(listed) == sorted(ids)
    assert rest["next_cursor"] is None
    problem(world.get("/api/funds/nope/grants"), 404, "fund-not-found")


# -- expenses ----------------------------------------------------------------------------------


def test_expenses_need_available_money_and_are_reversed_by_id(world: World) -> None:
    world.donate("100.00")
    path = f"/api/funds/{FUND}/expenses"
    body = {
        "amount": "30.00",
        "category": "program",
        "paid_on": "2026-11-05",
        "payee": "供应商",
        "description": "材料",
    }
    first = world.post(path, body, key="e1")
    assert first.status_code == 201
    again = world.post(path, body, key="e1")
    assert (again.status_code, again.json()) == (200, first.json())
    problem(world.post(path, {**body, "amount": "70.01"}, key="e2"), 409, "insufficient-funds")
    problem(world.post(path, {**body, "category": "fun"}, key="e3"), 422, "validation-error")
    reversal = f"/api/expenses/{first.json()['id']}/reversal"
    assert world.post(reversal, {"reason": "重复"}).status_code == 200
    problem(world.post(reversal, {"reason": "again"}), 409, "already-reversed")
    problem(world.post("/api/expenses/nope/reversal", {"reason": "x"}), 404, "expense-not-found")


# -- reading: balance, report, exports, health ------------------------------------------------


def test_balance_as_of_a_date_and_as_known_at_an_instant(world: World) -> None:
    world.donate("10.00", received_on="2026-11-01")
    time.sleep(0.01)
    before = datetime.now(UTC).isoformat()  # events carry the time they were recorded
    time.sleep(0.01)
    world.donate("5.00", received_on="2026-10-15")
    path = f"/api/funds/{FUND}/balance"
    assert world.get(path).json()["figures"]["totals"]["received"] == "15.00"
    as_of = world.get(path, as_of="2026-10-31").json()
    assert as_of["figures"]["totals"]["received"] == "5.00"
    assert as_of["as_of"] == "2026-10-31"
    known = world.get(path, known_at=before).json()
    assert known["figures"]["totals"]["received"] == "10.00"
    problem(world.get(path, known_at="2026-11-01T00:00:00"), 422, "validation-error")
    problem(world.get(path, as_of="yesterday"), 422, "validation-error")
    problem(world.get("/api/funds/nope/balance"), 404, "fund-not-found")


def test_the_report_covers_a_period(world: World) -> None:
    world.donate("10.00", received_on="2026-10-01")
    world.donate("20.00", received_on="2026-11-01")
    report = world.get(f"/api/funds/{FUND}/report", **{"from": "2026-11-01", "to": "2026-11-30"})
    assert report.status_code == 200, report.text
    data = report.json()
    assert (data["from"], data["to"]) == ("2026-11-01", "2026-11-30")
    assert data["opening"]["totals"]["received"] == "10.00"
    assert data["closing"]["totals"]["received"] == "30.00"
    assert data["flows"]["in"] == "20.00"
    assert data["donations_count"] == 1
    whole = world.get(f"/api/funds/{FUND}/report").json()
    assert whole["from"] == "2026-10-01"
    problem(
        world.get(f"/api/funds/{FUND}/report", **{"from": "2026-11-02", "to": "2026-11-01"}),
        422,
        "invalid-field",
    )
    problem(world.get("/api/funds/nope/report"), 404, "fund-not-found")


@pytest.mark.parametrize("kind", ["donations", "grants", "disbursements", "expenses", "journal"])
def test_every_export_is_a_csv(world: World, kind: str) -> None:
    world.donate("10.00")
    response = world.get(f"/api/funds/{FUND}/exports/{kind}.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    assert len(response.text.splitlines()) >= 1


def test_only_auditors_export_donor_details(world: World) -> None:
    world.donate("10.00")
    public = world.get(f"/api/funds/{FUND}/exports/donations.csv").text
    audited = world.get(f"/api/funds/{FUND}/exports/donations.csv", "auditor").text
    assert "张三" not in public
    assert "donor_name" in audited.splitlines()[0]
    assert "张三" in audited
    assert "13800000000" in audited
    problem(world.get(f"/api/funds/{FUND}/exports/secrets.csv"), 422, "validation-error")
    problem(world.get("/api/funds/nope/exports/donations.csv"), 404, "fund-not-found")


def test_health_reports_the_store_and_the_lag(world: World) -> None:
    world.donate("1.00")
    health = world.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["store"] == "reachable"
    assert health["lag"] == 0
    assert {p["name"] for p in health["projections"]} >= {"funds", "donations", "grants"}


# -- authentication and errors ----------------------------------------------------------------


def test_writes_need_a_valid_token(world: World) -> None:
    path = f"/api/funds/{FUND}/donations"
    missing = world.client.post(path, json=donation_body(), headers={"Idempotency-Key": "a"})
    problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    unknown = world.client.post(
        path, json=donation_body(), headers={"Authorization": "Bearer nope", "Idempotency-Key": "a"}
    )
    problem(unknown, 401, "unauthorized")
    problem(world.post(path, donation_body(), "auditor", key="a"), 403, "role-not-allowed")
    problem(world.post(path, donation_body(), "committee", key="a"), 403, "role-not-allowed")


def test_a_revoked_token_stops_working(world: World) -> None:
    world.token("临时出纳", "treasurer", funds=(FUND,))
    path = f"/api/funds/{FUND}/donations"
    assert world.post(path, donation_body(), "临时出纳", key="a").status_code == 201
    world.services.tokens.revoke("临时出纳")
    problem(world.post(path, donation_body(), "临时出纳", key="b"), 401, "unauthorized")


def test_a_token_limited_to_funds_writes_only_there(world: World) -> None:
    world.open_fund(slug=OTHER_FUND)
    world.token("河边出纳", "treasurer", funds=(OTHER_FUND,))
    assert world.create(f"/api/funds/{OTHER_FUND}/donations", donation_body(), "河边出纳")
    body = problem(
        world.post(f"/api/funds/{FUND}/donations", donation_body(), "河边出纳", key="x"),
        403,
        "fund-not-allowed",
    )
    assert body["fund"] == FUND
    donation = world.donate("50.00")
    problem(
        world.post(f"/api/donations/{donation['id']}/reversal", {"reason": "x"}, "河边出纳"),
        403,
        "fund-not-allowed",
    )


def test_the_tokens_name_is_the_actor(world: World) -> None:
    world.donate("1.00")
    items = world.get(f"/api/funds/{FUND}/donations", "auditor").json()["items"]
    assert items[0]["recorded_by"] == TREASURER
    assert AUDITOR not in {i["recorded_by"] for i in items}


def test_bodies_over_64_kib_are_refused(world: World) -> None:
    path = f"/api/funds/{FUND}/donations"
    headers = {
        **world.auth("treasurer"),
        "Idempotency-Key": "big",
        "Content-Type": "application/json",
    }
    big = b'{"note": "' + b"x" * (64 * 1024) + b'"}'
    problem(world.client.post(path, content=big, headers=headers), 413, "body-too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"note": "'
        for _ in range(70):
            yield b"x" * 1024
        yield b'"}'

    problem(world.client.post(path, content=chunks(), headers=headers), 413, "body-too-large")
    just = donation_body(note="x" * 1000)
    assert world.post(path, just, key="fits").status_code == 201


def test_malformed_requests_get_problems_never_tracebacks(world: World) -> None:
    path = f"/api/funds/{FUND}/donations"
    headers = {
        **world.auth("treasurer"),
        "Idempotency-Key": "m",
        "Content-Type": "application/json",
    }
    problem(world.client.post(path, content=b"{not json", headers=headers), 422, "validation-error")
    problem(world.client.post(path, content=b"[]", headers=headers), 422, "validation-error")
    problem(world.get("/api/nowhere"), 404, "route-not-found")
    problem(world.client.delete(f"/api/funds/{FUND}"), 405, "method-not-allowed")


def test_an_unexpected_error_is_a_500_problem_without_a_traceback(
    sqlite_url: str, tmp_path: Path, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(sqlite_url, tmp_path, clock.now, ledger_class=LedgerThatFails) as world:
        world.open_fund()
        ledger = world.ledger
        assert isinstance(ledger, LedgerThatFails)
        ledger.fail_next("record_donation", RuntimeError("secret internals"))

        response = world.post(f"/api/funds/{FUND}/donations", donation_body(), key="boom")

        body = problem(response, 500, "internal-error")
        assert "secret internals" not in response.text
        assert body["detail"]
        assert any("secret internals" in str(r.exc_info) for r in caplog.records if r.exc_info)
        # The fault was the ledger's, once: the same request then records the donation.
        again = world.post(f"/api/funds/{FUND}/donations", donation_body(), key="boom")
        assert again.status_code == 201, again.text


# -- the contract: OpenAPI and docs ------------------------------------------------------------


def test_openapi_documents_every_status_of_every_route(world: World) -> None:
    schema = world.get("/openapi.json").json()
    creating = {
        ("post", "/api/funds"),
        ("post", "/api/funds/{slug}/donations"),
        ("post", "/api/donations/{donation_id}/refunds"),
        ("post", "/api/funds/{slug}/grants"),
        ("post", "/api/grants/{grant_id}/disbursements"),
        ("post", "/api/funds/{slug}/expenses"),
    }
    seen = set()
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            assert "500" in codes, (method, path)
            assert op["x-roles"], (method, path)
            if op["x-roles"] != ["public"]:
                assert {"401", "403"} <= codes, (method, path)
            if method == "post":
                assert {"413", "422"} <= codes, (method, path)
            if (method, path) in creating:
                seen.add((method, path))
                assert {"200", "201", "400", "409"} <= codes, (method, path)
                key = [p for p in op["parameters"] if p["name"] == "Idempotency-Key"]
                assert key
                assert key[0]["required"] is True
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert set(response["content"]) == {"application/problem+json"}
    assert seen == creating


def test_every_problem_type_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [slug for slug in all_problem_types() if f"`{slug}`" not in text]
    assert not missing, f"docs/api.md does not list {missing}"
