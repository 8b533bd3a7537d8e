"""The Grant aggregate: money committed to a grantee for a purpose, paid in tranches.

Lifecycle::

    proposed ──(approvals_required distinct members)──▶ committed ──▶ closed
        │                                                   │
        └──▶ rejected                                       └──▶ cancelled

Committing, closing and cancelling change the fund's money, so the application saves the
grant and its fund together. Disbursed never exceeds the committed amount.

Progress notes (``ProgressRecorded``: a dated text, evidence hashes, and whether it is the
final account) are what the grant publishes about its project while it runs and after it
ends; ``Grant.disclosure(on)`` says what is due by ``ledger.domain.disclosure``'s rule.

Longer than 500 lines because an aggregate, its events and its rules live together: nine
events, each a validating command beside the method that records it, and the snapshot
upcasters beside the records they produce.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.common import (
    NAME_LEN_MAX,
    SHA256_HEX_RE,
    TEXT_LEN_MAX,
    check_optional_text,
    check_text,
    identity_key,
    member_of,
)
from ledger.domain.disclosure import Disclosure, disclosure_due
from ledger.domain.errors import (
    AlreadyApproved,
    AlreadyReversed,
    GrantOverdrawn,
    InvalidDate,
    InvalidField,
    InvalidState,
    NotCommitteeMember,
    SelfApproval,
    TrancheNotFound,
)
from ledger.domain.money import check_amount, format_amount

PROPOSED = "proposed"
COMMITTED = "committed"
REJECTED = "rejected"
CANCELLED = "cancelled"
CLOSED = "closed"
STATUSES = (PROPOSED, COMMITTED, REJECTED, CANCELLED, CLOSED)
DISBURSEMENT_METHODS = ("bank", "cash", "wechat", "alipay", "other")
REFERENCE_LEN_MAX = 200
TRANCHES_MAX = 1000
PROGRESS_NOTES_MAX = 1000
EVIDENCE_PER_NOTE_MAX = 20
# A progress note may be recorded on a grant that was committed, and a final account on one
# that has ended.
PROGRESS_STATUSES = (COMMITTED, CLOSED, CANCELLED)
ENDED_STATUSES = (CLOSED, CANCELLED)


@dataclass(frozen=True, slots=True)
class Tranche:
    """One payment of a grant (tranche number: its place in ``Grant.tranches``, from 1)."""

    tranche_id: str
    amount_minor: int
    paid_on: str  # ISO date
    method: str
    reference: str
    evidence_sha256: str | None
    reversed: bool  # bounced and returned to the grant
    request_sha256: str


@dataclass(frozen=True, slots=True)
class ProgressNote:
    """One progress note of a grant (its number: its place in ``Grant.progress``, from 1)."""

    progress_id: str
    reported_on: str  # ISO date
    note: str
    evidence_sha256: list[str]
    final: bool  # the final account of an ended grant
    recorded_by: str
    request_sha256: str


class Grant(Aggregate):
    """A grant of one fund. Its id comes from the fund and the client's key.

    ``class_version`` 2: tranches are ``Tranche`` records (version 1 kept positional lists;
    ``upcast_v1_v2`` reads its snapshots). 3: progress notes and the day the grant was
    committed (``upcast_v2_v3``). The day it ended is not in its state: snapshots of
    version 2 do not have it (``LedgerApp.grant_ended_on`` reads it from its events).
    """

    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["tranches"] = [
            Tranche(
                tranche_id=t[0],
                amount_minor=int(t[1]),
                paid_on=t[2],
                method=t[3],
                reference=t[4],
                evidence_sha256=t[5],
                reversed=bool(t[6]),
                request_sha256=t[7],
            )
            for t in state["tranches"]
        ]

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """No progress notes yet; the day of commitment is the last approval's (the approval
        that commits a grant is recorded with it, and none can follow)."""
        state["progress"] = []
        approvals = [a["approved_on"] for a in state["approvals"]]
        committed = state["status"] in PROGRESS_STATUSES and approvals
        state["committed_on"] = max(approvals) if committed else None

    @classmethod
    def propose(
        cls,
        *,
        id: UUID,
        fund_id: str,
        fund_slug: str,
        currency: str,
        title: str,
        description: str,
        purpose: str,
        grantee_name: str,
        grantee_id: str | None,
        amount_minor: int,
        proposed_on: date,
        actor: str,
        request_sha256: str,
    ) -> Grant:
        check_amount(amount_minor)
        title = check_text("title", title, max_len=NAME_LEN_MAX)
        description = check_text(
            "description", description, max_len=TEXT_LEN_MAX, required=False, multiline=True
        )
        grantee_name = check_text("grantee name", grantee_name, max_len=NAME_LEN_MAX)
        grantee_id = check_optional_text("grantee id", grantee_id, max_len=NAME_LEN_MAX)
        return cls(
            id=id,
            fund_id=fund_id,
            fund_slug=fund_slug,
            currency=currency,
            title=title,
            description=description,
            purpose=purpose,
            grantee_name=grantee_name,
            grantee_id=grantee_id,
            amount_minor=amount_minor,
            occurred_on=proposed_on.isoformat(),
            actor=actor,
            request_sha256=request_sha256,
        )

    @event("Proposed")
    def __init__(
        self,
        *,
        id: UUID,
        fund_id: str,
        fund_slug: str,
        currency: str,
        title: str,
        description: str,
        purpose: str,
        grantee_name: str,
        grantee_id: str | None,
        amount_minor: int,
        occurred_on: str,
        actor: str,
        request_sha256: str,
    ) -> None:
        self.fund_id = fund_id
        self.fund_slug = fund_slug
        self.currency = currency
        self.title = title
        self.description = description
        self.purpose = purpose
        self.grantee_name = grantee_name
        self.grantee_id = grantee_id
        self.amount_minor = amount_minor
        self.proposed_on = occurred_on
        self.proposer = actor
        self.request_sha256 = request_sha256
        self.status = PROPOSED
        self.approvals: list[dict[str, str]] = []
        self.committed_minor = 0
        self.disbursed_minor = 0
        self.released_minor = 0
        self.tranches: list[Tranche] = []
        self.closing_reason: str | None = None
        self.committed_on: str | None = None  # ISO date
        self.progress: list[ProgressNote] = []

    @property
    def remaining_minor(self) -> int:
        """Committed and not yet paid out."""
        if self.status != COMMITTED:
            return 0
        return self.committed_minor - self.disbursed_minor

    def _need_status(self, *statuses: str, doing: str) -> None:
        if self.status not in statuses:
            raise InvalidState(
                f"cannot {doing} a grant that is {self.status}", status=self.status, id=str(self.id)
            )

    # -- decisions ---------------------------------------------------------------------------

    def need_member(self, committee: list[str], name: str) -> str:
        """The member of the grant's fund's ``committee`` that ``name`` is (as recorded there),
        or ``NotCommitteeMember``: every committee decision on a grant asks this first."""
        member = member_of(committee, name)
        if member is None:
            raise NotCommitteeMember(
                f"{name!r} is not on the committee of the fund {self.fund_slug}",
                member=name,
                fund=self.fund_slug,
            )
        return member

    def approve(
        self,
        *,
        member: str,
        committee: list[str],
        note: str,
        approved_on: date,
    ) -> None:
        self._need_status(PROPOSED, doing="approve")
        member = self.need_member(committee, member)
        key = identity_key(member)
        if key == identity_key(self.proposer):
            raise SelfApproval(
                "the proposer of a grant may not approve it", member=member, id=str(self.id)
            )
        if any(identity_key(a["member"]) == key for a in self.approvals):
            raise AlreadyApproved(f"{member!r} has already approved this grant", member=member)
        note = check_text("note", note, max_len=TEXT_LEN_MAX, required=False, multiline=True)
        self._approved(member=member, note=note, occurred_on=approved_on.isoformat(), actor=member)

    @event("Approved")
    def _approved(self, member: str, note: str, occurred_on: str, actor: str) -> None:
        self.approvals.append({"member": member, "note": note, "approved_on": occurred_on})

    def approvals_from(self, committee: list[str]) -> int:
        """Approvals that count: from members still on the committee."""
        members = {identity_key(m) for m in committee}
        return len({identity_key(a["member"]) for a in self.approvals} & members)

    def commit(self, *, committed_on: date, actor: str) -> None:
        self._need_status(PROPOSED, doing="commit")
        self._committed(
            amount_minor=self.amount_minor, occurred_on=committed_on.isoformat(), actor=actor
        )

    @event("Committed")
    def _committed(self, amount_minor: int, occurred_on: str, actor: str) -> None:
        self.status = COMMITTED
        self.committed_minor = amount_minor
        self.committed_on = occurred_on

    def reject(self, *, reason: str, rejected_on: date, actor: str, committee: list[str]) -> None:
        actor = self.need_member(committee, actor)
        self._need_status(PROPOSED, doing="reject")
        reason = check_text("reason", reason, max_len=TEXT_LEN_MAX, multiline=True)
        self._rejected(reason=reason, occurred_on=rejected_on.isoformat(), actor=actor)

    @event("Rejected")
    def _rejected(self, reason: str, occurred_on: str, actor: str) -> None:
        self.status = REJECTED
        self.closing_reason = reason

    def cancel(self, *, reason: str, cancelled_on: date, actor: str, committee: list[str]) -> int:
        """Cancel a committed grant (a committee decision); returns the amount released back
        to the fund."""
        actor = self.need_member(committee, actor)
        self._need_status(COMMITTED, doing="cancel")
        reason = check_text("reason", reason, max_len=TEXT_LEN_MAX, multiline=True)
        released = self.remaining_minor
        self._cancelled(
            reason=reason,
            released_minor=released,
            occurred_on=cancelled_on.isoformat(),
            actor=actor,
        )
        return released

    @event("Cancelled")
    def _cancelled(self, reason: str, released_minor: int, occurred_on: str, actor: str) -> None:
        self.status = CANCELLED
        self.closing_reason = reason
        self.released_minor += released_minor

    def close(
        self, *, reason: str, closed_on: date, actor: str, committee: list[str] | None
    ) -> int:
        """Close a committed grant; returns the unspent amount released back to the fund.
        ``committee``: the fund's, when a committee member closes it (checked); None when
        the fund's treasurer does (the edge binds treasurers to their funds)."""
        if committee is not None:
            actor = self.need_member(committee, actor)
        self._need_status(COMMITTED, doing="close")
        reason = check_text("reason", reason, max_len=TEXT_LEN_MAX, multiline=True)
        released = self.remaining_minor
        self._closed(
            reason=reason,
            released_minor=released,
            occurred_on=closed_on.isoformat(),
            actor=actor,
        )
        return released

    @event("Closed")
    def _closed(self, reason: str, released_minor: int, occurred_on: str, actor: str) -> None:
        self.status = CLOSED
        self.closing_reason = reason
        self.released_minor += released_minor

    # -- money out ---------------------------------------------------------------------------

    def tranche_no_of(self, tranche_id: str) -> int | None:
        for no, tranche in enumerate(self.tranches, start=1):
            if tranche.tranche_id == tranche_id:
                return no
        return None

    def tranche(self, tranche_no: int) -> Tranche:
        """The tranche numbered ``tranche_no`` (from 1)."""
        if not 1 <= tranche_no <= len(self.tranches):
            raise TrancheNotFound(f"grant has no tranche {tranche_no}", tranche_no=tranche_no)
        return self.tranches[tranche_no - 1]

    def disburse(
        self,
        *,
        tranche_id: str,
        amount_minor: int,
        paid_on: date,
        method: str,
        reference: str,
        evidence_sha256: str | None,
        actor: str,
        request_sha256: str,
    ) -> int:
        """Pay a tranche; returns its number (1, 2, ...)."""
        self._need_status(COMMITTED, doing="disburse")
        check_amount(amount_minor)
        if method not in DISBURSEMENT_METHODS:
            raise InvalidField(
                f"method must be one of {', '.join(DISBURSEMENT_METHODS)}", field="method"
            )
        reference = check_text("reference", reference, max_len=REFERENCE_LEN_MAX)
        if evidence_sha256 is not None and not (
            isinstance(evidence_sha256, str) and SHA256_HEX_RE.fullmatch(evidence_sha256)
        ):
            raise InvalidField("evidence_sha256 must be 64 lowercase hex digits", field="evidence")
        if len(self.tranches) >= TRANCHES_MAX:
            raise InvalidState(f"a grant has at most {TRANCHES_MAX} tranches", id=str(self.id))
        remaining = self.remaining_minor
        if amount_minor > remaining:
            raise GrantOverdrawn(
                f"tranche of {format_amount(amount_minor, currency=self.currency)} exceeds the "
                f"{format_amount(remaining, currency=self.currency)} committed and not yet paid",
                remaining_minor=remaining,
                amount_minor=amount_minor,
                currency=self.currency,
                id=str(self.id),
            )
        tranche_no = len(self.tranches) + 1
        self._disbursed(
            tranche_id=tranche_id,
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            occurred_on=paid_on.isoformat(),
            method=method,
            reference=reference,
            evidence_sha256=evidence_sha256,
            actor=actor,
            request_sha256=request_sha256,
        )
        return tranche_no

    @event("Disbursed")
    def _disbursed(
        self,
        tranche_id: str,
        tranche_no: int,
        amount_minor: int,
        occurred_on: str,
        method: str,
        reference: str,
        evidence_sha256: str | None,
        actor: str,
        request_sha256: str,
    ) -> None:
        self.tranches.append(
            Tranche(
                tranche_id=tranche_id,
                amount_minor=amount_minor,
                paid_on=occurred_on,
                method=method,
                reference=reference,
                evidence_sha256=evidence_sha256,
                reversed=False,
                request_sha256=request_sha256,
            )
        )
        self.disbursed_minor += amount_minor

    def reverse_disbursement(
        self, *, tranche_no: int, reason: str, reversed_on: date, actor: str
    ) -> tuple[int, int]:
        """A bounced payment: the tranche returns to the grant. On a grant that is already
        closed or cancelled the money goes straight back to the fund (released).
        Returns (amount_minor, released_minor)."""
        tranche = self.tranche(tranche_no)
        if tranche.reversed:
            raise AlreadyReversed(
                f"tranche {tranche_no} is already reversed", tranche_no=tranche_no
            )
        reason = check_text("reason", reason, max_len=TEXT_LEN_MAX, multiline=True)
        if reversed_on.isoformat() < tranche.paid_on:
            raise InvalidField(
                f"a tranche reversal cannot predate the tranche ({tranche.paid_on})",
                field="reversed_on",
                earliest=tranche.paid_on,
            )
        amount_minor = tranche.amount_minor
        released = 0 if self.status == COMMITTED else amount_minor
        self._disbursement_reversed(
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            released_minor=released,
            reason=reason,
            occurred_on=reversed_on.isoformat(),
            actor=actor,
        )
        return amount_minor, released

    @event("DisbursementReversed")
    def _disbursement_reversed(
        self,
        tranche_no: int,
        amount_minor: int,
        released_minor: int,
        reason: str,
        occurred_on: str,
        actor: str,
    ) -> None:
        self.tranches[tranche_no - 1] = replace(self.tranches[tranche_no - 1], reversed=True)
        self.disbursed_minor -= amount_minor
        self.released_minor += released_minor

    # -- progress and disclosure -------------------------------------------------------------

    def progress_no_of(self, progress_id: str) -> int | None:
        for no, note in enumerate(self.progress, start=1):
            if note.progress_id == progress_id:
                return no
        return None

    def progress_note(self, progress_no: int) -> ProgressNote:
        return self.progress[progress_no - 1]

    def record_progress(
        self,
        *,
        progress_id: str,
        reported_on: date,
        note: str,
        evidence_sha256: list[str],
        final: bool,
        actor: str,
        request_sha256: str,
    ) -> int:
        """Record a dated progress note (``final``: the final account of an ended grant);
        returns its number (1, 2, ...)."""
        self._need_status(*PROGRESS_STATUSES, doing="record progress on")
        if not isinstance(final, bool):
            raise InvalidField("final must be true or false", field="final")
        if final and self.status not in ENDED_STATUSES:
            raise InvalidState(
                "a final account is recorded once the grant is closed or cancelled",
                status=self.status,
                id=str(self.id),
            )
        note = check_text("note", note, max_len=TEXT_LEN_MAX, multiline=True)
        evidence = check_evidence(evidence_sha256)
        if reported_on.isoformat() < self.proposed_on:
            raise InvalidDate(
                f"progress on {reported_on} is dated before the grant was proposed "
                f"({self.proposed_on})",
                field="on",
            )
        if len(self.progress) >= PROGRESS_NOTES_MAX:
            raise InvalidState(
                f"a grant has at most {PROGRESS_NOTES_MAX} progress notes", id=str(self.id)
            )
        progress_no = len(self.progress) + 1
        self._progress_recorded(
            progress_id=progress_id,
            progress_no=progress_no,
            note=note,
            evidence_sha256=evidence,
            final=final,
            occurred_on=reported_on.isoformat(),
            actor=actor,
            request_sha256=request_sha256,
        )
        return progress_no

    @event("ProgressRecorded")
    def _progress_recorded(
        self,
        progress_id: str,
        progress_no: int,
        note: str,
        evidence_sha256: list[str],
        final: bool,
        occurred_on: str,
        actor: str,
        request_sha256: str,
    ) -> None:
        self.progress.append(
            ProgressNote(
                progress_id=progress_id,
                reported_on=occurred_on,
                note=note,
                evidence_sha256=list(evidence_sha256),
                final=final,
                recorded_by=actor,
                request_sha256=request_sha256,
            )
        )

    def disclosure(self, on: date, *, ended_on: date | None) -> Disclosure:
        """What this grant must publish ``on`` a day (``ledger.domain.disclosure``);
        ``ended_on``: the day it was closed or cancelled (None: it has not ended)."""
        return disclosure_due(
            started_on=_day(self.committed_on),
            ended_on=ended_on if self.status in ENDED_STATUSES else None,
            updates=[date.fromisoformat(p.reported_on) for p in self.progress],
            final_accounts=[date.fromisoformat(p.reported_on) for p in self.progress if p.final],
            on=on,
        )


def check_evidence(evidence_sha256: object) -> list[str]:
    """Evidence hashes: a list of at most ``EVIDENCE_PER_NOTE_MAX`` distinct SHA-256 hex
    digests (lowercase)."""
    if not isinstance(evidence_sha256, (list, tuple)):
        raise InvalidField("evidence must be a list of SHA-256 hashes", field="evidence")
    if len(evidence_sha256) > EVIDENCE_PER_NOTE_MAX:
        raise InvalidField(
            f"at most {EVIDENCE_PER_NOTE_MAX} evidence hashes per note", field="evidence"
        )
    for digest in evidence_sha256:
        if not (isinstance(digest, str) and SHA256_HEX_RE.fullmatch(digest)):
            raise InvalidField(
                "each evidence hash must be 64 lowercase hex digits", field="evidence"
            )
    if len(set(evidence_sha256)) != len(evidence_sha256):
        raise InvalidField("evidence hashes must be distinct", field="evidence")
    return list(evidence_sha256)


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)
