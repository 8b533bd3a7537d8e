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
