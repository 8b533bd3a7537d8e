"""The host charity's details through the HTTP API: ``PUT /api/funds/{slug}/host`` (admins),
shown by ``GET /api/funds/{slug}`` from the funds read model (its rebuild is checked with
every read model's, ``tests/read_models_support.py``'s history records host details)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_api_support import FUND, World, problem, serve

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HOST = {"name": "示例公益基金会", "credit_code": "53100000500021676K", "public_fundraising": True}


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Any) -> Iterator[World]:
    with serve(sqlite_url, tmp_path, clock.now) as w:
        w.open_fund()
        yield w


def put_host(w: World, body: Any, who: str | None = "admin", fund: str = FUND) -> Any:
    return w.client.put(f"/api/funds/{fund}/host", json=body, headers=w.auth(who))


def test_a_fund_without_host_details_shows_null(world: World) -> None:
    fund = world.get(f"/api/funds/{FUND}").json()
    assert fund["host"] == "示例公益基金会"
    assert fund["host_details"] is None


def test_an_admin_records_the_host_and_every_read_shows_it(world: World) -> None:
    response = put_host(world, {**HOST, "name": "茶乡公益基金会"})
    assert response.status_code == 200, response.text
    expected = {**HOST, "name": "茶乡公益基金会"}
    assert response.json()["host_details"] == expected
    assert response.json()["host"] == "茶乡公益基金会"
    fund = world.get(f"/api/funds/{FUND}").json()
    assert fund["host_details"] == expected
    assert fund["host"] == "茶乡公益基金会"
    listed = world.get("/api/funds").json()["items"][0]
    assert listed["host_details"] == expected


def test_the_same_host_again_records_nothing_and_a_change_records_again(world: World) -> None:
    assert put_host(world, HOST).status_code == 200
    head = world.ledger.recorder.max_notification_id()
    assert put_host(world, HOST).status_code == 200
    assert world.ledger.recorder.max_notification_id() == head
    changed = put_host(world, {**HOST, "public_fundraising": False}).json()
    assert changed["host_details"]["public_fundraising"] is False
    assert world.ledger.recorder.max_notification_id() == head + 1


@pytest.mark.parametrize(
    "code",
    ["53100000500021676J", "53100000500021676", "53100000500021676KK", "5310000050002167IK"],
)
def test_an_invalid_credit_code_is_a_422_invalid_credit_code(world: World, code: str) -> None:
    body = problem(put_host(world, {**HOST, "credit_code": code}), 422, "invalid-credit-code")
    assert body["field"] == "credit_code"
    assert world.get(f"/api/funds/{FUND}").json()["host_details"] is None


@pytest.mark.parametrize(
    "body",
    [
        {**HOST, "public_fundraising": "yes"},
        {k: v for k, v in HOST.items() if k != "public_fundraising"},
        {**HOST, "name": ""},
        {**HOST, "extra": 1},
        {**HOST, "credit_code": "5" * 65},
    ],
)
def test_a_malformed_host_body_is_a_validation_error(world: World, body: Any) -> None:
    problem(put_host(world, body), 422, "validation-error")


def test_only_admins_record_the_host(world: World) -> None:
    problem(put_host(world, HOST, None), 401, "unauthorized")
    for role in ("treasurer", "committee", "auditor"):
        problem(put_host(world, HOST, role), 403, "role-not-allowed")


def test_an_admin_of_other_funds_may_not_record_the_host(world: World) -> None:
    world.token("别的管理员", "admin", funds=("river-school",))
    problem(put_host(world, HOST, "别的管理员"), 403, "fund-not-allowed")


def test_the_host_of_an_unknown_fund_is_a_404(world: World) -> None:
    problem(put_host(world, HOST, fund="no-such-fund"), 404, "fund-not-found")
