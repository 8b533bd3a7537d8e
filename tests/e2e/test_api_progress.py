"""Progress notes and disclosure through the HTTP API: ``POST /api/grants/{id}/progress``
(treasurers and committee members of the grant's fund), ``GET /api/grants/{id}`` (progress
and disclosure) and ``GET /api/funds/{slug}/grants?disclosure=overdue``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_api_support import COMMITTEE, FUND, World, problem, serve

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOTE = {"on": "2026-11-27", "note": "灶具已安装，老年食堂开餐", "evidence_sha256": ["d" * 64]}


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Any) -> Iterator[World]:
    with serve(sqlite_url, tmp_path, clock.now) as w:
        w.open_fund()
        w.donate("1000.00")
        yield w


def path(grant: dict[str, Any]) -> str:
    return f"/api/grants/{grant['id']}/progress"


def test_a_treasurer_records_progress_and_the_grant_shows_it(world: World) -> None:
    grant = world.committed_grant("100.00")
    assert grant["progress"] == []
    assert grant["disclosure"] == {
        "status": "up-to-date",
        "update_due_on": "2027-02-27",
        "final_account_due_on": None,
    }
    response = world.post(path(grant), NOTE, key="p-1")
    assert response.status_code == 201, response.text
    assert response.json() == {
        "grant_id": grant["id"],
        "no": 1,
        "on": "2026-11-27",
        "note": NOTE["note"],
        "evidence_sha256": ["d" * 64],
        "final": False,
        "recorded_by": "刘晓梅",
    }
    shown = world.get(f"/api/grants/{grant['id']}").json()
    assert shown["progress"] == [{k: v for k, v in response.json().items() if k != "grant_id"}]
    assert shown["disclosure"]["update_due_on"] == "2027-02-27"
    listed = world.get(f"/api/funds/{FUND}/grants").json()["items"][0]
    assert listed == shown


def test_the_same_key_again_answers_the_original(world: World) -> None:
    grant = world.committed_grant("100.00")
    first = world.post(path(grant), NOTE, key="p-1")
    again = world.post(path(grant), NOTE, key="p-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    problem(
        world.post(path(grant), {**NOTE, "note": "别的"}, key="p-1"), 409, "idempotency-key-reused"
    )
    problem(world.post(path(grant), NOTE), 400, "idempotency-key-missing")


def test_a_committee_member_on_the_committee_records_progress(world: World) -> None:
    grant = world.committed_grant("100.00")
    assert world.post(path(grant), NOTE, COMMITTEE[2], key="c-1").status_code == 201
    world.token("外人", "committee", funds=(FUND,))
    problem(world.post(path(grant), NOTE, "外人", key="c-2"), 403, "not-committee-member")


def test_only_treasurers_and_committee_members_of_the_fund_record_progress(world: World) -> None:
    grant = world.committed_grant("100.00")
    problem(world.post(path(grant), NOTE, None, key="x"), 401, "unauthorized")
    for role in ("admin", "auditor"):
        problem(world.post(path(grant), NOTE, role, key="x"), 403, "role-not-allowed")
    world.token("别的出纳", "treasurer", funds=("river-school",))
    problem(world.post(path(grant), NOTE, "别的出纳", key="x"), 403, "fund-not-allowed")


@pytest.mark.parametrize(
    ("body", "status", "type_"),
    [
        ({**NOTE, "on": "2026-11-28"}, 422, "date-in-future"),
        ({**NOTE, "on": "2026-11-26"}, 422, "invalid-date"),  # before the proposal
        ({**NOTE, "final": True}, 409, "invalid-state"),  # the grant has not ended
        ({**NOTE, "note": ""}, 422, "validation-error"),
        ({**NOTE, "note": "x" * 2001}, 422, "validation-error"),
        ({**NOTE, "note": "a\x00b"}, 422, "invalid-field"),
        ({**NOTE, "evidence_sha256": ["D" * 64]}, 422, "validation-error"),
        ({**NOTE, "evidence_sha256": ["d" * 64, "d" * 64]}, 422, "invalid-field"),
        ({**NOTE, "evidence_sha256": [f"{n:064x}" for n in range(21)]}, 422, "validation-error"),
        ({**NOTE, "final": "yes"}, 422, "validation-error"),
        ({"note": "n"}, 422, "validation-error"),
        ({**NOTE, "extra": 1}, 422, "validation-error"),
    ],
)
def test_a_progress_note_follows_the_rules_of_every_text_and_date(
    world: World, body: dict[str, Any], status: int, type_: str
) -> None:
    grant = world.committed_grant("100.00")
    problem(world.post(path(grant), body, key="bad"), status, type_)
    assert world.get(f"/api/grants/{grant['id']}").json()["progress"] == []


def test_no_progress_on_a_proposed_grant_nor_an_unknown_one(world: World) -> None:
    grant = world.create(
        f"/api/funds/{FUND}/grants", {"title": "t", "grantee": {"name": "g"}, "amount": "1.00"}
    )
    problem(world.post(path(grant), NOTE, key="p"), 409, "invalid-state")
    problem(world.post(path({"id": "nope"}), NOTE, key="p"), 404, "grant-not-found")


def test_the_fund_lists_its_grants_with_overdue_disclosure(world: World, clock: Any) -> None:
    late = world.committed_grant("100.00")
    kept = world.committed_grant("100.00")
    ended = world.committed_grant("100.00")
    world.post(f"/api/grants/{ended['id']}/closure", {"reason": "完成"})
    clock.set(datetime(2027, 5, 27, 10, 0, tzinfo=SHANGHAI))  # six months after the start
    assert world.post(path(kept), {**NOTE, "on": "2027-05-01"}, key="k").status_code == 201

    def listed(status: str) -> list[str]:
        page = world.get(f"/api/funds/{FUND}/grants", disclosure=status).json()
        return sorted(g["id"] for g in page["items"])

    assert listed("up-to-date") == [kept["id"]]
    # six months exactly: the update is due, not yet binding; the final account is late
    assert listed("overdue") == [ended["id"]]
    assert listed("due") == [late["id"]]
    clock.set(datetime(2027, 5, 28, 10, 0, tzinfo=SHANGHAI))
    assert listed("overdue") == sorted([late["id"], ended["id"]])
    shown = world.get(f"/api/grants/{ended['id']}").json()
    assert shown["ended_on"] == "2026-11-27"
    assert shown["disclosure"] == {
        "status": "overdue",
        "update_due_on": None,
        "final_account_due_on": "2027-02-27",
    }
    final = {**NOTE, "on": "2027-05-28", "final": True}
    assert world.post(path(ended), final, key="f").status_code == 201
    assert listed("overdue") == [late["id"]]
    assert listed("done") == [ended["id"]]
    problem(world.get(f"/api/funds/{FUND}/grants", disclosure="late"), 422, "validation-error")


def test_the_overdue_list_is_paged(world: World, clock: Any) -> None:
    ids = sorted(world.committed_grant("10.00")["id"] for _ in range(3))
    clock.set(datetime(2027, 7, 1, 10, 0, tzinfo=SHANGHAI))
    first = world.get(f"/api/funds/{FUND}/grants", disclosure="overdue", limit=2).json()
    assert len(first["items"]) == 2
    rest = world.get(
        f"/api/funds/{FUND}/grants", disclosure="overdue", limit=2, cursor=first["next_cursor"]
    ).json()
    assert rest["next_cursor"] is None
    assert sorted(g["id"] for g in first["items"] + rest["items"]) == ids
