"""Progress notes on a grant (``Grant.ProgressRecorded``) and what it must publish."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from ledger.domain.disclosure import DONE, DUE, NOT_STARTED, OVERDUE, UP_TO_DATE
from ledger.domain.errors import InvalidDate, InvalidField, InvalidState
from ledger.domain.grant import EVIDENCE_PER_NOTE_MAX, Grant

DAY = date(2024, 3, 15)  # the builders' day: proposed, approved and committed
SHA_A = "a" * 64
COMMITTEE = ["alice", "bob", "carol"]
SHA_B = "b" * 64


def progress(grant: Grant, **overrides: Any) -> int:
    fields: dict[str, Any] = {
        "progress_id": f"p-{len(grant.progress) + 1}",
        "reported_on": date(2024, 5, 1),
        "note": "灶具已安装，老年食堂开餐",
        "evidence_sha256": [SHA_A],
        "final": False,
        "actor": "treasurer",
        "request_sha256": "0" * 64,
    }
    fields.update(overrides)
    return grant.record_progress(**fields)


def test_a_progress_note_on_a_committed_grant_is_one_event(
    committed_grant: Any, replayed: Any
) -> None:
    grant = committed_grant()
    assert progress(grant) == 1
    assert progress(grant, evidence_sha256=[]) == 2
    events = grant.collect_events()
    assert [type(e).__qualname__ for e in events] == ["Grant.ProgressRecorded"] * 2
    first = events[0]
    assert (first.progress_no, first.note, first.evidence_sha256, first.final) == (
        1,
        "灶具已安装，老年食堂开餐",
        [SHA_A],
        False,
    )
    assert first.occurred_on == "2024-05-01"
    assert first.actor == "treasurer"
    assert [p.reported_on for p in grant.progress] == ["2024-05-01", "2024-05-01"]


def test_progress_notes_replay(committed_grant: Any, propose_grant: Any, replayed: Any) -> None:
    grant = propose_grant()
    for member in ("bob", "carol"):
        grant.approve(member=member, committee=["alice", "bob", "carol"], note="", approved_on=DAY)
    grant.commit(committed_on=DAY, actor="carol")
    progress(grant)
    grant.close(reason="done", closed_on=date(2024, 6, 1), actor="alice", committee=COMMITTEE)
    progress(grant, final=True, reported_on=date(2024, 6, 2))
    rebuilt = replayed(grant.collect_events())
    assert rebuilt.__dict__ == grant.__dict__
    assert rebuilt.committed_on == "2024-03-15"


@pytest.mark.parametrize("status", ["proposed", "rejected"])
def test_no_progress_on_a_grant_never_committed(propose_grant: Any, status: str) -> None:
    grant = propose_grant()
    if status == "rejected":
        grant.reject(reason="no", rejected_on=DAY, actor="bob", committee=COMMITTEE)
    with pytest.raises(InvalidState):
        progress(grant)


def test_a_final_account_waits_for_the_end(committed_grant: Any) -> None:
    grant = committed_grant()
    with pytest.raises(InvalidState, match="final account"):
        progress(grant, final=True)
    grant.cancel(
        reason="村里改了计划", cancelled_on=date(2024, 4, 1), actor="bob", committee=COMMITTEE
    )
    assert progress(grant, final=True) == 1


def test_progress_on_an_ended_grant_is_allowed(committed_grant: Any) -> None:
    grant = committed_grant()
    grant.close(reason="done", closed_on=date(2024, 4, 1), actor="bob", committee=COMMITTEE)
    assert progress(grant) == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"note": ""}, "note"),
        ({"note": "   "}, "note"),
        ({"note": "x" * 2001}, "note"),
        ({"note": "a\x07b"}, "note"),
        ({"evidence_sha256": ["A" * 64]}, "evidence"),
        ({"evidence_sha256": ["a" * 63]}, "evidence"),
        ({"evidence_sha256": [SHA_A, SHA_A]}, "evidence"),
        ({"evidence_sha256": [f"{n:064x}" for n in range(EVIDENCE_PER_NOTE_MAX + 1)]}, "evidence"),
        ({"evidence_sha256": SHA_A}, "evidence"),
        ({"final": "yes"}, "final"),
    ],
)
def test_a_progress_note_is_checked_like_every_text(
    committed_grant: Any, overrides: dict[str, Any], field: str
) -> None:
    grant = committed_grant()
    with pytest.raises(InvalidField) as excinfo:
        progress(grant, **overrides)
    assert excinfo.value.facts["field"] == field
    assert grant.collect_events() == []


def test_the_limits_are_inclusive(committed_grant: Any) -> None:
    grant = committed_grant()
    many = [f"{n:064x}" for n in range(EVIDENCE_PER_NOTE_MAX)]
    assert progress(grant, note="x" * 2000, evidence_sha256=many) == 1


def test_a_progress_note_is_not_dated_before_the_proposal(committed_grant: Any) -> None:
    grant = committed_grant()
    with pytest.raises(InvalidDate):
        progress(grant, reported_on=date(2024, 3, 14))
    assert progress(grant, reported_on=DAY) == 1


def test_the_grant_says_what_it_must_publish(committed_grant: Any, propose_grant: Any) -> None:
    assert propose_grant().disclosure(date(2025, 1, 1), ended_on=None).status == NOT_STARTED
    grant = committed_grant()
    assert grant.disclosure(date(2024, 6, 15), ended_on=None).status == UP_TO_DATE
    assert grant.disclosure(date(2024, 6, 16), ended_on=None).status == DUE
    assert grant.disclosure(date(2024, 9, 16), ended_on=None).status == OVERDUE
    # an end day given for a grant still running is not counted
    assert grant.disclosure(date(2024, 9, 16), ended_on=DAY).status == OVERDUE
    progress(grant, reported_on=date(2024, 9, 1))
    assert grant.disclosure(date(2024, 9, 16), ended_on=None).update_due_on == date(2024, 12, 1)
    end = date(2024, 10, 1)
    grant.close(reason="done", closed_on=end, actor="bob", committee=COMMITTEE)
    assert grant.disclosure(date(2025, 1, 2), ended_on=end).status == OVERDUE
    progress(grant, reported_on=date(2025, 1, 2), final=True)
    assert grant.disclosure(date(2025, 1, 2), ended_on=end).status == DONE


def test_a_version_2_snapshot_is_upcast(committed_grant: Any) -> None:
    grant = committed_grant()
    state: dict[str, Any] = {
        "status": "closed",
        "proposed_on": "2024-03-15",
        "approvals": [{"member": "bob", "approved_on": "2024-03-16", "note": ""},
                      {"member": "carol", "approved_on": "2024-03-20", "note": ""}],
        "tranches": grant.tranches,
    }  # fmt: skip
    Grant.upcast_v2_v3(state)
    assert state["progress"] == []
    assert state["committed_on"] == "2024-03-20"
    proposed = {"status": "proposed", "proposed_on": "2024-03-15", "approvals": [], "tranches": []}
    Grant.upcast_v2_v3(proposed)
    assert proposed["committed_on"] is None
