"""The ledger's use cases, on the eventsourcing library's Application.

Each use case is a command (``@command``): it loads what it needs, lets the aggregates
validate and record, and saves every aggregate it touched in one transaction
(``save(fund, donation)``): a fund's figures never disagree with its donations and grants.
A concurrent writer makes the save fail with the library's ``IntegrityError``; the command
then runs again on fresh state, a bounded number of times, before it reports ``Conflict``.
How commands run (the command lock, batched writes, snapshots, the retry loop, the cache)
is ``ledger.engine.commands``, which this class extends; nothing here is about speed.

Creating commands take the client's idempotency key; the new aggregate's id is derived from
it, so a retry finds the original (same content: the original result, ``created=False``;
other content: ``IdempotencyKeyReused``) and a concurrent duplicate is refused by the store.

Longer than 500 lines because it is one class, the unit of work, holding nineteen use
cases whose keyword-only signatures take a line per argument and whose request fingerprints
(kept to answer retries) name every field; split by aggregate, one command that saves a
fund and a donation together would live in neither half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import JSONTranscoder

from ledger.domain.common import (
    NAME_LEN_MAX,
    check_date,
    check_optional_text,
    check_slug,
    donor_id_for,
    entity_id,
    fingerprint,
    fund_id,
    member_of,
)
from ledger.domain.donation import Donation, Refund, check_in_kind, public_name_for
from ledger.domain.errors import (
    Conflict,
    DonationNotFound,
    DuplicateCode,
    FundNotFound,
    GrantNotFound,
    IdempotencyKeyReused,
    InvalidInput,
    LedgerError,
    NotCommitteeMember,
)
from ledger.domain.fund import Expense, Fund
from ledger.domain.grant import ENDED_STATUSES, Grant, ProgressNote, Tranche
from ledger.domain.opening import FundOpening, opening_id
from ledger.engine.commands import CommandRuntime, command, replay
from ledger.engine.transcoder import RecordAsDict
from ledger.privacy import DonorVault, PersonalData, ensure_kek
from ledger.settings import Settings
from ledger.store import DonorKey, DonorKeyRecorder, eventsourcing_env

SNAPSHOT_INTERVAL_FUND = 500
SNAPSHOT_INTERVAL_OTHER = 100
# The records aggregate state holds, by the name their snapshots tag them with.
RECORDS: dict[type[Any], str] = {
    Tranche: "tranche",
    Expense: "expense",
    Refund: "refund",
    ProgressNote: "progress",
}

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class Recorded(Generic[A]):
    """The result of a creating command: what it names, and whether this call created it."""

    value: A
    created: bool


@dataclass(frozen=True, slots=True)
class DonorIn:
    name: str | None = None
    contact: str | None = None
    anonymous: bool = False
    public_name: str | None = None


@dataclass(frozen=True, slots=True)
class Disbursement:
    """The result of ``disburse``: the grant and the number of the tranche paid."""

    grant: Grant
    tranche_no: int

    @property
    def tranche(self) -> Tranche:
        return self.grant.tranche(self.tranche_no)


@dataclass(frozen=True, slots=True)
class Progress:
    """The result of ``record_progress``: the grant and the number of the note recorded."""

    grant: Grant
    progress_no: int

    @property
    def note(self) -> ProgressNote:
        return self.grant.progress_note(self.progress_no)


def _s(uuid: UUID) -> str:
    return str(uuid)


class LedgerApp(CommandRuntime):
    """The ledger's service layer and unit of work."""

    name = "ledger"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {
        Fund: SNAPSHOT_INTERVAL_FUND,
        Grant: SNAPSHOT_INTERVAL_OTHER,
        Donation: SNAPSHOT_INTERVAL_OTHER,
    }
    snapshotting_projectors: ClassVar[dict[type[Any], Any]] = {
        Fund: replay,
        Grant: replay,
        Donation: replay,
    }

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tz = ZoneInfo(settings.timezone)
        self.vault = DonorVault(ensure_kek(Path(settings.key_dir)))
        library_env = eventsourcing_env(settings.database_url)
        library_env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
        library_env["AGGREGATE_CACHE_FASTFORWARD"] = "n"
        library_env.update(env or {})
        super().__init__(env=library_env)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for record_type, name in RECORDS.items():
            transcoder.register(RecordAsDict(record_type, name))

    def too_many_conflicts(self, attempts: int) -> Exception:
        return Conflict(
            f"the ledger kept changing under this command ({attempts} attempts)",
            attempts=attempts,
        )

    @property
    def donor_keys(self) -> DonorKeyRecorder:
        recorder = self.recorder
        assert isinstance(recorder, DonorKeyRecorder)
        return recorder

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    def _create_once(
        self, aggregate_id: UUID, create: Callable[[], A], answer_retry: Callable[[], A]
    ) -> A:
        """Create an aggregate whose id comes from an idempotency key, or answer a retry.

        The first attempt looks in the cache only (this process's recent writes, durable or
        queued): an older duplicate is refused by the store (IntegrityError, then a retry
        that finds it) or, if the command no longer validates (say its month was closed
        since), found here after the error.
        """
        first = self.attempt == 0
        if self._exists(aggregate_id, cache_only=first):
            return answer_retry()
        try:
            return create()
        except LedgerError:
            if first and self._exists(aggregate_id):
                self._evict_mutated()
                return answer_retry()
            raise

    def _business_date(self, label: str, value: date | str | None, fund: Fund) -> date:
        """The business date of an entry of ``fund`` (default: today), within its window."""
        today = self.today()
        if value is None:
            return today
        day = check_date(label, value)
        return fund.check_business_date(label, day, today=today, tz=self.tz)

    # -- reading -----------------------------------------------------------------------------

    def get_fund(self, slug: str) -> Fund:
        """A copy of the fund's current state (commands use their own, live copy)."""
        return self._read(lambda: self._fund_by_id(fund_id(slug), slug=slug, fresh=True))

    def get_donation(self, donation_id: UUID | str) -> Donation:
        return self._read(lambda: self._donation(donation_id, fresh=True))

    def get_grant(self, grant_id: UUID | str) -> Grant:
        return self._read(lambda: self._grant(grant_id, fresh=True))

    def _fund(self, slug: str) -> Fund:
        return self._fund_by_id(fund_id(slug), slug=slug)

    def _fund_by_id(self, fid: UUID | str, *, slug: str | None = None, fresh: bool = False) -> Fund:
        try:
            fund = self._load(fid if isinstance(fid, UUID) else UUID(fid), fresh=fresh)
        except AggregateNotFoundError:
            raise FundNotFound(f"no fund {slug or fid}", fund=slug or str(fid)) from None
        assert isinstance(fund, Fund)
        return fund

    def _donation(self, donation_id: UUID | str, *, fresh: bool = False) -> Donation:
        try:
            donation = self._load(_uuid(donation_id, DonationNotFound), fresh=fresh)
        except AggregateNotFoundError:
            raise DonationNotFound(f"no donation {donation_id}", id=str(donation_id)) from None
        if not isinstance(donation, Donation):
            raise DonationNotFound(f"no donation {donation_id}", id=str(donation_id))
        return donation

    def _grant(self, grant_id: UUID | str, *, fresh: bool = False) -> Grant:
        try:
            grant = self._load(_uuid(grant_id, GrantNotFound), fresh=fresh)
        except AggregateNotFoundError:
            raise GrantNotFound(f"no grant {grant_id}", id=str(grant_id)) from None
        if not isinstance(grant, Grant):
            raise GrantNotFound(f"no grant {grant_id}", id=str(grant_id))
        return grant

    def grant_ended_on(self, grant: Grant) -> date | None:
        """The day a closed or cancelled grant ended, from its events (newest first: only
        progress notes and tranche reversals can follow the end); None if it has not."""
        if grant.status not in ENDED_STATUSES:
            return None
        for e in self.events.get(grant.id, desc=True):
            if type(e).__qualname__ in ("Grant.Closed", "Grant.Cancelled"):
                return date.fromisoformat(getattr(e, "occurred_on"))  # noqa: B009
        return None

    def donor_details(self, donation: Donation) -> PersonalData | None:
        """The donor's name and contact, for auditors; None once erased or never given."""
        if donation.donor_sealed is None:
            return None
        wrapped = self.donor_keys.select_donor_key(donation.donor_id)
        if wrapped is None:
            return None
        key = self.vault.unwrap(wrapped)
        return self.vault.open(key, donation.donor_id, donation.donor_sealed)

    # -- funds -------------------------------------------------------------------------------

    @command
    def open_fund(
        self,
        *,
        slug: str,
        name: str,
        currency: str,
        description: str = "",
        host: str,
        committee: list[str],
        approvals_required: int = 2,
        purposes: list[dict[str, str]] | None = None,
        actor: str,
        key: str | None = None,
    ) -> Recorded[Fund]:
        """Open a fund. ``key``: the client's idempotency key, recorded (``FundOpening``) in
        the same write as the fund, so that one key opens one fund, however many requests
        carry it at once."""
        purposes = [dict(p) for p in purposes or []]
        request = fingerprint(
            kind="fund",
            slug=slug,
            name=name,
            currency=currency,
            description=description,
            host=host,
            committee=committee,
            approvals_required=approvals_required,
            purposes=purposes,
        )

        def answer_retry() -> Recorded[Fund]:
            existing = self._fund(slug)
            if existing.request_sha256 != request:
                raise DuplicateCode(f"a fund {slug!r} already exists", fund=slug)
            return Recorded(existing, created=False)

        def create() -> Recorded[Fund]:
            fund = Fund.open(
                slug=slug,
                name=name,
                currency=currency,
                description=description,
                host=host,
                committee=committee,
                approvals_required=approvals_required,
                purposes=purposes,
                actor=actor,
                request_sha256=request,
            )
            if key is None:
                self.save(fund)
            else:
                opening = FundOpening(key=key, slug=slug, request_sha256=request, actor=actor)
                self.save(fund, opening)
            return Recorded(fund, created=True)

        fid = fund_id(check_slug("slug", slug))
        if key is None:
            return self._create_once(fid, create, answer_retry)

        def answer_key_retry() -> Recorded[Fund]:
            opening = self._load(oid)
            assert isinstance(opening, FundOpening)
            if opening.request_sha256 != request:
                raise IdempotencyKeyReused(
                    "this idempotency key opened a different fund", fund=opening.slug
                )
            return Recorded(self._fund(opening.slug), created=False)

        oid = opening_id(key)
        return self._create_once(
            oid, lambda: self._create_once(fid, create, answer_retry), answer_key_retry
        )

    @command
    def add_purpose(self, *, slug: str, code: str, name: str, actor: str) -> Fund:
        fund = self._fund(slug)
        fund.add_purpose(code=code, name=name, actor=actor)
        self.save(fund)
        return fund

    @command
    def change_committee(
        self, *, slug: str, committee: list[str], approvals_required: int, actor: str
    ) -> Fund:
        fund = self._fund(slug)
        fund.change_committee(
            committee=committee, approvals_required=approvals_required, actor=actor
        )
        self.save(fund)
        return fund

    @command
    def record_host_details(
        self, *, slug: str, name: str, credit_code: str, public_fundraising: bool, actor: str
    ) -> Fund:
        """The host charity's name, credit code and public-fundraising status (the same
        details again record nothing)."""
        fund = self._fund(slug)
        if fund.record_host_details(
            name=name, credit_code=credit_code, public_fundraising=public_fundraising, actor=actor
        ):
            self.save(fund)
        return fund

    @command
    def close_period(self, *, slug: str, period: str, actor: str) -> Fund:
        fund = self._fund(slug)
        fund.close_period(period=period, today=self.today(), actor=actor)
        self.save(fund)
        return fund

    # -- donations ---------------------------------------------------------------------------

    @command
    def record_donation(
        self,
        *,
        slug: str,
        key: str,
        amount_minor: int,
        received_on: date | str,
        channel: str,
        purpose: str | None = None,
        donor: DonorIn | None = None,
        external_ref: str | None = None,
        note: str = "",
        in_kind: dict[str, str] | None = None,
        actor: str,
    ) -> Recorded[Donation]:
        donor = donor or DonorIn(anonymous=True)
        donation_id = entity_id(slug, "donation", key)
        # The text policy on what is sealed, too: what an auditor reads is what was checked.
        personal = PersonalData(
            name=check_optional_text("donor name", donor.name or None, max_len=NAME_LEN_MAX),
            contact=check_optional_text(
                "donor contact", donor.contact or None, max_len=NAME_LEN_MAX
            ),
        )
        request = fingerprint(
            kind="donation",
            fund=slug,
            amount_minor=amount_minor,
            received_on=str(received_on),
            channel=channel,
            purpose=purpose or "",
            anonymous=donor.anonymous,
            public_name=donor.public_name,
            personal=not personal.is_empty(),
            external_ref=external_ref,
            note=note,
            in_kind=in_kind,
        )

        def answer_retry() -> Recorded[Donation]:
            existing = self._donation(donation_id)
            self._check_same_donation(existing, request, personal)
            return Recorded(existing, created=False)

        def create() -> Recorded[Donation]:
            fund = self._fund(slug)
            day = self._business_date("received_on", received_on, fund)
            check_in_kind(channel, in_kind)
            code = fund.check_purpose(purpose)
            donor_id = _s(donor_id_for(donation_id))
            donor_keys: list[DonorKey] = []
            sealed = None
            if not personal.is_empty():
                data_key, wrapped = self.vault.new_data_key()
                sealed = self.vault.seal(data_key, donor_id, personal)
                donor_keys.append(DonorKey(donor_id, wrapped))
            receipt_no = fund.credit_donation(
                donation_id=_s(donation_id),
                amount_minor=amount_minor,
                purpose=code,
                received_on=day,
                actor=actor,
            )
            donation = Donation.receive(
                id=donation_id,
                fund_id=_s(fund.id),
                fund_slug=fund.slug,
                currency=fund.currency,
                amount_minor=amount_minor,
                received_on=day,
                channel=channel,
                purpose=code,
                donor_id=donor_id,
                donor_public_name=public_name_for(
                    name=personal.name, anonymous=donor.anonymous, public_name=donor.public_name
                ),
                donor_anonymous=donor.anonymous,
                donor_sealed=sealed,
                external_ref=external_ref,
                receipt_no=receipt_no,
                note=note,
                in_kind=in_kind,
                actor=actor,
                request_sha256=request,
            )
            self.save(fund, donation, donor_keys=donor_keys)
            return Recorded(donation, created=True)

        return self._create_once(donation_id, create, answer_retry)

    def _check_same_donation(
        self, existing: Donation, request: str, personal: PersonalData
    ) -> None:
        if existing.request_sha256 != request:
            raise IdempotencyKeyReused(
                "this idempotency key recorded a different donation", id=str(existing.id)
            )
        recorded = self.donor_details(existing)
        if recorded is not None and recorded != personal:
            raise IdempotencyKeyReused(
                "this idempotency key recorded a different donor", id=str(existing.id)
            )

    @command
    def refund_donation(
        self,
        *,
        donation_id: UUID | str,
        key: str,
        amount_minor: int,
        refunded_on: date | str | None = None,
        reason: str,
        actor: str,
    ) -> Recorded[Donation]:
        request = fingerprint(
            kind="refund",
            donation=str(donation_id),
            amount_minor=amount_minor,
            refunded_on=str(refunded_on),
            reason=reason,
        )

        donation = self._donation(donation_id)
        refund_id = _s(entity_id(f"{donation.fund_slug}:{donation.id}", "refund", key))
        if refund_id in donation.refunds:
            if donation.refunds[refund_id].request_sha256 != request:
                raise IdempotencyKeyReused(
                    "this idempotency key recorded a different refund", id=refund_id
                )
            return Recorded(donation, created=False)
        fund = self._fund_by_id(donation.fund_id)
        day = self._business_date("refunded_on", refunded_on, fund)
        donation.refund(
            refund_id=refund_id,
            amount_minor=amount_minor,
            refunded_on=day,
            reason=reason,
            actor=actor,
            request_sha256=request,
        )
        fund.debit_refund(
            donation_id=_s(donation.id),
            refund_id=refund_id,
            amount_minor=amount_minor,
            purpose=donation.purpose,
            refunded_on=day,
            actor=actor,
        )
        self.save(donation, fund)
        return Recorded(donation, created=True)

    @command
    def reverse_donation(
        self,
        *,
        donation_id: UUID | str,
        reason: str,
        reversed_on: date | str | None = None,
        actor: str,
    ) -> Donation:
        donation = self._donation(donation_id)
        if donation.reversed and donation.reversal_reason == reason:
            return donation  # a retried reversal
        fund = self._fund_by_id(donation.fund_id)
        day = self._business_date("reversed_on", reversed_on, fund)
        fund.check_open(day)
        amount_minor = donation.reverse(reason=reason, reversed_on=day, actor=actor)
        fund.debit_reversal(
            donation_id=_s(donation.id),
            amount_minor=amount_minor,
            purpose=donation.purpose,
            reversed_on=day,
            actor=actor,
        )
        self.save(donation, fund)
        return donation

    @command
    def erase_donor(self, *, donation_id: UUID | str, actor: str) -> Donation:
        """Crypto-shred a donor: delete the data key, then record the erasure."""

        donation = self._donation(donation_id)
        self.donor_keys.delete_donor_key(donation.donor_id)
        if donation.donor_erased:
            return donation
        donation.erase_donor(actor=actor)
        self.save(donation)
        return donation

    # -- grants ------------------------------------------------------------------------------

    @command
    def propose_grant(
        self,
        *,
        slug: str,
        key: str,
        title: str,
        description: str = "",
        purpose: str | None = None,
        grantee_name: str,
        grantee_id: str | None = None,
        amount_minor: int,
        actor: str,
        as_member: bool = False,
    ) -> Recorded[Grant]:
        """``as_member``: the actor proposes as a member of the fund's committee (checked);
        otherwise as the fund's treasurer."""
        grant_id = entity_id(slug, "grant", key)
        request = fingerprint(
            kind="grant",
            fund=slug,
            title=title,
            description=description,
            purpose=purpose or "",
            grantee_name=grantee_name,
            grantee_id=grantee_id,
            amount_minor=amount_minor,
        )

        def answer_retry() -> Recorded[Grant]:
            existing = self._grant(grant_id)
            if existing.request_sha256 != request:
                raise IdempotencyKeyReused(
                    "this idempotency key proposed a different grant", id=str(grant_id)
                )
            return Recorded(existing, created=False)

        def create() -> Recorded[Grant]:
            fund = self._fund_by_id(fund_id(slug), slug=slug, fresh=True)
            if as_member and member_of(fund.committee, actor) is None:
                raise NotCommitteeMember(
                    f"{actor!r} is not on the committee of the fund {slug}",
                    member=actor,
                    fund=slug,
                )
            grant = Grant.propose(
                id=grant_id,
                fund_id=_s(fund.id),
                fund_slug=fund.slug,
                currency=fund.currency,
                title=title,
                description=description,
                purpose=fund.check_purpose(purpose),
                grantee_name=grantee_name,
                grantee_id=grantee_id,
                amount_minor=amount_minor,
                proposed_on=self.today(),
                actor=actor,
                request_sha256=request,
            )
            self.save(grant)
            return Recorded(grant, created=True)

        return self._create_once(grant_id, create, answer_retry)

    @command
    def approve_grant(self, *, grant_id: UUID | str, note: str = "", actor: str) -> Grant:
        """Record an approval; the approval that reaches ``approvals_required`` commits the
        grant, and is refused (nothing recorded) if the available money does not cover it."""

        grant = self._grant(grant_id)
        fund = self._fund_by_id(grant.fund_id, fresh=True)
        today = self.today()
        grant.approve(member=actor, committee=fund.committee, note=note, approved_on=today)
        if grant.approvals_from(fund.committee) >= fund.approvals_required:
            fund.commit_grant(
                grant_id=_s(grant.id),
                amount_minor=grant.amount_minor,
                purpose=grant.purpose,
                committed_on=today,
                actor=actor,
            )
            grant.commit(committed_on=today, actor=actor)
            self.save(grant, fund)
        else:
            self.save(grant)
        return grant

    @command
    def reject_grant(self, *, grant_id: UUID | str, reason: str, actor: str) -> Grant:
        grant = self._grant(grant_id)
        fund = self._fund_by_id(grant.fund_id, fresh=True)
        grant.reject(reason=reason, rejected_on=self.today(), actor=actor, committee=fund.committee)
        self.save(grant)
        return grant

    def cancel_grant(self, *, grant_id: UUID | str, reason: str, actor: str) -> Grant:
        """Cancel a committed grant: a decision of a member of its fund's committee."""
        return self._end_grant(
            grant_id=grant_id, reason=reason, actor=actor, cancel=True, as_member=True
        )

    def close_grant(
        self, *, grant_id: UUID | str, reason: str, actor: str, as_member: bool = False
    ) -> Grant:
        """Close a committed grant, as its fund's treasurer or (``as_member``, checked) as a
        member of its fund's committee."""
        return self._end_grant(
            grant_id=grant_id, reason=reason, actor=actor, cancel=False, as_member=as_member
        )

    @command
    def _end_grant(
        self, *, grant_id: UUID | str, reason: str, actor: str, cancel: bool, as_member: bool
    ) -> Grant:
        grant = self._grant(grant_id)
        fund = self._fund_by_id(grant.fund_id)
        today = self.today()
        if cancel:
            released = grant.cancel(
                reason=reason, cancelled_on=today, actor=actor, committee=fund.committee
            )
        else:
            released = grant.close(
                reason=reason,
                closed_on=today,
                actor=actor,
                committee=fund.committee if as_member else None,
            )
        if released:
            fund.release_grant(
                grant_id=_s(grant.id),
                amount_minor=released,
                purpose=grant.purpose,
                released_on=today,
                actor=actor,
            )
        self.save(grant, fund)
        return grant

    @command
    def disburse(
        self,
        *,
        grant_id: UUID | str,
        key: str,
        amount_minor: int,
        paid_on: date | str | None = None,
        method: str,
        reference: str,
        evidence_sha256: str | None = None,
        actor: str,
    ) -> Recorded[Disbursement]:
        request = fingerprint(
            kind="disbursement",
            grant=str(grant_id),
            amount_minor=amount_minor,
            paid_on=str(paid_on),
            method=method,
            reference=reference,
            evidence_sha256=evidence_sha256,
        )

        grant = self._grant(grant_id)
        tranche_id = _s(entity_id(f"{grant.fund_slug}:{grant.id}", "disbursement", key))
        existing_no = grant.tranche_no_of(tranche_id)
        if existing_no is not None:
            if grant.tranche(existing_no).request_sha256 != request:
                raise IdempotencyKeyReused(
                    "this idempotency key recorded a different disbursement", id=tranche_id
                )
            return Recorded(Disbursement(grant, existing_no), created=False)
        fund = self._fund_by_id(grant.fund_id)
        day = self._business_date("paid_on", paid_on, fund)
        tranche_no = grant.disburse(
            tranche_id=tranche_id,
            amount_minor=amount_minor,
            paid_on=day,
            method=method,
            reference=reference,
            evidence_sha256=evidence_sha256,
            actor=actor,
            request_sha256=request,
        )
        fund.debit_disbursement(
            grant_id=_s(grant.id),
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            purpose=grant.purpose,
            paid_on=day,
            actor=actor,
        )
        self.save(grant, fund)
        return Recorded(Disbursement(grant, tranche_no), created=True)

    @command
    def reverse_disbursement(
        self,
        *,
        grant_id: UUID | str,
        tranche_no: int,
        reason: str,
        reversed_on: date | str | None = None,
        actor: str,
    ) -> Grant:
        grant = self._grant(grant_id)
        fund = self._fund_by_id(grant.fund_id)
        day = self._business_date("reversed_on", reversed_on, fund)
        amount_minor, released = grant.reverse_disbursement(
            tranche_no=tranche_no, reason=reason, reversed_on=day, actor=actor
        )
        fund.credit_disbursement_reversal(
            grant_id=_s(grant.id),
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            purpose=grant.purpose,
            reversed_on=day,
            actor=actor,
        )
        if released:
            fund.release_grant(
                grant_id=_s(grant.id),
                amount_minor=released,
                purpose=grant.purpose,
                released_on=day,
                actor=actor,
            )
        self.save(grant, fund)
        return grant

    @command
    def record_progress(
        self,
        *,
        grant_id: UUID | str,
        key: str,
        reported_on: date | str,
        note: str,
        evidence_sha256: list[str] | None = None,
        final: bool = False,
        actor: str,
        as_committee_member: bool = False,
    ) -> Recorded[Progress]:
        """A dated progress note on a grant (``final``: its final account, once ended).
        ``as_committee_member``: the actor records as a member of the fund's committee, and
        must be on it (a treasurer need not be)."""
        evidence = list(evidence_sha256 or [])
        request = fingerprint(
            kind="progress",
            grant=str(grant_id),
            reported_on=str(reported_on),
            note=note,
            evidence_sha256=evidence,
            final=final,
        )

        grant = self._grant(grant_id)
        progress_id = _s(entity_id(f"{grant.fund_slug}:{grant.id}", "progress", key))
        existing_no = grant.progress_no_of(progress_id)
        if existing_no is not None:
            if grant.progress_note(existing_no).request_sha256 != request:
                raise IdempotencyKeyReused(
                    "this idempotency key recorded a different progress note", id=progress_id
                )
            return Recorded(Progress(grant, existing_no), created=False)
        fund = self._fund_by_id(grant.fund_id, fresh=as_committee_member)
        if as_committee_member:
            actor = grant.need_member(fund.committee, actor)  # the name as the committee has it
        progress_no = grant.record_progress(
            progress_id=progress_id,
            reported_on=self._business_date("on", reported_on, fund),
            note=note,
            evidence_sha256=evidence,
            final=final,
            actor=actor,
            request_sha256=request,
        )
        self.save(grant)
        return Recorded(Progress(grant, progress_no), created=True)

    # -- expenses ----------------------------------------------------------------------------

    @command
    def record_expense(
        self,
        *,
        slug: str,
        key: str,
        amount_minor: int,
        category: str,
        paid_on: date | str,
        payee: str,
        description: str,
        purpose: str | None = None,
        actor: str,
    ) -> Recorded[str]:
        expense_id = _s(entity_id(slug, "expense", key))
        request = fingerprint(
            kind="expense",
            fund=slug,
            amount_minor=amount_minor,
            category=category,
            paid_on=str(paid_on),
            payee=payee,
            description=description,
            purpose=purpose or "",
        )

        fund = self._fund(slug)
        if expense_id in fund.expenses:
            if fund.expenses[expense_id].request_sha256 != request:
                raise IdempotencyKeyReused(
                    "this idempotency key recorded a different expense", id=expense_id
                )
            return Recorded(expense_id, created=False)
        fund.record_expense(
            expense_id=expense_id,
            amount_minor=amount_minor,
            category=category,
            paid_on=self._business_date("paid_on", paid_on, fund),
            payee=payee,
            description=description,
            purpose=purpose,
            actor=actor,
            request_sha256=request,
        )
        self.save(fund)
        return Recorded(expense_id, created=True)

    @command
    def reverse_expense(
        self,
        *,
        slug: str,
        expense_id: str,
        reason: str,
        reversed_on: date | str | None = None,
        actor: str,
    ) -> Fund:
        fund = self._fund(slug)
        fund.reverse_expense(
            expense_id=expense_id,
            reason=reason,
            reversed_on=self._business_date("reversed_on", reversed_on, fund),
            actor=actor,
        )
        self.save(fund)
        return fund


def _uuid(value: UUID | str, error: type[InvalidInput] | Any) -> UUID:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError:
        raise error(f"no such id {value!r}", id=str(value)) from None


def create_app(settings: Settings, **kwargs: Any) -> LedgerApp:
    """The application for ``settings`` (tables are created on first use)."""
    return LedgerApp(settings, **kwargs)
