"""How a history's steps are recorded: through the application's use cases (``UseCases``),
or on the domain's aggregates in memory, their events written in bulk (``Bulk``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any

from ledger.application import DonorIn, LedgerApp
from ledger.domain.common import donor_id_for, entity_id
from ledger.domain.donation import Donation, public_name_for
from ledger.domain.fund import Fund
from ledger.domain.grant import Grant
from ledger.histories.cast import ADMIN, COMMITTEE, NO_FINGERPRINT, PURPOSES, PUT_EVENTS, TREASURER
from ledger.privacy import PersonalData
from ledger.store import DonorKey

# -- recording through the use cases ---------------------------------------------------------


class UseCases:
    """Each step is one of the application's use cases, run on its business day."""

    def __init__(self, app: LedgerApp) -> None:
        self.app = app

    @contextmanager
    def _on(self, day: date) -> Iterator[None]:
        saved = self.app.clock
        noon = datetime.combine(day, time(12), tzinfo=self.app.tz)
        self.app.clock = lambda: noon
        try:
            yield
        finally:
            self.app.clock = saved

    def open_fund(self, slug: str, name: str, day: date) -> None:
        with self._on(day):
            self.app.open_fund(
                slug=slug,
                name=name,
                currency="CNY",
                description="一个村的社区基金：捐赠、资助和支出全部公开。",
                host="青山公益基金会",
                committee=list(COMMITTEE),
                approvals_required=2,
                purposes=[{"code": c, "name": n} for c, n in PURPOSES],
                actor=ADMIN,
            )

    def available_minor(self, slug: str, purpose: str) -> int:
        return self.app.get_fund(slug).available_minor(purpose)

    def donate(
        self,
        *,
        slug: str,
        key: str,
        amount_minor: int,
        day: date,
        channel: str,
        purpose: str,
        donor: DonorIn,
        in_kind: dict[str, str] | None,
    ) -> str:
        with self._on(day):
            recorded = self.app.record_donation(
                slug=slug,
                key=key,
                amount_minor=amount_minor,
                received_on=day,
                channel=channel,
                purpose=purpose or None,
                donor=donor,
                external_ref=f"BANK-{key}" if channel == "bank" else None,
                in_kind=in_kind,
                actor=TREASURER,
            )
        return str(recorded.value.id)

    def refund(
        self, *, slug: str, donation_id: str, key: str, amount_minor: int, day: date
    ) -> None:
        with self._on(day):
            self.app.refund_donation(
                donation_id=donation_id,
                key=key,
                amount_minor=amount_minor,
                refunded_on=day,
                reason="捐赠人要求退回",
                actor=TREASURER,
            )

    def reverse_donation(self, *, donation_id: str, day: date) -> None:
        with self._on(day):
            self.app.reverse_donation(
                donation_id=donation_id,
                reason="录入错误：这笔入账不是捐赠",
                reversed_on=day,
                actor=TREASURER,
            )

    def propose(
        self, *, slug: str, key: str, purpose: str, grantee: str, amount_minor: int, day: date
    ) -> str:
        with self._on(day):
            recorded = self.app.propose_grant(
                slug=slug,
                key=key,
                title="村里的小项目",
                description="由村民提出、管委会审批的小额资助。",
                purpose=purpose or None,
                grantee_name=grantee,
                amount_minor=amount_minor,
                actor=TREASURER,
            )
        return str(recorded.value.id)

    def approve(self, *, grant_id: str, member: str, day: date) -> bool:
        with self._on(day):
            grant = self.app.approve_grant(grant_id=grant_id, actor=member)
        return grant.status == "committed"

    def reject(self, *, grant_id: str, member: str, day: date) -> None:
        with self._on(day):
            self.app.reject_grant(grant_id=grant_id, reason="不在资助范围", actor=member)

    def disburse(
        self, *, slug: str, grant_id: str, key: str, amount_minor: int, day: date, method: str
    ) -> int:
        with self._on(day):
            recorded = self.app.disburse(
                grant_id=grant_id,
                key=key,
                amount_minor=amount_minor,
                paid_on=day,
                method=method,
                reference=f"PAY-{key}",
                actor=TREASURER,
            )
        return int(recorded.value.tranche_no)

    def reverse_tranche(self, *, grant_id: str, tranche_no: int, day: date) -> None:
        with self._on(day):
            self.app.reverse_disbursement(
                grant_id=grant_id,
                tranche_no=tranche_no,
                reason="银行退票：收款账户名不符",
                reversed_on=day,
                actor=TREASURER,
            )

    def end_grant(self, *, grant_id: str, cancel: bool, day: date) -> None:
        with self._on(day):
            if cancel:
                self.app.cancel_grant(grant_id=grant_id, reason="项目取消", actor=COMMITTEE[0])
            else:
                self.app.close_grant(grant_id=grant_id, reason="项目完成", actor=TREASURER)

    def expense(
        self,
        *,
        slug: str,
        key: str,
        amount_minor: int,
        category: str,
        day: date,
        purpose: str,
        payee: str,
        description: str,
    ) -> str:
        with self._on(day):
            recorded = self.app.record_expense(
                slug=slug,
                key=key,
                amount_minor=amount_minor,
                category=category,
                paid_on=day,
                payee=payee,
                description=description,
                purpose=purpose or None,
                actor=TREASURER,
            )
        return recorded.value

    def reverse_expense(self, *, slug: str, expense_id: str, day: date) -> None:
        with self._on(day):
            self.app.reverse_expense(
                slug=slug,
                expense_id=expense_id,
                reason="重复录入，予以冲销",
                reversed_on=day,
                actor=TREASURER,
            )

    def close_period(self, *, slug: str, period: str, day: date) -> None:
        with self._on(day):
            self.app.close_period(slug=slug, period=period, actor=TREASURER)

    def finish(self) -> None:
        return None


# -- recording in bulk ------------------------------------------------------------------------


class Bulk:
    """The same steps on aggregates in memory; their events written in large transactions."""

    def __init__(self, app: LedgerApp) -> None:
        self.app = app
        self.funds: dict[str, Fund] = {}
        self.donations: dict[str, Donation] = {}
        self.grants: dict[str, Grant] = {}
        self.pending: list[Any] = []
        self.donor_keys: list[DonorKey] = []

    def _collect(self, *aggregates: Any) -> None:
        for aggregate in aggregates:
            self.pending.extend(aggregate.collect_events())
        if len(self.pending) >= PUT_EVENTS:
            self.finish()

    def finish(self) -> None:
        if self.pending:
            self.app.events.put(self.pending, donor_keys=self.donor_keys)
            self.pending, self.donor_keys = [], []

    def open_fund(self, slug: str, name: str, day: date) -> None:
        fund = Fund.open(
            slug=slug,
            name=name,
            currency="CNY",
            description="一个村的社区基金：捐赠、资助和支出全部公开。",
            host="青山公益基金会",
            committee=list(COMMITTEE),
            approvals_required=2,
            purposes=[{"code": c, "name": n} for c, n in PURPOSES],
            actor=ADMIN,
            request_sha256=NO_FINGERPRINT,
        )
        self.funds[slug] = fund
        self._collect(fund)

    def available_minor(self, slug: str, purpose: str) -> int:
        return self.funds[slug].available_minor(purpose)

    def donate(
        self,
        *,
        slug: str,
        key: str,
        amount_minor: int,
        day: date,
        channel: str,
        purpose: str,
        donor: DonorIn,
        in_kind: dict[str, str] | None,
    ) -> str:
        fund = self.funds[slug]
        donation_id = entity_id(slug, "donation", key)
        donor_id = str(donor_id_for(donation_id))
        personal = PersonalData(name=donor.name, contact=donor.contact)
        sealed = None
        if not personal.is_empty():
            data_key, wrapped = self.app.vault.new_data_key()
            sealed = self.app.vault.seal(data_key, donor_id, personal)
            self.donor_keys.append(DonorKey(donor_id, wrapped))
        receipt_no = fund.credit_donation(
            donation_id=str(donation_id),
            amount_minor=amount_minor,
            purpose=purpose,
            received_on=day,
            actor=TREASURER,
        )
        donation = Donation.receive(
            id=donation_id,
            fund_id=str(fund.id),
            fund_slug=slug,
            currency=fund.currency,
            amount_minor=amount_minor,
            received_on=day,
            channel=channel,
            purpose=purpose,
            donor_id=donor_id,
            donor_public_name=public_name_for(
                name=donor.name, anonymous=donor.anonymous, public_name=donor.public_name
            ),
            donor_anonymous=donor.anonymous,
            donor_sealed=sealed,
            external_ref=f"BANK-{key}" if channel == "bank" else None,
            receipt_no=receipt_no,
            note="",
            in_kind=in_kind,
            actor=TREASURER,
            request_sha256=NO_FINGERPRINT,
        )
        self.donations[str(donation_id)] = donation
        self._collect(fund, donation)
        return str(donation_id)

    def _donation(self, donation_id: str) -> Donation:
        return self.donations[donation_id]

    def refund(
        self, *, slug: str, donation_id: str, key: str, amount_minor: int, day: date
    ) -> None:
        donation = self._donation(donation_id)
        fund = self.funds[slug]
        refund_id = str(entity_id(f"{slug}:{donation.id}", "refund", key))
        donation.refund(
            refund_id=refund_id,
            amount_minor=amount_minor,
            refunded_on=day,
            reason="捐赠人要求退回",
            actor=TREASURER,
            request_sha256=NO_FINGERPRINT,
        )
        fund.debit_refund(
            donation_id=donation_id,
            refund_id=refund_id,
            amount_minor=amount_minor,
            purpose=donation.purpose,
            refunded_on=day,
            actor=TREASURER,
        )
        self._collect(donation, fund)

    def reverse_donation(self, *, donation_id: str, day: date) -> None:
        donation = self._donation(donation_id)
        fund = self.funds[donation.fund_slug]
        fund.check_open(day)
        amount_minor = donation.reverse(
            reason="录入错误：这笔入账不是捐赠", reversed_on=day, actor=TREASURER
        )
        fund.debit_reversal(
            donation_id=donation_id,
            amount_minor=amount_minor,
            purpose=donation.purpose,
            reversed_on=day,
            actor=TREASURER,
        )
        self._collect(donation, fund)

    def propose(
        self, *, slug: str, key: str, purpose: str, grantee: str, amount_minor: int, day: date
    ) -> str:
        fund = self.funds[slug]
        grant = Grant.propose(
            id=entity_id(slug, "grant", key),
            fund_id=str(fund.id),
            fund_slug=slug,
            currency=fund.currency,
            title="村里的小项目",
            description="由村民提出、管委会审批的小额资助。",
            purpose=fund.check_purpose(purpose),
            grantee_name=grantee,
            grantee_id=None,
            amount_minor=amount_minor,
            proposed_on=day,
            actor=TREASURER,
            request_sha256=NO_FINGERPRINT,
        )
        self.grants[str(grant.id)] = grant
        self._collect(grant)
        return str(grant.id)

    def approve(self, *, grant_id: str, member: str, day: date) -> bool:
        grant = self.grants[grant_id]
        fund = self.funds[grant.fund_slug]
        grant.approve(member=member, committee=fund.committee, note="", approved_on=day)
        if grant.approvals_from(fund.committee) < fund.approvals_required:
            self._collect(grant)
            return False
        fund.commit_grant(
            grant_id=grant_id,
            amount_minor=grant.amount_minor,
            purpose=grant.purpose,
            committed_on=day,
            actor=member,
        )
        grant.commit(committed_on=day, actor=member)
        self._collect(grant, fund)
        return True

    def reject(self, *, grant_id: str, member: str, day: date) -> None:
        grant = self.grants.pop(grant_id)
        committee = self.funds[grant.fund_slug].committee
        grant.reject(reason="不在资助范围", rejected_on=day, actor=member, committee=committee)
        self._collect(grant)

    def disburse(
        self, *, slug: str, grant_id: str, key: str, amount_minor: int, day: date, method: str
    ) -> int:
        grant = self.grants[grant_id]
        fund = self.funds[slug]
        tranche_id = str(entity_id(f"{slug}:{grant.id}", "disbursement", key))
        tranche_no = grant.disburse(
            tranche_id=tranche_id,
            amount_minor=amount_minor,
            paid_on=day,
            method=method,
            reference=f"PAY-{key}",
            evidence_sha256=None,
            actor=TREASURER,
            request_sha256=NO_FINGERPRINT,
        )
        fund.debit_disbursement(
            grant_id=grant_id,
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            purpose=grant.purpose,
            paid_on=day,
            actor=TREASURER,
        )
        self._collect(grant, fund)
        return tranche_no

    def reverse_tranche(self, *, grant_id: str, tranche_no: int, day: date) -> None:
        grant = self.grants[grant_id]
        fund = self.funds[grant.fund_slug]
        amount_minor, released = grant.reverse_disbursement(
            tranche_no=tranche_no,
            reason="银行退票：收款账户名不符",
            reversed_on=day,
            actor=TREASURER,
        )
        fund.credit_disbursement_reversal(
            grant_id=grant_id,
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            purpose=grant.purpose,
            reversed_on=day,
            actor=TREASURER,
        )
        if released:
            fund.release_grant(
                grant_id=grant_id,
                amount_minor=released,
                purpose=grant.purpose,
                released_on=day,
                actor=TREASURER,
            )
        self._collect(grant, fund)

    def end_grant(self, *, grant_id: str, cancel: bool, day: date) -> None:
        grant = self.grants.pop(grant_id)
        fund = self.funds[grant.fund_slug]
        if cancel:
            actor = COMMITTEE[0]
            released = grant.cancel(
                reason="项目取消", cancelled_on=day, actor=actor, committee=fund.committee
            )
        else:
            actor = TREASURER
            released = grant.close(reason="项目完成", closed_on=day, actor=actor, committee=None)
        if released:
            fund.release_grant(
                grant_id=grant_id,
                amount_minor=released,
                purpose=grant.purpose,
                released_on=day,
                actor=actor,
            )
        self._collect(grant, fund)

    def expense(
        self,
        *,
        slug: str,
        key: str,
        amount_minor: int,
        category: str,
        day: date,
        purpose: str,
        payee: str,
        description: str,
    ) -> str:
        fund = self.funds[slug]
        expense_id = str(entity_id(slug, "expense", key))
        fund.record_expense(
            expense_id=expense_id,
            amount_minor=amount_minor,
            category=category,
            paid_on=day,
            payee=payee,
            description=description,
            purpose=purpose,
            actor=TREASURER,
            request_sha256=NO_FINGERPRINT,
        )
        self._collect(fund)
        return expense_id

    def reverse_expense(self, *, slug: str, expense_id: str, day: date) -> None:
        fund = self.funds[slug]
        fund.reverse_expense(
            expense_id=expense_id, reason="重复录入，予以冲销", reversed_on=day, actor=TREASURER
        )
        self._collect(fund)

    def close_period(self, *, slug: str, period: str, day: date) -> None:
        fund = self.funds[slug]
        fund.close_period(period=period, today=day, actor=TREASURER)
        self._collect(fund)
