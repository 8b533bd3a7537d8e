"""Progress notes through the use case: idempotency, the date window, who may record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.domain.errors import (
    DateInFuture,
    IdempotencyKeyReused,
    InvalidDate,
    InvalidState,
    NotCommitteeMember,
)
from ledger.settings import Settings

COMMITTEE = ["李主任", "王会计", "张村长"]


@pytest.fixture
def app(tmp_path: Any, clock: Any) -> Iterator[LedgerApp]:
    settings = Settings(database_url="memory://", key_dir=tmp_path / "keys")
    ledger = LedgerApp(settings, clock=clock.now)
    ledger.open_fund(
        slug="tea", name="茶乡振兴基金", currency="CNY", host="示例公益基金会",
        committee=list(COMMITTEE), actor="admin",
    )  # fmt: skip
    yield ledger
    ledger.close()


def committed(app: LedgerApp) -> str:
    app.record_donation(
        slug="tea", key="d", amount_minor=100_000, received_on="2026-11-01", channel="cash",
        actor="treasurer",
    )  # fmt: skip
    grant = app.propose_grant(
        slug="tea", key="g", title="灶具", grantee_name="老年协会", amount_minor=50_000,
        actor=COMMITTEE[0],
    ).value  # fmt: skip
    for member in COMMITTEE[1:]:
        app.approve_grant(grant_id=grant.id, actor=member)
    return str(grant.id)


def note(app: LedgerApp, grant_id: str, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "grant_id": grant_id,
        "key": "p1",
        "reported_on": "2026-11-27",
        "note": "灶具已安装",
        "evidence_sha256": ["c" * 64],
        "actor": "刘晓梅",
    }
    fields.update(overrides)
    return app.record_progress(**fields)


def test_a_progress_note_is_recorded_once_per_key(app: LedgerApp) -> None:
    grant_id = committed(app)
    first = note(app, grant_id)
    assert first.created
    assert first.value.progress_no == 1
    assert first.value.note.reported_on == "2026-11-27"
    again = note(app, grant_id)
    assert not again.created
    assert again.value.progress_no == 1
    assert len(app.get_grant(grant_id).progress) == 1
    with pytest.raises(IdempotencyKeyReused):
        note(app, grant_id, note="别的内容")
    assert note(app, grant_id, key="p2").value.progress_no == 2


def test_a_progress_note_is_not_dated_in_the_future(app: LedgerApp, clock: Any) -> None:
    grant_id = committed(app)
    with pytest.raises(DateInFuture):
        note(app, grant_id, reported_on="2026-11-28")
    assert note(app, grant_id, reported_on=clock.today().isoformat()).created


def test_a_progress_note_is_not_dated_before_the_proposal(app: LedgerApp) -> None:
    grant_id = committed(app)  # proposed today, 2026-11-27
    with pytest.raises(InvalidDate):
        note(app, grant_id, reported_on="2026-11-26")


def test_a_committee_member_must_be_on_the_funds_committee(app: LedgerApp) -> None:
    grant_id = committed(app)
    with pytest.raises(NotCommitteeMember):
        note(app, grant_id, actor="外人", as_committee_member=True)
    assert note(app, grant_id, actor=COMMITTEE[2], as_committee_member=True).created


def test_a_final_account_after_the_grant_is_closed(app: LedgerApp, clock: Any) -> None:
    grant_id = committed(app)
    with pytest.raises(InvalidState):
        note(app, grant_id, final=True)
    app.close_grant(grant_id=grant_id, reason="完成", actor=COMMITTEE[0])
    assert note(app, grant_id, final=True).created
    grant = app.get_grant(grant_id)
    assert app.grant_ended_on(grant) == clock.today()
    assert grant.disclosure(date(2027, 6, 1), ended_on=clock.today()).status == "done"


def test_a_running_grant_has_no_end_day(app: LedgerApp) -> None:
    assert app.grant_ended_on(app.get_grant(committed(app))) is None
