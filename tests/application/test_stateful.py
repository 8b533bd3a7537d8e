"""The whole ledger against a plain reference model (dicts of ints), driven by hypothesis.

Every command of the application runs with random arguments. For each one the model works
out whether it must be accepted and, if not, which errors are true reasons to refuse it (the
application must raise one of them; the order in which it checks is its own business). After
every step each fund's figures (per purpose and unrestricted), each grant and each donation
must equal the model's, no money may be negative and the books must balance; at the end
every aggregate is rebuilt from its stored events and compared with the live one.

Run with ``--hypothesis-show-statistics`` to see how often each command was accepted or
refused, and why.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger.application import DonorIn, LedgerApp
from ledger.domain import errors as e
from ledger.domain.common import entity_id, fund_id
from ledger.domain.figures import EFFECTS, apply_effect, zero_figures
from ledger.settings import Settings

STEPS_MAX = 80
SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
FIGURES = ("received", "refunded", "committed", "released", "disbursed", "expenses")
FUNDS = {
    "tea": {"committee": ["alice", "bob", "carol"], "required": 2, "purposes": ["edu", "care"]},
    "rice": {"committee": ["dave", "erin"], "required": 1, "purposes": ["roads"]},
}
PEOPLE = ["alice", "bob", "carol", "dave", "erin", "mallory"]
PURPOSE_CODES = ["edu", "care", "roads", "water"]
DONORS = [
    None,
    DonorIn(name="王小明", contact="13800138000"),
    DonorIn(name="李四"),
    DonorIn(name="张三", contact="z@example.cn", anonymous=True),
    DonorIn(contact="13900000000", public_name="一位村民"),
]
AMOUNTS = st.one_of(st.sampled_from([0, 1, 100, 5_000, 10_000, 50_000]), st.integers(-5, 120_000))
SMALL_AMOUNTS = st.one_of(AMOUNTS, st.integers(1, 20_000), st.integers(1, 20_000))
# Days from today: mostly the past (up to two and a half months), sometimes the future.
DAY_OFFSETS = st.one_of(st.integers(-75, 0), st.integers(-3, 0), st.integers(-3, 2))
MAYBE_DAY_OFFSETS = st.one_of(st.none(), DAY_OFFSETS)  # None: the command's default (today)
# A committee member of the grant's fund (by index), or anybody.
APPROVERS = st.one_of(st.integers(0, 9), st.integers(0, 9), st.sampled_from(PEOPLE))
INDEX = st.integers(0, 1000)

Refusals = list[type[Exception]]


def reasons(*checks: tuple[bool, type[Exception]]) -> Refusals:
    """The errors whose condition holds: each is a true reason to refuse the command."""
    return [error for holds, error in checks if holds]


def new_figures() -> dict[str, int]:
    return dict.fromkeys(FIGURES, 0)


def available(f: dict[str, int]) -> int:
    return f["received"] - f["refunded"] - f["committed"] + f["released"] - f["expenses"]


@dataclass
class FundModel:
    committee: list[str]
    required: int
    figures: dict[str, dict[str, int]]
    closed: set[str] = field(default_factory=set)
    receipt_seq: dict[int, int] = field(default_factory=dict)
    # key -> [expense id, content, amount, purpose, reversed]
    expenses: dict[str, list[Any]] = field(default_factory=dict)

    def closed_on(self, day: date) -> bool:
        return day.isoformat()[:7] in self.closed


@dataclass
class DonationModel:
    slug: str
    id: Any
    content: tuple[Any, ...]
    personal: tuple[str | None, str | None]
    amount: int
    purpose: str
    received_on: date
    receipt_no: str
    args: tuple[Any, ...]  # the request, to send it again
    refunded: int = 0
    reversed: bool = False
    reversal_reason: str | None = None
    erased: bool = False
    refunds: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # key -> content


@dataclass
class GrantModel:
    slug: str
    id: Any
    content: tuple[Any, ...]
    purpose: str
    amount: int
    proposer: str
    status: str = "proposed"
    approvals: list[str] = field(default_factory=list)
    committed: int = 0
    disbursed: int = 0
    released: int = 0
    tranches: list[list[int]] = field(default_factory=list)  # [amount, reversed]
    payments: dict[str, tuple[tuple[Any, ...], int]] = field(default_factory=dict)
    committed_on: date | None = None
    tranche_dates: list[date] = field(default_factory=list)


def donor_parts(donor: DonorIn | None) -> tuple[bool, str | None, bool, tuple[Any, Any]]:
    """What of the donor the application compares on a retry: the flags and the details."""
    donor = donor or DonorIn(anonymous=True)
    personal = (donor.name or None, donor.contact or None)
    return donor.anonymous, donor.public_name, personal != (None, None), personal


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.now = START
        self.app = LedgerApp(
            Settings(database_url="memory://", key_dir=Path(self.tmp.name) / "keys"),
            clock=lambda: self.now,
        )
        self.funds: dict[str, FundModel] = {}
        self.donations: dict[tuple[str, str], DonationModel] = {}
        self.grants: dict[tuple[str, str], GrantModel] = {}

    # -- helpers -------------------------------------------------------------------------

    def today(self) -> date:
        return self.now.astimezone(SHANGHAI).date()

    def day(self, offset: int) -> date:
        return self.today() + timedelta(days=offset)

    def run(self, label: str, refusals: Refusals, command: Any) -> Any:
        """Run ``command``: with no refusals the app must accept it, else refuse it with one
        of them. Returns the command's result, or None when it was refused."""
        refused: e.LedgerError | None = None
        try:
            result = command()
        except e.LedgerError as error:
            refused, result = error, None
        event(f"{label}: {type(refused).__name__ if refused else 'ok'}")
        names = [r.__name__ for r in refusals]
        if refused is None:
            assert not refusals, f"{label}: the model refuses with {names}, the app accepted"
        else:
            assert refusals, f"{label}: the model accepts, the app refused: {refused!r}"
            assert type(refused) in refusals, (
                f"{label}: the model refuses with {names}, the app with {refused!r}"
            )
        return result

    @staticmethod
    def pick(items: dict[Any, Any], index: int) -> Any:
        keys = sorted(items, key=str)
        return items[keys[index % len(keys)]]

    def pick_grant(self, index: int, focus: bool, *statuses: str) -> GrantModel:
        """Any grant, or (``focus``) preferably one in one of ``statuses``."""
        focused = {k: g for k, g in self.grants.items() if g.status in statuses}
        return self.pick(focused if focus and focused else self.grants, index)

    # -- funds ---------------------------------------------------------------------------

    @initialize(
        gifts=st.lists(
            st.tuples(
                st.sampled_from(sorted(FUNDS)),
                st.integers(1, 100_000),
                st.sampled_from([None, None, *PURPOSE_CODES[:3]]),
                st.integers(-40, 0),
            ),
            max_size=6,
        ),
        grants=st.lists(
            st.tuples(
                st.sampled_from(sorted(FUNDS)),
                st.integers(1, 30_000),
                st.sampled_from([None, None, None, "edu"]),
            ),
            min_size=1,
            max_size=3,
        ),
        base=st.lists(st.integers(50_000, 200_000), min_size=len(FUNDS), max_size=len(FUNDS)),
    )
    def open_funds(
        self,
        gifts: list[tuple[str, int, str | None, int]],
        grants: list[tuple[str, int, str | None]],
        base: list[int],
    ) -> None:
        """The two funds, some money and some grants to start with (through the same checked
        commands as the rules), so that examples reach disbursements and their reversals."""
        for slug, spec in FUNDS.items():
            recorded = self.app.open_fund(
                slug=slug,
                name=f"{slug} fund",
                currency="CNY",
                host="host",
                committee=list(spec["committee"]),
                approvals_required=spec["required"],
                purposes=[{"code": c, "name": c.upper()} for c in spec["purposes"]],
                actor="admin",
            )
            assert recorded.created
            self.funds[slug] = FundModel(
                committee=list(spec["committee"]),
                required=spec["required"],
                figures={"": new_figures(), **{c: new_figures() for c in spec["purposes"]}},
            )
        gifts = [(slug, amount, None, -1) for slug, amount in zip(FUNDS, base, strict=True)] + gifts
        for i, (slug, amount, purpose, offset) in enumerate(gifts):
            self._record_donation(
                slug, f"seed{i}", amount, self.day(offset), "bank", purpose, None, ""
            )
        for i, (slug, amount, purpose) in enumerate(grants):
            grant = self._propose(slug, f"seed{i}", "路灯", purpose, amount, "mallory")
            if grant is not None:
                self._approve_by_the_committee(grant)

    @rule(slug=st.sampled_from(sorted(FUNDS)), same=st.booleans())
    def reopen_fund(self, slug: str, same: bool) -> None:
        spec = FUNDS[slug]
        recorded = self.run(
            "reopen_fund",
            reasons((not same, e.DuplicateCode)),
            lambda: self.app.open_fund(
                slug=slug,
                name=f"{slug} fund" if same else "another",
                currency="CNY",
                host="host",
                committee=list(spec["committee"]),
                approvals_required=spec["required"],
                purposes=[{"code": c, "name": c.upper()} for c in spec["purposes"]],
                actor="admin",
            ),
        )
        if recorded is not None:
            assert recorded.created is False

    @rule(slug=st.sampled_from(sorted(FUNDS)), code=st.sampled_from(PURPOSE_CODES))
    def add_purpose(self, slug: str, code: str) -> None:
        fund = self.funds[slug]
        done = self.run(
            "add_purpose",
            reasons((code in fund.figures, e.DuplicateCode)),
            lambda: self.app.add_purpose(slug=slug, code=code, name=code.upper(), actor="admin"),
        )
        if done is not None:
            fund.figures[code] = new_figures()

    @rule(
        slug=st.sampled_from(sorted(FUNDS)),
        members=st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4, unique=True),
        required=st.integers(1, 3),
    )
    def change_committee(self, slug: str, members: list[str], required: int) -> None:
        done = self.run(
            "change_committee",
            reasons((required > len(members), e.InvalidField)),
            lambda: self.app.change_committee(
                slug=slug, committee=members, approvals_required=required, actor="admin"
            ),
        )
        if done is not None:
            self.funds[slug].committee = list(members)
            self.funds[slug].required = required

    @rule(days=st.integers(0, 20), hours=st.integers(0, 23))
    def advance_clock(self, days: int, hours: int) -> None:
        self.now += timedelta(days=days, hours=hours)

    @rule(slug=st.sampled_from(sorted(FUNDS)), months_back=st.integers(-1, 3))
    def close_period(self, slug: str, months_back: int) -> None:
        today = self.today()
        month_index = today.year * 12 + today.month - 1 - months_back
        period = f"{month_index // 12:04d}-{month_index % 12 + 1:02d}"
        done = self.run(
            "close_period",
            reasons((months_back <= 0, e.PeriodNotEnded)),
            lambda: self.app.close_period(slug=slug, period=period, actor="treasurer"),
        )
        if done is not None:
            self.funds[slug].closed.add(period)

    # -- donations -----------------------------------------------------------------------

    @rule(
        slug=st.sampled_from(sorted(FUNDS)),
        key=st.sampled_from([f"d{i}" for i in range(12)]),
        amount=AMOUNTS,
        offset=DAY_OFFSETS,
        channel=st.sampled_from(["cash", "bank", "wechat", "cash", "bank", "wechat", "pigeon"]),
        purpose=st.sampled_from([None, None, *PURPOSE_CODES]),
        donor=st.sampled_from(DONORS),
        note=st.sampled_from(["", "谢谢"]),
    )
    def record_donation(
        self,
        slug: str,
        key: str,
        amount: int,
        offset: int,
        channel: str,
        purpose: str | None,
        donor: DonorIn | None,
        note: str,
    ) -> None:
        self._record_donation(slug, key, amount, self.day(offset), channel, purpose, donor, note)

    @precondition(lambda self: self.donations)
    @rule(index=INDEX)
    def retry_donation(self, index: int) -> None:
        """The very same request again, maybe days later: the original answer."""
        self._record_donation(*self.pick(self.donations, index).args)

    def _record_donation(
        self,
        slug: str,
        key: str,
        amount: int,
        received_on: date,
        channel: str,
        purpose: str | None,
        donor: DonorIn | None,
        note: str,
    ) -> None:
        fund = self.funds[slug]
        anonymous, public_name, has_personal, personal = donor_parts(donor)
        content = (amount, received_on, channel, purpose or "", anonymous, public_name, note)
        content += (has_personal,)
        existing = self.donations.get((slug, key))
        if existing is not None:
            # Details are compared only while they can be read (not erased, given at all).
            same_donor = existing.erased or existing.personal in ((None, None), personal)
            refusals = reasons(
                (existing.content != content or not same_donor, e.IdempotencyKeyReused)
            )
        else:
            refusals = reasons(
                (received_on > self.today(), e.DateInFuture),
                (channel == "pigeon", e.InvalidField),
                ((purpose or "") not in fund.figures, e.UnknownPurpose),
                (amount <= 0, e.AmountNotPositive),
                (fund.closed_on(received_on), e.PeriodClosed),
            )
        recorded = self.run(
            "record_donation" if existing is None else "record_donation again",
            refusals,
            lambda: self.app.record_donation(
                slug=slug,
                key=key,
                amount_minor=amount,
                received_on=received_on.isoformat(),
                channel=channel,
                purpose=purpose,
                donor=donor,
                note=note,
                actor="treasurer",
            ),
        )
        if recorded is None:
            return
        if existing is not None:
            assert recorded.created is False
            assert recorded.value.receipt_no == existing.receipt_no
            assert recorded.value.id == existing.id
            return
        assert recorded.created is True
        year = received_on.year
        fund.receipt_seq[year] = fund.receipt_seq.get(year, 0) + 1
        receipt_no = f"{slug}-{year}-{fund.receipt_seq[year]:06d}"
        assert recorded.value.receipt_no == receipt_no
        fund.figures[purpose or ""]["received"] += amount
        self.donations[(slug, key)] = DonationModel(
            slug=slug,
            id=recorded.value.id,
            content=content,
            personal=personal,
            amount=amount,
            purpose=purpose or "",
            received_on=received_on,
            receipt_no=receipt_no,
            args=(slug, key, amount, received_on, channel, purpose, donor, note),
        )

    @rule(offset=st.integers(-3, 0))
    def donate_to_an_unknown_fund(self, offset: int) -> None:
        self.run(
            "donate_to_an_unknown_fund",
            [e.FundNotFound],
            lambda: self.app.record_donation(
                slug="ghost",
                key="k",
                amount_minor=100,
                received_on=self.day(offset),
                channel="cash",
                actor="t",
            ),
        )

    @precondition(lambda self: self.donations)
    @rule(
        index=INDEX,
        key=st.sampled_from(["r0", "r1", "r2"]),
        amount=AMOUNTS,
        offset=MAYBE_DAY_OFFSETS,
        reason=st.sampled_from(["退款", "多捐"]),
    )
    def refund_donation(
        self, index: int, key: str, amount: int, offset: int | None, reason: str
    ) -> None:
        d = self.pick(self.donations, index)
        fund = self.funds[d.slug]
        refunded_on = None if offset is None else self.day(offset)
        day = refunded_on or self.today()
        content = (amount, str(refunded_on), reason)
        if key in d.refunds:
            refusals = reasons((d.refunds[key] != content, e.IdempotencyKeyReused))
        else:
            refusals = reasons(
                (day > self.today(), e.DateInFuture),
                (amount <= 0, e.AmountNotPositive),
                (d.reversed, e.AlreadyReversed),
                (amount > d.amount - d.refunded, e.RefundTooLarge),
                (day < d.received_on, e.InvalidField),
                (fund.closed_on(day), e.PeriodClosed),
                (amount > available(fund.figures[d.purpose]), e.InsufficientFunds),
            )
        recorded = self.run(
            "refund_donation",
            refusals,
            lambda: self.app.refund_donation(
                donation_id=d.id,
                key=key,
                amount_minor=amount,
                refunded_on=refunded_on,
                reason=reason,
                actor="treasurer",
            ),
        )
        if recorded is None:
            return
        assert recorded.created is (key not in d.refunds)
        if key not in d.refunds:
            d.refunds[key] = content
            d.refunded += amount
            fund.figures[d.purpose]["refunded"] += amount

    @precondition(lambda self: self.donations)
    @rule(index=INDEX, offset=MAYBE_DAY_OFFSETS, reason=st.sampled_from(["录错", "重复录入"]))
    def reverse_donation(self, index: int, offset: int | None, reason: str) -> None:
        d = self.pick(self.donations, index)
        fund = self.funds[d.slug]
        reversed_on = None if offset is None else self.day(offset)
        day = reversed_on or self.today()
        remaining = d.amount - d.refunded
        retried = d.reversed and d.reversal_reason == reason
        refusals = (
            []
            if retried
            else reasons(
                (day > self.today(), e.DateInFuture),
                (d.reversed, e.AlreadyReversed),
                (day < d.received_on, e.InvalidField),
                (fund.closed_on(day), e.PeriodClosed),
                (remaining > available(fund.figures[d.purpose]), e.InsufficientFunds),
            )
        )
        done = self.run(
            "reverse_donation",
            refusals,
            lambda: self.app.reverse_donation(
                donation_id=d.id, reason=reason, reversed_on=reversed_on, actor="treasurer"
            ),
        )
        if done is not None and not retried:
            d.reversed = True
            d.reversal_reason = reason
            d.refunded += remaining
            fund.figures[d.purpose]["refunded"] += remaining

    @precondition(lambda self: self.donations)
    @rule(index=INDEX)
    def erase_donor(self, index: int) -> None:
        d = self.pick(self.donations, index)
        self.run("erase_donor", [], lambda: self.app.erase_donor(donation_id=d.id, actor="auditor"))
        d.erased = True

    # -- grants --------------------------------------------------------------------------

    @rule(
        slug=st.sampled_from(sorted(FUNDS)),
        key=st.sampled_from([f"g{i}" for i in range(8)]),
        title=st.sampled_from(["路灯", "书包"]),
        purpose=st.sampled_from([None, None, *PURPOSE_CODES]),
        amount=SMALL_AMOUNTS,
        proposer=st.sampled_from(PEOPLE),
    )
    def propose_grant(
        self, slug: str, key: str, title: str, purpose: str | None, amount: int, proposer: str
    ) -> None:
        self._propose(slug, key, title, purpose, amount, proposer)

    def _propose(
        self, slug: str, key: str, title: str, purpose: str | None, amount: int, proposer: str
    ) -> GrantModel | None:
        fund = self.funds[slug]
        content = (title, purpose or "", amount)
        existing = self.grants.get((slug, key))
        if existing is not None:
            refusals = reasons((existing.content != content, e.IdempotencyKeyReused))
        else:
            refusals = reasons(
                ((purpose or "") not in fund.figures, e.UnknownPurpose),
                (amount <= 0, e.AmountNotPositive),
            )
        recorded = self.run(
            "propose_grant",
            refusals,
            lambda: self.app.propose_grant(
                slug=slug,
                key=key,
                title=title,
                purpose=purpose,
                grantee_name="村委",
                amount_minor=amount,
                actor=proposer,
            ),
        )
        if recorded is None:
            return None
        assert recorded.created is (existing is None)
        if existing is not None:
            assert recorded.value.id == existing.id
            return existing
        grant = GrantModel(
            slug=slug,
            id=recorded.value.id,
            content=content,
            purpose=purpose or "",
            amount=amount,
            proposer=proposer,
        )
        self.grants[(slug, key)] = grant
        return grant

    @precondition(lambda self: self.grants)
    @rule(index=INDEX, who=APPROVERS, focus=st.booleans())
    def approve_grant(self, index: int, who: int | str, focus: bool) -> None:
        g = self.pick_grant(index, focus, "proposed")
        committee = self.funds[g.slug].committee
        self._approve(g, who if isinstance(who, str) else committee[who % len(committee)])

    @precondition(lambda self: any(g.status == "proposed" for g in self.grants.values()))
    @rule(index=INDEX)
    def approve_by_the_committee(self, index: int) -> None:
        """Every member in turn (one command each) until the grant is decided or refused."""
        self._approve_by_the_committee(self.pick_grant(index, True, "proposed"))

    def _approve_by_the_committee(self, g: GrantModel) -> None:
        for member in list(self.funds[g.slug].committee):
            if g.status != "proposed" or not self._approve(g, member):
                break

    def _approve(self, g: GrantModel, member: str) -> bool:
        fund = self.funds[g.slug]
        refusals = reasons(
            (g.status != "proposed", e.InvalidState),
            (member not in fund.committee, e.NotCommitteeMember),
            (member == g.proposer, e.SelfApproval),
            (member in g.approvals, e.AlreadyApproved),
        )
        # Only the approval that reaches the threshold commits, and only if the money is there.
        counted = sum(1 for a in [*g.approvals, member] if a in fund.committee)
        commits = not refusals and counted >= fund.required
        if commits and g.amount > available(fund.figures[g.purpose]):
            refusals = [e.InsufficientFunds]
        approved = self.run(
            "approve_grant", refusals, lambda: self.app.approve_grant(grant_id=g.id, actor=member)
        )
        if approved is None:
            return False
        g.approvals.append(member)
        if commits:
            g.status = "committed"
            g.committed = g.amount
            g.committed_on = self.today()
            fund.figures[g.purpose]["committed"] += g.amount
        assert approved.status == g.status
        return True

    @precondition(lambda self: self.grants)
    @rule(index=INDEX, actor=st.sampled_from(PEOPLE), focus=st.booleans())
    def reject_grant(self, index: int, actor: str, focus: bool) -> None:
        g = self.pick_grant(index, focus, "proposed")
        done = self.run(
            "reject_grant",
            reasons(
                (actor not in self.funds[g.slug].committee, e.NotCommitteeMember),
                (g.status != "proposed", e.InvalidState),
            ),
            lambda: self.app.reject_grant(grant_id=g.id, reason="不批", actor=actor),
        )
        if done is not None:
            g.status = "rejected"

    @precondition(lambda self: self.grants)
    @rule(index=INDEX, cancel=st.booleans(), focus=st.booleans(), actor=st.sampled_from(PEOPLE))
    def end_grant(self, index: int, cancel: bool, focus: bool, actor: str) -> None:
        """A member of the committee cancels; the treasurer (any actor: not checked) closes."""
        g = self.pick_grant(index, focus, "committed")
        end = self.app.cancel_grant if cancel else self.app.close_grant
        done = self.run(
            "cancel_grant" if cancel else "close_grant",
            reasons(
                (cancel and actor not in self.funds[g.slug].committee, e.NotCommitteeMember),
                (g.status != "committed", e.InvalidState),
            ),
            lambda: end(grant_id=g.id, reason="结束", actor=actor),
        )
        if done is None:
            return
        released = g.committed - g.disbursed
        g.status = "cancelled" if cancel else "closed"
        g.released += released
        self.funds[g.slug].figures[g.purpose]["released"] += released

    @precondition(lambda self: self.grants)
    @rule(
        index=INDEX,
        key=st.sampled_from(["p0", "p1", "p2", "p3"]),
        amount=st.one_of(AMOUNTS, st.just(-1), st.just(-1)),  # -1: what remains (+ extra)
        extra=st.sampled_from([0, 0, 1]),  # 1: one fen over the limit
        offset=MAYBE_DAY_OFFSETS,
        focus=st.booleans(),
    )
    def disburse(
        self, index: int, key: str, amount: int, extra: int, offset: int | None, focus: bool
    ) -> None:
        g = self.pick_grant(index, focus, "committed")
        fund = self.funds[g.slug]
        committed = g.status == "committed"
        remaining = g.committed - g.disbursed if committed else 0
        if amount == -1:
            amount = remaining + extra
        paid_on = None if offset is None else self.day(offset)
        day = paid_on or self.today()
        content = (amount, str(paid_on))
        if key in g.payments:
            refusals = reasons((g.payments[key][0] != content, e.IdempotencyKeyReused))
        else:
            refusals = reasons(
                (day > self.today(), e.DateInFuture),
                (not committed, e.InvalidState),
                (amount <= 0, e.AmountNotPositive),
                (committed and amount > remaining, e.GrantOverdrawn),
                # (a correction of history: a tranche is never dated before the commitment)
                (committed and g.committed_on is not None and day < g.committed_on, e.InvalidField),
                (fund.closed_on(day), e.PeriodClosed),
            )
        recorded = self.run(
            "disburse",
            refusals,
            lambda: self.app.disburse(
                grant_id=g.id,
                key=key,
                amount_minor=amount,
                paid_on=paid_on,
                method="bank",
                reference="TX",
                actor="treasurer",
            ),
        )
        if recorded is None:
            return
        if key in g.payments:
            assert recorded.created is False
            assert recorded.value.tranche_no == g.payments[key][1]
            return
        assert recorded.created is True
        g.tranches.append([amount, 0])
        g.tranche_dates.append(day)
        assert recorded.value.tranche_no == len(g.tranches)
        g.payments[key] = (content, len(g.tranches))
        g.disbursed += amount
        fund.figures[g.purpose]["disbursed"] += amount

    @precondition(lambda self: any(g.status == "committed" for g in self.grants.values()))
    @rule(
        index=INDEX,
        key=st.sampled_from([f"p{i}" for i in range(10)]),
        part=st.sampled_from([1, 2, 3, 1_000]),
        offset=st.one_of(st.none(), st.integers(-20, 0)),
    )
    def disburse_a_part(self, index: int, key: str, part: int, offset: int | None) -> None:
        """A tranche of a committed grant: a part of what remains (1 000: one fen)."""
        g = self.pick_grant(index, True, "committed")
        remaining = g.committed - g.disbursed
        self.disburse(index, key, max(1, remaining // part), 0, offset, True)

    @precondition(lambda self: any(g.tranches for g in self.grants.values()))
    @rule(index=INDEX, tranche=st.integers(0, 5), offset=MAYBE_DAY_OFFSETS)
    def reverse_disbursement(self, index: int, tranche: int, offset: int | None) -> None:
        g = self.pick({k: v for k, v in self.grants.items() if v.tranches}, index)
        fund = self.funds[g.slug]
        tranche_no = tranche or len(g.tranches)  # 0: the latest
        exists = 1 <= tranche_no <= len(g.tranches)
        reversed_on = None if offset is None else self.day(offset)
        day = reversed_on or self.today()
        done = self.run(
            "reverse_disbursement",
            reasons(
                (day > self.today(), e.DateInFuture),
                (not exists, e.TrancheNotFound),
                (exists and bool(g.tranches[tranche_no - 1][1]), e.AlreadyReversed),
                (exists and day < g.tranche_dates[tranche_no - 1], e.InvalidField),
                (fund.closed_on(day), e.PeriodClosed),
            ),
            lambda: self.app.reverse_disbursement(
                grant_id=g.id,
                tranche_no=tranche_no,
                reason="退票",
                reversed_on=reversed_on,
                actor="treasurer",
            ),
        )
        if done is None:
            return
        amount = g.tranches[tranche_no - 1][0]
        g.tranches[tranche_no - 1][1] = 1
        # On a grant already ended the money goes straight back to the fund.
        released = 0 if g.status == "committed" else amount
        g.disbursed -= amount
        g.released += released
        fund.figures[g.purpose]["disbursed"] -= amount
        fund.figures[g.purpose]["released"] += released

    # -- expenses ------------------------------------------------------------------------

    @rule(
        slug=st.sampled_from(sorted(FUNDS)),
        key=st.sampled_from([f"e{i}" for i in range(6)]),
        amount=SMALL_AMOUNTS,
        offset=DAY_OFFSETS,
        category=st.sampled_from(["program", "administration", "fundraising", "program", "party"]),
        purpose=st.sampled_from([None, None, *PURPOSE_CODES]),
    )
    def record_expense(
        self,
        slug: str,
        key: str,
        amount: int,
        offset: int,
        category: str,
        purpose: str | None,
    ) -> None:
        fund = self.funds[slug]
        paid_on = self.day(offset)
        code = purpose or ""
        content = (amount, paid_on, category, code)
        existing = fund.expenses.get(key)
        if existing is not None:
            refusals = reasons((existing[1] != content, e.IdempotencyKeyReused))
        else:
            known = code in fund.figures
            refusals = reasons(
                (paid_on > self.today(), e.DateInFuture),
                (amount <= 0, e.AmountNotPositive),
                (category == "party", e.InvalidField),
                (not known, e.UnknownPurpose),
                (fund.closed_on(paid_on), e.PeriodClosed),
                (known and amount > available(fund.figures[code]), e.InsufficientFunds),
            )
        recorded = self.run(
            "record_expense",
            refusals,
            lambda: self.app.record_expense(
                slug=slug,
                key=key,
                amount_minor=amount,
                category=category,
                paid_on=paid_on.isoformat(),
                payee="供应商",
                description="材料",
                purpose=purpose,
                actor="treasurer",
            ),
        )
        if recorded is None:
            return
        assert recorded.value == str(entity_id(slug, "expense", key))
        assert recorded.created is (existing is None)
        if existing is None:
            fund.expenses[key] = [recorded.value, content, amount, code, 0]
            fund.figures[code]["expenses"] += amount

    @rule(
        slug=st.sampled_from(sorted(FUNDS)),
        key=st.sampled_from([f"e{i}" for i in range(6)]),
        offset=MAYBE_DAY_OFFSETS,
    )
    def reverse_expense(self, slug: str, key: str, offset: int | None) -> None:
        fund = self.funds[slug]
        expense = fund.expenses.get(key)
        expense_id = expense[0] if expense else str(entity_id(slug, "expense", key))
        reversed_on = None if offset is None else self.day(offset)
        day = reversed_on or self.today()
        done = self.run(
            "reverse_expense",
            reasons(
                (day > self.today(), e.DateInFuture),
                (expense is None, e.ExpenseNotFound),
                (expense is not None and bool(expense[4]), e.AlreadyReversed),
                (expense is not None and day < expense[1][1], e.InvalidField),
                (fund.closed_on(day), e.PeriodClosed),
            ),
            lambda: self.app.reverse_expense(
                slug=slug,
                expense_id=expense_id,
                reason="退货",
                reversed_on=reversed_on,
                actor="treasurer",
            ),
        )
        if done is None:
            return
        assert expense is not None
        expense[4] = 1
        fund.figures[expense[3]]["expenses"] -= expense[2]

    @precondition(lambda self: self.funds)
    @rule(offset=st.integers(-90, 1))
    def figures_as_of_a_date_are_never_negative(self, offset: int) -> None:
        """The fund's figures from its own events dated up to a day (as ``?as_of=`` sums
        them): no figure below zero, nothing refunded beyond what was received, paid beyond
        what was committed, or released beyond what was committed."""
        day = self.day(offset).isoformat() if offset <= 0 else "9999-12-31"
        for slug in self.funds:
            per_purpose: dict[str, dict[str, int]] = {}
            for stored in self.app.events.get(fund_id(slug)):
                name = type(stored).__name__
                if name in EFFECTS and stored.occurred_on <= day:
                    figures = per_purpose.setdefault(stored.purpose, zero_figures())
                    apply_effect(figures, name, stored.amount_minor)
            for purpose, f in per_purpose.items():
                assert all(value >= 0 for value in f.values()), (slug, purpose, day, f)
                assert f["refunded"] <= f["received"], (slug, purpose, day, f)
                assert f["disbursed"] <= f["committed"], (slug, purpose, day, f)
                assert f["released"] <= f["committed"], (slug, purpose, day, f)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def funds_match_the_model(self) -> None:
        for slug, model in self.funds.items():
            fund = self.app.get_fund(slug)
            assert fund.figures == model.figures, slug
            assert fund.committee == model.committee
            assert fund.approvals_required == model.required
            assert set(fund.closed_periods) == model.closed
            assert fund.receipt_seq == {str(y): n for y, n in model.receipt_seq.items()}
            for purpose, f in fund.figures.items():
                on_hand = fund.on_hand_minor(purpose)
                assert fund.available_minor(purpose) >= 0, (slug, purpose, f)
                assert on_hand >= 0, (slug, purpose, f)
                # Money in = money out + what is still held.
                assert f["received"] == f["refunded"] + f["disbursed"] + f["expenses"] + on_hand
                # What is held and not available is committed and not yet paid.
                assert on_hand - fund.available_minor(purpose) == (
                    f["committed"] - f["released"] - f["disbursed"]
                )

    @invariant()
    def grants_and_donations_match_the_model(self) -> None:
        for g in self.grants.values():
            grant = self.app.get_grant(g.id)
            assert grant.status == g.status
            assert [a["member"] for a in grant.approvals] == g.approvals
            assert (grant.committed_minor, grant.disbursed_minor, grant.released_minor) == (
                g.committed,
                g.disbursed,
                g.released,
            )
            assert 0 <= grant.disbursed_minor <= grant.committed_minor
            assert [[t.amount_minor, int(t.reversed)] for t in grant.tranches] == g.tranches
        for d in self.donations.values():
            donation = self.app.get_donation(d.id)
            assert (donation.refunded_minor, donation.reversed) == (d.refunded, d.reversed)
            assert donation.receipt_no == d.receipt_no
            assert donation.donor_erased is d.erased
            details = self.app.donor_details(donation)
            if d.erased or d.personal == (None, None):
                assert details is None
            else:
                assert details is not None
                assert (details.name, details.contact) == d.personal

    def teardown(self) -> None:
        try:
            if self.funds:
                self._check_replay()
        finally:
            self.app.close()
            self.tmp.cleanup()

    def _check_replay(self) -> None:
        """Every aggregate rebuilt from all its stored events equals the live one."""
        live: dict[Any, Any] = {fund_id(s): self.app.get_fund(s) for s in self.funds}
        live.update({g.id: self.app.get_grant(g.id) for g in self.grants.values()})
        live.update({d.id: self.app.get_donation(d.id) for d in self.donations.values()})
        for aggregate_id, aggregate in live.items():
            replayed = None
            for domain_event in self.app.events.get(aggregate_id):
                replayed = domain_event.mutate(replayed)
            assert replayed is not None
            assert vars(replayed) == vars(aggregate), type(aggregate).__name__


TestLedger = LedgerMachine.TestCase
# max_examples and deadline come from the profile loaded in conftest (HYPOTHESIS_PROFILE).
TestLedger.settings = settings(stateful_step_count=STEPS_MAX)
