"""Grant: approval by the committee, the lifecycle, tranches and their reversal.

``propose_grant`` (conftest.py) proposes 100.00 CNY (10_000 fen) by alice; ``committed_grant``
has it approved by bob and carol of the committee alice, bob, carol and committed, with its
setup events collected; ``disburse(grant, amount_minor, **overrides)`` pays a tranche.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest

from ledger.domain.errors import (
    AlreadyApproved,
    AlreadyReversed,
    AmountNotPositive,
    GrantOverdrawn,
    InvalidField,
    InvalidState,
    NotCommitteeMember,
    SelfApproval,
    TrancheNotFound,
)
from ledger.domain.grant import (
    CANCELLED,
    CLOSED,
    COMMITTED,
    PROPOSED,
    REFERENCE_LEN_MAX,
    REJECTED,
    TRANCHES_MAX,
    Grant,
)

COMMITTEE = ["alice", "bob", "carol"]
DAY = date(2024, 3, 15)
EVIDENCE = "ab" * 32

Propose = Callable[..., Grant]
Disburse = Callable[..., int]


def approve(grant: Grant, member: str, committee: list[str] = COMMITTEE) -> None:
    grant.approve(member=member, committee=committee, note="", approved_on=DAY)


def reverse(grant: Grant, tranche_no: int, reason: str = "payment bounced") -> tuple[int, int]:
    return grant.reverse_disbursement(
        tranche_no=tranche_no, reason=reason, reversed_on=DAY, actor="treasurer"
    )


def end(grant: Grant, how: str) -> int:
    if how == "close":
        return grant.close(reason="project done", closed_on=DAY, actor="treasurer", committee=None)
    return grant.cancel(
        reason="grantee withdrew", cancelled_on=DAY, actor="carol", committee=COMMITTEE
    )


def in_state(status: str, propose_grant: Propose, committed_grant: Propose) -> Grant:
    """A grant brought to ``status`` by the commands that lead there."""
    if status == PROPOSED:
        return propose_grant()
    if status == REJECTED:
        grant = propose_grant()
        grant.reject(reason="out of scope", rejected_on=DAY, actor="bob", committee=COMMITTEE)
        return grant
    grant = committed_grant()
    if status == CLOSED:
        end(grant, "close")
    elif status == CANCELLED:
        end(grant, "cancel")
    return grant


# -- proposal --------------------------------------------------------------------------------


def test_proposing_a_grant_records_proposed_by_its_proposer(propose_grant: Propose) -> None:
    grant = propose_grant(amount_minor=10_000, actor="alice", proposed_on=date(2024, 3, 1))

    assert grant.status == PROPOSED
    assert grant.proposer == "alice"
    assert grant.committed_minor == 0
    assert grant.remaining_minor == 0
    (proposed,) = grant.collect_events()
    assert type(proposed).__qualname__ == "Grant.Proposed"
    assert proposed.amount_minor == 10_000  # type: ignore[attr-defined]
    assert proposed.occurred_on == "2024-03-01"  # type: ignore[attr-defined]
    assert proposed.actor == "alice"  # type: ignore[attr-defined]


@pytest.mark.parametrize("amount_minor", [0, -1])
def test_a_grant_of_no_money_is_refused(propose_grant: Propose, amount_minor: int) -> None:
    with pytest.raises(AmountNotPositive):
        propose_grant(amount_minor=amount_minor)


@pytest.mark.parametrize("field", ["title", "grantee_name"])
def test_a_grant_without_title_or_grantee_is_refused(propose_grant: Propose, field: str) -> None:
    with pytest.raises(InvalidField):
        propose_grant(**{field: ""})


# -- approval --------------------------------------------------------------------------------


def test_a_committee_member_other_than_the_proposer_may_approve(
    propose_grant: Propose,
) -> None:
    grant = propose_grant(actor="alice")
    grant.collect_events()

    grant.approve(member="bob", committee=COMMITTEE, note="fine", approved_on=date(2024, 3, 2))

    assert grant.approvals == [{"member": "bob", "note": "fine", "approved_on": "2024-03-02"}]
    assert grant.status == PROPOSED
    (approved,) = grant.collect_events()
    assert type(approved).__qualname__ == "Grant.Approved"
    assert approved.member == "bob"  # type: ignore[attr-defined]
    assert approved.actor == "bob"  # type: ignore[attr-defined]
    assert approved.occurred_on == "2024-03-02"  # type: ignore[attr-defined]


def test_each_approver_records_an_approval_of_their_own(
    propose_grant: Propose, event_names: Callable[..., list[str]]
) -> None:
    grant = propose_grant(actor="alice")
    grant.collect_events()
    approve(grant, "bob")
    approve(grant, "carol")
    assert event_names(grant) == ["Grant.Approved", "Grant.Approved"]
    assert [a["member"] for a in grant.approvals] == ["bob", "carol"]


@pytest.mark.parametrize("member", ["mallory", "Bob", "bob "], ids=repr)
def test_an_approval_by_someone_off_the_committee_is_refused(
    propose_grant: Propose, event_names: Callable[..., list[str]], member: str
) -> None:
    grant = propose_grant(actor="alice")
    grant.collect_events()
    with pytest.raises(NotCommitteeMember) as excinfo:
        approve(grant, member)
    assert excinfo.value.facts["member"] == member
    assert grant.approvals == []
    assert event_names(grant) == []


def test_the_proposer_may_not_approve_their_own_grant(
    propose_grant: Propose, event_names: Callable[..., list[str]]
) -> None:
    grant = propose_grant(actor="alice")
    grant.collect_events()
    with pytest.raises(SelfApproval):
        approve(grant, "alice")
    assert grant.approvals == []
    assert event_names(grant) == []


def test_a_proposer_off_the_committee_is_refused_as_a_non_member(
    propose_grant: Propose,
) -> None:
    grant = propose_grant(actor="treasurer")
    with pytest.raises(NotCommitteeMember):
        approve(grant, "treasurer")


def test_the_same_member_approving_twice_is_refused(
    propose_grant: Propose, event_names: Callable[..., list[str]]
) -> None:
    grant = propose_grant(actor="alice")
    approve(grant, "bob")
    grant.collect_events()
    with pytest.raises(AlreadyApproved):
        approve(grant, "bob")
    assert len(grant.approvals) == 1
    assert event_names(grant) == []


@pytest.mark.parametrize("status", [COMMITTED, REJECTED, CLOSED, CANCELLED])
def test_approving_a_grant_that_is_no_longer_proposed_is_refused(
    propose_grant: Propose, committed_grant: Propose, status: str
) -> None:
    grant = in_state(status, propose_grant, committed_grant)
    with pytest.raises(InvalidState) as excinfo:
        approve(grant, "carol", committee=[*COMMITTEE, "dave"])
    assert excinfo.value.facts["status"] == status


def test_approvals_count_only_from_members_still_on_the_committee(
    propose_grant: Propose,
) -> None:
    grant = propose_grant(actor="alice")
    approve(grant, "bob")
    approve(grant, "carol")

    assert grant.approvals_from(COMMITTEE) == 2
    assert grant.approvals_from(["alice", "carol", "dave"]) == 1
    assert grant.approvals_from(["alice", "dave"]) == 0


def test_an_approval_from_a_member_who_joined_later_counts(propose_grant: Propose) -> None:
    grant = propose_grant(actor="alice")
    approve(grant, "bob")
    new_committee = ["alice", "carol", "dave"]
    approve(grant, "dave", committee=new_committee)
    assert grant.approvals_from(new_committee) == 1
    assert grant.approvals_from([*new_committee, "bob"]) == 2


# -- commit, reject, cancel, close -----------------------------------------------------------


def test_committing_a_proposed_grant_commits_its_whole_amount(propose_grant: Propose) -> None:
    grant = propose_grant(amount_minor=10_000)
    approve(grant, "bob")
    approve(grant, "carol")
    grant.collect_events()

    grant.commit(committed_on=date(2024, 3, 3), actor="carol")

    assert grant.status == COMMITTED
    assert grant.committed_minor == 10_000
    assert grant.remaining_minor == 10_000
    (committed,) = grant.collect_events()
    assert type(committed).__qualname__ == "Grant.Committed"
    assert committed.amount_minor == 10_000  # type: ignore[attr-defined]
    assert committed.occurred_on == "2024-03-03"  # type: ignore[attr-defined]
    assert committed.actor == "carol"  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [COMMITTED, REJECTED, CLOSED, CANCELLED])
def test_committing_a_grant_that_is_not_proposed_is_refused(
    propose_grant: Propose,
    committed_grant: Propose,
    event_names: Callable[..., list[str]],
    status: str,
) -> None:
    grant = in_state(status, propose_grant, committed_grant)
    grant.collect_events()
    with pytest.raises(InvalidState):
        grant.commit(committed_on=DAY, actor="carol")
    assert grant.status == status
    assert event_names(grant) == []


def test_rejecting_a_proposed_grant_records_the_reason(propose_grant: Propose) -> None:
    grant = propose_grant()
    grant.collect_events()

    grant.reject(reason="out of scope", rejected_on=DAY, actor="bob", committee=COMMITTEE)

    assert grant.status == REJECTED
    assert grant.closing_reason == "out of scope"
    assert grant.remaining_minor == 0
    (rejected,) = grant.collect_events()
    assert type(rejected).__qualname__ == "Grant.Rejected"
    assert rejected.reason == "out of scope"  # type: ignore[attr-defined]
    assert rejected.actor == "bob"  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [COMMITTED, REJECTED, CLOSED, CANCELLED])
def test_rejecting_a_grant_that_is_not_proposed_is_refused(
    propose_grant: Propose, committed_grant: Propose, status: str
) -> None:
    grant = in_state(status, propose_grant, committed_grant)
    with pytest.raises(InvalidState):
        grant.reject(reason="too late", rejected_on=DAY, actor="bob", committee=COMMITTEE)
    assert grant.status == status


def test_rejecting_needs_a_reason(propose_grant: Propose) -> None:
    grant = propose_grant()
    with pytest.raises(InvalidField):
        grant.reject(reason="", rejected_on=DAY, actor="bob", committee=COMMITTEE)
    assert grant.status == PROPOSED


@pytest.mark.parametrize(
    ("how", "status", "name"),
    [
        ("close", CLOSED, "Grant.Closed"),
        ("cancel", CANCELLED, "Grant.Cancelled"),
    ],
)
def test_ending_a_committed_grant_releases_what_was_not_paid(
    committed_grant: Propose, disburse: Disburse, how: str, status: str, name: str
) -> None:
    grant = committed_grant(amount_minor=10_000)
    disburse(grant, 3_000)
    grant.collect_events()

    released = end(grant, how)

    assert released == 7_000
    assert grant.status == status
    assert grant.released_minor == 7_000
    assert grant.remaining_minor == 0
    (ended,) = grant.collect_events()
    assert type(ended).__qualname__ == name
    assert ended.released_minor == 7_000  # type: ignore[attr-defined]
    # A cancellation is a committee decision (a member cancels); a treasurer may close.
    assert ended.actor == ("treasurer" if how == "close" else "carol")  # type: ignore[attr-defined]
    assert ended.occurred_on == "2024-03-15"  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["close", "cancel"])
def test_ending_a_fully_paid_grant_releases_nothing(
    committed_grant: Propose, disburse: Disburse, how: str
) -> None:
    grant = committed_grant(amount_minor=10_000)
    disburse(grant, 10_000)
    assert end(grant, how) == 0
    assert grant.released_minor == 0


@pytest.mark.parametrize("how", ["close", "cancel"])
def test_ending_an_untouched_grant_releases_all_of_it(committed_grant: Propose, how: str) -> None:
    assert end(committed_grant(amount_minor=10_000), how) == 10_000


@pytest.mark.parametrize("how", ["close", "cancel"])
@pytest.mark.parametrize("status", [PROPOSED, REJECTED, CLOSED, CANCELLED])
def test_ending_a_grant_that_is_not_committed_is_refused(
    propose_grant: Propose, committed_grant: Propose, how: str, status: str
) -> None:
    grant = in_state(status, propose_grant, committed_grant)
    released_before = grant.released_minor
    with pytest.raises(InvalidState):
        end(grant, how)
    assert grant.status == status
    assert grant.released_minor == released_before


# -- disbursements ---------------------------------------------------------------------------


def test_disbursing_records_a_tranche_with_its_details(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant(amount_minor=10_000)

    tranche_no = disburse(
        grant,
        4_000,
        paid_on=date(2024, 4, 1),
        method="wechat",
        reference="WX-9",
        evidence_sha256=EVIDENCE,
        actor="ann",
    )

    assert tranche_no == 1
    assert grant.disbursed_minor == 4_000
    assert grant.remaining_minor == 6_000
    (disbursed,) = grant.collect_events()
    assert type(disbursed).__qualname__ == "Grant.Disbursed"
    assert disbursed.tranche_no == 1  # type: ignore[attr-defined]
    assert disbursed.amount_minor == 4_000  # type: ignore[attr-defined]
    assert disbursed.occurred_on == "2024-04-01"  # type: ignore[attr-defined]
    assert disbursed.method == "wechat"  # type: ignore[attr-defined]
    assert disbursed.evidence_sha256 == EVIDENCE  # type: ignore[attr-defined]
    assert disbursed.actor == "ann"  # type: ignore[attr-defined]


def test_tranches_are_numbered_one_two_three(committed_grant: Propose, disburse: Disburse) -> None:
    grant = committed_grant(amount_minor=10_000)
    numbers = [disburse(grant, 1_000, tranche_id=f"t-{i}") for i in range(3)]
    assert numbers == [1, 2, 3]
    assert [grant.tranche_no_of(f"t-{i}") for i in range(3)] == [1, 2, 3]
    assert grant.tranche_no_of("unknown") is None


def test_disbursing_exactly_the_committed_amount_is_accepted(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant(amount_minor=10_000)
    disburse(grant, 10_000)
    assert grant.disbursed_minor == 10_000
    assert grant.remaining_minor == 0


def test_disbursing_one_fen_more_than_committed_is_refused(
    committed_grant: Propose, disburse: Disburse, event_names: Callable[..., list[str]]
) -> None:
    grant = committed_grant(amount_minor=10_000)
    with pytest.raises(GrantOverdrawn) as excinfo:
        disburse(grant, 10_001)
    assert excinfo.value.facts["remaining_minor"] == 10_000
    assert excinfo.value.facts["amount_minor"] == 10_001
    assert grant.disbursed_minor == 0
    assert event_names(grant) == []


def test_a_last_tranche_of_exactly_the_rest_is_accepted_and_one_fen_more_refused(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant(amount_minor=10_000)
    disburse(grant, 2_500)
    disburse(grant, 2_500)
    with pytest.raises(GrantOverdrawn) as excinfo:
        disburse(grant, 5_001)
    assert excinfo.value.facts["remaining_minor"] == 5_000
    disburse(grant, 5_000)
    with pytest.raises(GrantOverdrawn):
        disburse(grant, 1)
    assert grant.disbursed_minor == 10_000


@pytest.mark.parametrize("amount_minor", [0, -1])
def test_a_tranche_of_no_money_is_refused(
    committed_grant: Propose, disburse: Disburse, amount_minor: int
) -> None:
    with pytest.raises(AmountNotPositive):
        disburse(committed_grant(), amount_minor)


@pytest.mark.parametrize("status", [PROPOSED, REJECTED, CLOSED, CANCELLED])
def test_disbursing_from_a_grant_that_is_not_committed_is_refused(
    propose_grant: Propose, committed_grant: Propose, disburse: Disburse, status: str
) -> None:
    grant = in_state(status, propose_grant, committed_grant)
    with pytest.raises(InvalidState):
        disburse(grant, 1)
    assert grant.tranches == []


@pytest.mark.parametrize("method", ["bank", "cash", "wechat", "alipay", "other"])
def test_a_tranche_paid_by_a_known_method_is_accepted(
    committed_grant: Propose, disburse: Disburse, method: str
) -> None:
    grant = committed_grant()
    disburse(grant, 100, method=method)
    assert grant.tranches[0].method == method


@pytest.mark.parametrize("method", ["paypal", "Bank", "in_kind", ""])
def test_a_tranche_paid_by_an_unknown_method_is_refused(
    committed_grant: Propose, disburse: Disburse, method: str
) -> None:
    with pytest.raises(InvalidField) as excinfo:
        disburse(committed_grant(), 100, method=method)
    assert excinfo.value.facts["field"] == "method"


@pytest.mark.parametrize("evidence", [None, "0" * 64, "0123456789abcdef" * 4], ids=repr)
def test_a_tranche_without_evidence_or_with_a_sha256_is_accepted(
    committed_grant: Propose, disburse: Disburse, evidence: str | None
) -> None:
    grant = committed_grant()
    disburse(grant, 100, evidence_sha256=evidence)
    assert grant.tranches[0].evidence_sha256 == evidence


@pytest.mark.parametrize(
    "evidence",
    ["", "a" * 63, "a" * 65, "A" * 64, "g" * 64, "ab" * 31 + "a ", "0x" + "a" * 62],
    ids=repr,
)
def test_evidence_that_is_not_64_lowercase_hex_digits_is_refused(
    committed_grant: Propose, disburse: Disburse, evidence: str
) -> None:
    with pytest.raises(InvalidField) as excinfo:
        disburse(committed_grant(), 100, evidence_sha256=evidence)
    assert excinfo.value.facts["field"] == "evidence"


def test_a_reference_of_the_longest_length_is_accepted_and_one_more_refused(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant()
    disburse(grant, 100, reference="R" * REFERENCE_LEN_MAX)
    with pytest.raises(InvalidField):
        disburse(grant, 100, reference="R" * (REFERENCE_LEN_MAX + 1))
    with pytest.raises(InvalidField):
        disburse(grant, 100, reference="")


def test_a_grant_takes_the_most_tranches_allowed_and_not_one_more(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant(amount_minor=TRANCHES_MAX + 1)
    for _ in range(TRANCHES_MAX):
        disburse(grant, 1)
    with pytest.raises(InvalidState):
        disburse(grant, 1)
    assert len(grant.tranches) == TRANCHES_MAX
    assert grant.remaining_minor == 1


# -- disbursement reversal -------------------------------------------------------------------


def test_reversing_a_tranche_returns_its_amount_to_the_grant(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant(amount_minor=10_000)
    disburse(grant, 3_000)
    disburse(grant, 4_000)
    grant.collect_events()

    assert reverse(grant, 2) == (4_000, 0)

    assert grant.disbursed_minor == 3_000
    assert grant.remaining_minor == 7_000
    assert grant.released_minor == 0
    (reversed_,) = grant.collect_events()
    assert type(reversed_).__qualname__ == "Grant.DisbursementReversed"
    assert reversed_.tranche_no == 2  # type: ignore[attr-defined]
    assert reversed_.amount_minor == 4_000  # type: ignore[attr-defined]
    assert reversed_.released_minor == 0  # type: ignore[attr-defined]
    assert reversed_.reason == "payment bounced"  # type: ignore[attr-defined]
    assert reversed_.actor == "treasurer"  # type: ignore[attr-defined]


def test_a_reversed_tranche_may_be_paid_again_as_a_new_tranche(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant(amount_minor=10_000)
    disburse(grant, 10_000)
    reverse(grant, 1)
    assert disburse(grant, 10_000) == 2
    with pytest.raises(GrantOverdrawn):
        disburse(grant, 1)


def test_reversing_a_tranche_twice_is_refused(
    committed_grant: Propose, disburse: Disburse, event_names: Callable[..., list[str]]
) -> None:
    grant = committed_grant(amount_minor=10_000)
    disburse(grant, 3_000)
    reverse(grant, 1)
    grant.collect_events()
    with pytest.raises(AlreadyReversed):
        reverse(grant, 1)
    assert grant.remaining_minor == 10_000
    assert event_names(grant) == []


@pytest.mark.parametrize("tranche_no", [0, -1, 3])
def test_reversing_a_tranche_that_does_not_exist_is_refused(
    committed_grant: Propose, disburse: Disburse, tranche_no: int
) -> None:
    grant = committed_grant(amount_minor=10_000)
    disburse(grant, 1_000)
    disburse(grant, 1_000)
    with pytest.raises(TrancheNotFound):
        reverse(grant, tranche_no)


def test_reversing_a_tranche_needs_a_reason(committed_grant: Propose, disburse: Disburse) -> None:
    grant = committed_grant()
    disburse(grant, 1_000)
    with pytest.raises(InvalidField):
        reverse(grant, 1, reason="")
    assert grant.disbursed_minor == 1_000


@pytest.mark.parametrize("how", ["close", "cancel"])
def test_a_tranche_reversed_after_the_grant_ended_is_released_to_the_fund(
    committed_grant: Propose, disburse: Disburse, how: str
) -> None:
    grant = committed_grant(amount_minor=10_000)
    disburse(grant, 3_000)
    assert end(grant, how) == 7_000
    grant.collect_events()

    assert reverse(grant, 1) == (3_000, 3_000)

    assert grant.disbursed_minor == 0
    assert grant.released_minor == 10_000
    assert grant.remaining_minor == 0
    (reversed_,) = grant.collect_events()
    assert reversed_.released_minor == 3_000  # type: ignore[attr-defined]
    with pytest.raises(InvalidState):
        disburse(grant, 1)


def test_committed_always_equals_disbursed_plus_released_plus_remaining(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant(amount_minor=10_000)

    def balanced() -> bool:
        return grant.committed_minor == (
            grant.disbursed_minor + grant.released_minor + grant.remaining_minor
        )

    disburse(grant, 2_000)
    disburse(grant, 3_000)
    assert balanced()
    reverse(grant, 1)
    assert balanced()
    end(grant, "close")
    assert balanced()
    reverse(grant, 2)
    assert balanced()


# -- replay ----------------------------------------------------------------------------------


def test_a_grant_rebuilt_from_its_events_equals_the_live_grant(
    propose_grant: Propose, disburse: Disburse, replayed: Callable[..., Any]
) -> None:
    grant = propose_grant(amount_minor=10_000)
    approve(grant, "bob")
    approve(grant, "carol")
    grant.commit(committed_on=DAY, actor="carol")
    disburse(grant, 2_000, evidence_sha256=EVIDENCE)
    disburse(grant, 3_000, method="cash")
    reverse(grant, 1)
    grant.close(reason="project done", closed_on=DAY, actor="treasurer", committee=None)
    reverse(grant, 2)
    events = grant.collect_events()

    rebuilt = replayed(events)

    assert [type(e).__qualname__ for e in events] == [
        "Grant.Proposed",
        "Grant.Approved",
        "Grant.Approved",
        "Grant.Committed",
        "Grant.Disbursed",
        "Grant.Disbursed",
        "Grant.DisbursementReversed",
        "Grant.Closed",
        "Grant.DisbursementReversed",
    ]
    assert isinstance(rebuilt, Grant)
    assert rebuilt.__dict__ == grant.__dict__
    assert rebuilt.released_minor == 10_000


def test_a_rejected_grant_rebuilt_from_its_events_equals_the_live_grant(
    propose_grant: Propose, replayed: Callable[..., Any]
) -> None:
    grant = propose_grant()
    approve(grant, "bob")
    grant.reject(reason="out of scope", rejected_on=DAY, actor="carol", committee=COMMITTEE)
    rebuilt = replayed(grant.collect_events())
    assert rebuilt.__dict__ == grant.__dict__


@pytest.mark.parametrize("how", ["reject", "cancel", "close"])
def test_a_committee_decision_by_someone_off_the_fund_committee_is_refused(
    propose_grant: Propose, committed_grant: Propose, how: str
) -> None:
    grant = propose_grant() if how == "reject" else committed_grant()
    grant.collect_events()
    decide = {
        "reject": lambda: grant.reject(
            reason="x", rejected_on=DAY, actor="mallory", committee=COMMITTEE
        ),
        "cancel": lambda: grant.cancel(
            reason="x", cancelled_on=DAY, actor="mallory", committee=COMMITTEE
        ),
        "close": lambda: grant.close(
            reason="x", closed_on=DAY, actor="mallory", committee=COMMITTEE
        ),
    }[how]
    with pytest.raises(NotCommitteeMember):
        decide()
    assert grant.collect_events() == []


def test_a_member_is_known_by_the_nfc_form_of_the_name(propose_grant: Propose) -> None:
    grant = propose_grant(actor="alice")
    approve(grant, "Zoe\u0308", committee=[*COMMITTEE, "Zo\u00eb"])  # decomposed, composed
    assert [a["member"] for a in grant.approvals] == ["Zo\u00eb"]


def test_a_tranche_dated_before_the_commitment_is_refused_and_the_same_day_accepted(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant()  # committed on DAY
    with pytest.raises(InvalidField):
        disburse(grant, 100, paid_on=DAY - timedelta(days=1))
    assert disburse(grant, 100, paid_on=DAY) == 1


def test_a_tranche_reversal_dated_before_the_tranche_is_refused(
    committed_grant: Propose, disburse: Disburse
) -> None:
    grant = committed_grant()
    disburse(grant, 100, paid_on=DAY + timedelta(days=2))
    with pytest.raises(InvalidField):
        grant.reverse_disbursement(
            tranche_no=1, reason="x", reversed_on=DAY + timedelta(days=1), actor="treasurer"
        )
    grant.reverse_disbursement(
        tranche_no=1, reason="x", reversed_on=DAY + timedelta(days=2), actor="treasurer"
    )
