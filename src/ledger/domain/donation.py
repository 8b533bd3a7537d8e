"""The Donation aggregate: one gift, its refunds, its reversal and its donor's erasure.

A donation never holds a donor's name or contact in plain text: the application seals them
(AES-GCM, a data key of the donor's own) before the domain sees them, and the domain keeps
only the sealed text, the donor id and the public name decided at recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.common import NAME_LEN_MAX, TEXT_LEN_MAX, check_optional_text, check_text
from ledger.domain.errors import (
    AlreadyReversed,
    InvalidField,
    InvalidState,
    RefundTooLarge,
)
from ledger.domain.money import check_amount, format_amount

CHANNELS = ("cash", "bank", "wechat", "alipay", "in_kind", "other")
ANONYMOUS_LABEL = "爱心人士"  # "Anonymous donor" in the Chinese UI; pages translate it
EXTERNAL_REF_LEN_MAX = 100
# What becomes of a donation: received, then partially refunded, then refunded; or reversed
# (recorded in error, taken back whole).
RECEIVED = "received"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
REVERSED = "reversed"
STATUSES = (RECEIVED, PARTIALLY_REFUNDED, REFUNDED, REVERSED)


def mask_name(name: str) -> str:
    """The default public form of a donor's name: 张三 → 张*, 王小明 → 王*明,
    John Smith → J*** S****; a name of one character keeps it and gains a star (刘 → 刘*):
    the public sees at most the first character, as for every name, and a masked name
    always shows that it is masked."""
    name = " ".join(name.split())
    if " " in name:
        return " ".join(w[0] + "*" * (len(w) - 1) for w in name.split(" "))
    if not name:
        return "*"
    if len(name) == 1:
        return name + "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def public_name_for(*, name: str | None, anonymous: bool, public_name: str | None) -> str:
    """What the public will see, decided once, at recording."""
    if anonymous:
        return ANONYMOUS_LABEL
    if public_name:
        return check_text("donor public_name", public_name, max_len=NAME_LEN_MAX)
    if name:
        return mask_name(name)
    return ANONYMOUS_LABEL


def check_in_kind(channel: str, in_kind: dict[str, str] | None) -> dict[str, str] | None:
    if channel not in CHANNELS:
        raise InvalidField(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    if channel == "in_kind":
        if not in_kind:
            raise InvalidField(
                "an in-kind gift needs in_kind {description, valuation_basis}", field="in_kind"
            )
        return {
            "description": check_text(
                "in_kind description",
                in_kind.get("description"),
                max_len=TEXT_LEN_MAX,
                multiline=True,
            ),
            "valuation_basis": check_text(
                "in_kind valuation_basis",
                in_kind.get("valuation_basis"),
                max_len=TEXT_LEN_MAX,
                multiline=True,
            ),
        }
    if in_kind:
        raise InvalidField("in_kind is only for the in_kind channel", field="in_kind")
    return None


@dataclass(frozen=True, slots=True)
class Refund:
    """Part of a donation given back (its id is the key of ``Donation.refunds``)."""

    amount_minor: int
    refunded_on: str  # ISO date
    request_sha256: str


class Donation(Aggregate):
    """One gift to one fund. Its id comes from the fund and the client's key.

    ``class_version`` 2: refunds are ``Refund`` records (version 1 kept positional lists;
    ``upcast_v1_v2`` reads its snapshots).
    """

    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["refunds"] = {
            refund_id: Refund(amount_minor=int(r[0]), refunded_on=r[1], request_sha256=r[2])
            for refund_id, r in state["refunds"].items()
        }

    @classmethod
    def receive(
        cls,
        *,
        id: UUID,
        fund_id: str,
        fund_slug: str,
        currency: str,
        amount_minor: int,
        received_on: date,
        channel: str,
        purpose: str,
        donor_id: str,
        donor_public_name: str,
        donor_anonymous: bool,
        donor_sealed: str | None,
        external_ref: str | None,
        receipt_no: str,
        note: str,
        in_kind: dict[str, str] | None,
        actor: str,
        request_sha256: str,
    ) -> Donation:
        check_amount(amount_minor)
        in_kind = check_in_kind(channel, in_kind)
        external_ref = check_optional_text(
            "external_ref", external_ref, max_len=EXTERNAL_REF_LEN_MAX
        )
        note = check_text("note", note, max_len=TEXT_LEN_MAX, required=False, multiline=True)
        donor_public_name = check_text("donor public_name", donor_public_name, max_len=NAME_LEN_MAX)
        # The library's ``_create`` with the event class itself: calling ``cls(...)`` costs a
        # second round of argument checks in the library for the same event.
        return cls._create(
            cls.Received,  # type: ignore[attr-defined]  # (made by @event below)
            id=id,
            fund_id=fund_id,
            fund_slug=fund_slug,
            currency=currency,
            amount_minor=amount_minor,
            occurred_on=received_on.isoformat(),
            channel=channel,
            purpose=purpose,
            donor_id=donor_id,
            donor_public_name=donor_public_name,
            donor_anonymous=donor_anonymous,
            donor_sealed=donor_sealed,
            external_ref=external_ref,
            receipt_no=receipt_no,
            note=note,
            in_kind=in_kind,
            actor=actor,
            request_sha256=request_sha256,
        )

    @event("Received")
    def __init__(
        self,
        *,
        id: UUID,
        fund_id: str,
        fund_slug: str,
        currency: str,
        amount_minor: int,
        occurred_on: str,
        channel: str,
        purpose: str,
        donor_id: str,
        donor_public_name: str,
        donor_anonymous: bool,
        donor_sealed: str | None,
        external_ref: str | None,
        receipt_no: str,
        note: str,
        in_kind: dict[str, str] | None,
        actor: str,
        request_sha256: str,
    ) -> None:
        self.fund_id = fund_id
        self.fund_slug = fund_slug
        self.currency = currency
        self.amount_minor = amount_minor
        self.received_on = occurred_on
        self.channel = channel
        self.purpose = purpose
        self.donor_id = donor_id
        self.donor_public_name = donor_public_name
        self.donor_anonymous = donor_anonymous
        self.donor_sealed = donor_sealed
        self.external_ref = external_ref
        self.receipt_no = receipt_no
        self.note = note
        self.in_kind = in_kind
        self.recorded_by = actor
        self.request_sha256 = request_sha256
        self.refunds: dict[str, Refund] = {}
        self.refunded_minor = 0
        self.reversed = False
        self.reversal_reason: str | None = None
        self.donor_erased = False

    @property
    def remaining_minor(self) -> int:
        return self.amount_minor - self.refunded_minor

    def refund(
        self,
        *,
        refund_id: str,
        amount_minor: int,
        refunded_on: date,
        reason: str,
        actor: str,
        request_sha256: str,
    ) -> None:
        check_amount(amount_minor)
        reason = check_text("reason", reason, max_len=TEXT_LEN_MAX, multiline=True)
        if self.reversed:
            raise AlreadyReversed(f"donation {self.receipt_no} is reversed", id=str(self.id))
        if amount_minor > self.remaining_minor:
            raise RefundTooLarge(
                f"refund of {format_amount(amount_minor, currency=self.currency)} exceeds the "
                f"{format_amount(self.remaining_minor, currency=self.currency)} not yet refunded",
                remaining_minor=self.remaining_minor,
                amount_minor=amount_minor,
                currency=self.currency,
            )
        if refunded_on.isoformat() < self.received_on:
            raise InvalidField("a refund cannot predate its donation", field="refunded_on")
        self._refunded(
            refund_id=refund_id,
            amount_minor=amount_minor,
            occurred_on=refunded_on.isoformat(),
            reason=reason,
            actor=actor,
            request_sha256=request_sha256,
        )

    @event("Refunded")
    def _refunded(
        self,
        refund_id: str,
        amount_minor: int,
        occurred_on: str,
        reason: str,
        actor: str,
        request_sha256: str,
    ) -> None:
        self.refunds[refund_id] = Refund(
            amount_minor=amount_minor, refunded_on=occurred_on, request_sha256=request_sha256
        )
        self.refunded_minor += amount_minor

    def reverse(self, *, reason: str, reversed_on: date, actor: str) -> int:
        """Reverse the donation whole; returns the amount taken back (what was not refunded)."""
        reason = check_text("reason", reason, max_len=TEXT_LEN_MAX, multiline=True)
        if self.reversed:
            raise AlreadyReversed(
                f"donation {self.receipt_no} is already reversed", id=str(self.id)
            )
        if reversed_on.isoformat() < self.received_on:
            raise InvalidField("a reversal cannot predate its donation", field="reversed_on")
        amount_minor = self.remaining_minor
        self._reversed(
            reason=reason,
            amount_minor=amount_minor,
            occurred_on=reversed_on.isoformat(),
            actor=actor,
        )
        return amount_minor

    @event("Reversed")
    def _reversed(self, reason: str, amount_minor: int, occurred_on: str, actor: str) -> None:
        self.reversed = True
        self.reversal_reason = reason
        self.refunded_minor += amount_minor

    def erase_donor(self, *, actor: str) -> None:
        if self.donor_erased:
            raise InvalidState("the donor of this donation is already erased", id=str(self.id))
        self._donor_erased(donor_id=self.donor_id, actor=actor)

    @event("DonorErased")
    def _donor_erased(self, donor_id: str, actor: str) -> None:
        self.donor_erased = True
        self.donor_sealed = None
