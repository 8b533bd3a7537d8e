"""Rich histories: long, valid, deterministic lives of community funds, for tests and
benchmarks.

``record_history(app, seed=..., movements=...)`` records funds and their history until
``movements`` money movements (the Fund's money events: one journal line each) are in the
log. The same seed gives the same history: the same keys, amounts, dates, donors, grantees.
Everything a cross-check needs happens in it:

- donations of every channel (cash, bank, WeChat, Alipay, other) and **in-kind gifts** with
  their description and valuation basis, unrestricted or **restricted to a purpose**, from
  named, masked and anonymous donors;
- **refunds** (partial and whole) and **reversals** of donations recorded in error;
- grants **rejected**, **committed and paid** in one to three tranches, a tranche **bounced**
  (reversed) and paid again, grants **closed with money unspent** (released), **cancelled**
  grants (the undisbursed amount released);
- **expenses of each category** (program, administration, fundraising), some drawn from a
  purpose, some **reversed**;
- **back-dated entries** into months still open, and **closed months**: on the fifth of each
  month the month before last is closed, so a correction of it is dated in an open month.

Two ways to record, one history:

- ``bulk=False`` (tests): each step is one of the application's use cases
  (``app.record_donation``, ``app.approve_grant``, ...), with the application's clock set to
  the step's business day, as ``ledger.demo`` does: every rule of the service layer applies.
- ``bulk=True`` (benchmarks: 100,000 movements in seconds, not minutes): the same steps run
  the domain's own commands on aggregates kept in memory, and their events are written through
  the application's mapper and recorder in large transactions (``app.events.put``), as
  ``benchmarks/rebuild.py`` does. Every event is still valid (the aggregates decide), but
  the service layer's idempotency fingerprints are left blank.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

from ledger.application import DonorIn, LedgerApp
from ledger.domain.common import period_of
from ledger.histories.cast import (
    CATEGORIES,
    CHANNELS,
    COMMITTEE,
    GIVEN,
    GRANTEES,
    PURPOSES,
    SURNAMES,
    TREASURER,
)
from ledger.histories.recorders import Bulk, UseCases

MOVEMENTS_MAX = 10_000_000
FUNDS_MAX = 100
RECENT_MAX = 400  # donations / expenses kept as candidates for a correction
START = date(2025, 1, 6)
DAYS = 120  # the business days a history spans by default
BACKDATE_DAYS_MAX = 20


@dataclass
class HistoryCounts:
    """What a recorded history holds, by kind of step (for tests to check its richness)."""

    funds: int = 0
    movements: int = 0
    donations: int = 0
    in_kind: int = 0
    restricted: int = 0
    refunds: int = 0
    reversals: int = 0
    grants_proposed: int = 0
    grants_rejected: int = 0
    grants_committed: int = 0
    grants_closed_unspent: int = 0
    grants_cancelled: int = 0
    tranches: int = 0
    tranches_bounced: int = 0
    expenses: dict[str, int] = field(default_factory=dict)
    expenses_reversed: int = 0
    backdated: int = 0
    periods_closed: int = 0
    slugs: list[str] = field(default_factory=list)
    last_day: date = START


@dataclass
class _Gift:
    id: str
    purpose: str
    received_on: date
    remaining_minor: int
    reversible: bool


@dataclass
class _Tranche:
    no: int
    amount_minor: int
    reversed: bool = False


@dataclass
class _Grant:
    id: str
    purpose: str
    amount_minor: int
    proposer: str
    approvals: list[str] = field(default_factory=list)
    committed: bool = False
    tranches: list[_Tranche] = field(default_factory=list)
    plan: str = "close"  # how it ends: close (all paid or some unspent), cancel, reject

    @property
    def disbursed_minor(self) -> int:
        return sum(t.amount_minor for t in self.tranches if not t.reversed)


@dataclass
class _FundPlan:
    slug: str
    seq: int = 0
    gifts: list[_Gift] = field(default_factory=list)
    grants: list[_Grant] = field(default_factory=list)
    expenses: list[tuple[str, date]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def key(self, kind: str) -> str:
        self.seq += 1
        return f"h-{kind}-{self.seq:07d}"


class _Recorder(Protocol):
    """How a step is recorded: through the use cases, or in bulk on the domain."""

    def open_fund(self, slug: str, name: str, day: date) -> None: ...
    def available_minor(self, slug: str, purpose: str) -> int: ...
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
    ) -> str: ...
    def refund(
        self, *, slug: str, donation_id: str, key: str, amount_minor: int, day: date
    ) -> None: ...
    def reverse_donation(self, *, donation_id: str, day: date) -> None: ...
    def propose(
        self, *, slug: str, key: str, purpose: str, grantee: str, amount_minor: int, day: date
    ) -> str: ...
    def approve(self, *, grant_id: str, member: str, day: date) -> bool: ...
    def reject(self, *, grant_id: str, member: str, day: date) -> None: ...
    def disburse(
        self, *, slug: str, grant_id: str, key: str, amount_minor: int, day: date, method: str
    ) -> int: ...
    def reverse_tranche(self, *, grant_id: str, tranche_no: int, day: date) -> None: ...
    def end_grant(self, *, grant_id: str, cancel: bool, day: date) -> None: ...
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
    ) -> str: ...
    def reverse_expense(self, *, slug: str, expense_id: str, day: date) -> None: ...
    def close_period(self, *, slug: str, period: str, day: date) -> None: ...
    def finish(self) -> None: ...


def record_history(
    app: LedgerApp,
    *,
    seed: int = 1,
    movements: int = 300,
    funds: int = 1,
    start: date = START,
    days: int = DAYS,
    bulk: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> HistoryCounts:
    """Record ``funds`` funds (``h1-fund``, ``h2-fund``, ...) and their history until about
    ``movements`` money movements are recorded (a few more: the last step's). The business
    dates start at ``start`` and advance with the history over about ``days`` days; the last
    one is in ``HistoryCounts.last_day``. Record into an empty store."""
    if not 1 <= movements <= MOVEMENTS_MAX:
        raise ValueError(f"movements must be 1..{MOVEMENTS_MAX}")
    if not 1 <= funds <= FUNDS_MAX:
        raise ValueError(f"funds must be 1..{FUNDS_MAX}")
    if not 1 <= days <= 36_500:
        raise ValueError("days must be 1..36500")
    recorder: _Recorder = Bulk(app) if bulk else UseCases(app)
    planner = _Planner(recorder, random.Random(seed), movements, funds, start, days, progress)
    return planner.run()


class _Planner:
    """Chooses each step from the seed and the history so far; the recorder records it."""

    def __init__(
        self,
        recorder: _Recorder,
        rng: random.Random,
        movements: int,
        funds: int,
        start: date,
        days: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.r = recorder
        self.days = days
        self.rng = rng
        self.target = movements
        self.start = start
        self.progress = progress
        self.counts = HistoryCounts()
        self.plans = [_FundPlan(slug=f"h{i + 1}-fund") for i in range(funds)]
        self.today = start

    # -- the run -------------------------------------------------------------------------

    def run(self) -> HistoryCounts:
        for i, plan in enumerate(self.plans):
            self.r.open_fund(plan.slug, f"社区基金 {i + 1} 号", self.start - timedelta(days=3))
            self.counts.funds += 1
            self.counts.slugs.append(plan.slug)
        reported = 0
        while self.counts.movements < self.target:
            elapsed = self.counts.movements * self.days // self.target
            self._advance_to(self.start + timedelta(days=elapsed))
            self._step(self.rng.choice(self.plans))
            if self.progress is not None and self.counts.movements - reported >= 10_000:
                reported = self.counts.movements
                self.progress(reported, self.target)
        self.r.finish()
        self.counts.last_day = self.today
        return self.counts

    def _advance_to(self, day: date) -> None:
        """Move the clock on; on the fifth of a month, close the month before last."""
        while self.today < day:
            self.today += timedelta(days=1)
            if self.today.day == 5:
                first = self.today.replace(day=1)
                before_last = period_of((first - timedelta(days=1)).replace(day=1) - timedelta(1))
                if before_last >= period_of(self.start):
                    for plan in self.plans:
                        self.r.close_period(slug=plan.slug, period=before_last, day=self.today)
                        plan.closed.append(before_last)
                        self.counts.periods_closed += 1

    def _step(self, plan: _FundPlan) -> None:
        x = self.rng.random()
        if x < 0.55 or not plan.gifts:
            self._donate(plan)
        elif x < 0.59:
            self._refund(plan)
        elif x < 0.61:
            self._reverse_donation(plan)
        elif x < 0.75:
            self._expense(plan)
        elif x < 0.77:
            self._reverse_expense(plan)
        else:
            self._grant_step(plan)

    def _day(self, plan: _FundPlan, *, not_before: date | None = None) -> date:
        """Today, or (one time in eight) a day back in a month still open."""
        day = self.today
        if self.rng.random() < 0.125:
            back = self.today - timedelta(days=self.rng.randrange(1, BACKDATE_DAYS_MAX + 1))
            while period_of(back) in plan.closed:
                back += timedelta(days=1)
            if back < day:
                self.counts.backdated += 1
                day = back
        if not_before is not None and day < not_before:
            day = not_before
        return day

    def _moved(self, count: int = 1) -> None:
        self.counts.movements += count

    # -- money in ------------------------------------------------------------------------

    def _donate(self, plan: _FundPlan) -> None:
        rng = self.rng
        purpose = rng.choice(("", "", "", PURPOSES[0][0], PURPOSES[1][0], PURPOSES[2][0]))
        in_kind = None
        channel = rng.choice(CHANNELS)
        amount = rng.choice((1_000, 5_000, 10_000, 20_000, 50_000, 100_000)) + rng.randrange(
            0, 100
        ) * rng.choice((0, 100))
        if rng.random() < 0.03:
            channel = "in_kind"
            count = rng.randrange(50, 2_000)
            amount = count * 150
            in_kind = {
                "description": f"茶苗 {count} 株，用于村集体茶园补种",
                "valuation_basis": "按县农业农村局公布的当季茶苗指导价每株 1.50 元估值",
            }
        name = rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, rng.choice((1, 2))))
        anonymous = rng.random() < 0.25
        donor = DonorIn(
            name=None if anonymous and rng.random() < 0.5 else name,
            contact=f"138{rng.randrange(10**8):08d}" if rng.random() < 0.6 else None,
            anonymous=anonymous,
        )
        day = self._day(plan)
        donation_id = self.r.donate(
            slug=plan.slug,
            key=plan.key("donation"),
            amount_minor=amount,
            day=day,
            channel=channel,
            purpose=purpose,
            donor=donor,
            in_kind=in_kind,
        )
        plan.gifts.append(_Gift(donation_id, purpose, day, amount, reversible=True))
        if len(plan.gifts) > RECENT_MAX:
            del plan.gifts[: RECENT_MAX // 4]
        self.counts.donations += 1
        self.counts.in_kind += in_kind is not None
        self.counts.restricted += purpose != ""
        self._moved()

    def _refund(self, plan: _FundPlan) -> None:
        gift = self.rng.choice(plan.gifts)
        if gift.remaining_minor <= 0:
            return self._donate(plan)
        amount = max(1, gift.remaining_minor // self.rng.choice((1, 2, 4)))
        if amount > self.r.available_minor(plan.slug, gift.purpose):
            return self._donate(plan)
        day = self._day(plan, not_before=gift.received_on)
        self.r.refund(
            slug=plan.slug,
            donation_id=gift.id,
            key=plan.key("refund"),
            amount_minor=amount,
            day=day,
        )
        gift.remaining_minor -= amount
        gift.reversible = False
        self.counts.refunds += 1
        self._moved()
        return None

    def _reverse_donation(self, plan: _FundPlan) -> None:
        gift = self.rng.choice(plan.gifts)
        if not gift.reversible:
            return self._donate(plan)
        if gift.remaining_minor > self.r.available_minor(plan.slug, gift.purpose):
            return self._donate(plan)
        day = self._day(plan, not_before=gift.received_on)
        self.r.reverse_donation(donation_id=gift.id, day=day)
        plan.gifts.remove(gift)
        self.counts.reversals += 1
        self._moved()
        return None

    # -- money out -----------------------------------------------------------------------

    def _expense(self, plan: _FundPlan) -> None:
        rng = self.rng
        category = rng.choice(CATEGORIES)
        purpose = rng.choice(("", "", PURPOSES[0][0])) if category == "program" else ""
        amount = rng.randrange(500, 30_000)
        if amount > self.r.available_minor(plan.slug, purpose):
            return self._donate(plan)
        payee, description = {
            "program": ("村委会", "敬老活动物资"),
            "administration": ("农村信用合作社", "银行账户管理费"),
            "fundraising": ("县城彩印店", "募捐海报印制"),
        }[category]
        day = self._day(plan)
        expense_id = self.r.expense(
            slug=plan.slug,
            key=plan.key("expense"),
            amount_minor=amount,
            category=category,
            day=day,
            purpose=purpose,
            payee=payee,
            description=description,
        )
        plan.expenses.append((expense_id, day))
        if len(plan.expenses) > RECENT_MAX:
            del plan.expenses[: RECENT_MAX // 4]
        self.counts.expenses[category] = self.counts.expenses.get(category, 0) + 1
        self._moved()
        return None

    def _reverse_expense(self, plan: _FundPlan) -> None:
        if not plan.expenses:
            return self._expense(plan)
        expense_id, paid_on = plan.expenses.pop(self.rng.randrange(len(plan.expenses)))
        self.r.reverse_expense(
            slug=plan.slug, expense_id=expense_id, day=self._day(plan, not_before=paid_on)
        )
        self.counts.expenses_reversed += 1
        self._moved()
        return None

    # -- grants --------------------------------------------------------------------------

    def _grant_step(self, plan: _FundPlan) -> None:
        if plan.grants and (len(plan.grants) >= 6 or self.rng.random() < 0.75):
            return self._advance(plan, self.rng.choice(plan.grants))
        rng = self.rng
        purpose = rng.choice(("", "", PURPOSES[0][0], PURPOSES[1][0]))
        amount = rng.randrange(50, 400) * 1_000
        if amount > self.r.available_minor(plan.slug, purpose):
            return self._donate(plan)
        proposer = rng.choice((TREASURER, *COMMITTEE))
        grant_id = self.r.propose(
            slug=plan.slug,
            key=plan.key("grant"),
            purpose=purpose,
            grantee=rng.choice(GRANTEES),
            amount_minor=amount,
            day=self.today,
        )
        plan_end = rng.choices(("close", "reject", "cancel"), weights=(6, 1, 2))[0]
        plan.grants.append(_Grant(grant_id, purpose, amount, proposer, plan=plan_end))
        self.counts.grants_proposed += 1
        return None

    def _advance(self, plan: _FundPlan, grant: _Grant) -> None:
        """Move a grant one step on its way."""
        day = self.today
        if not grant.committed:
            if grant.plan == "reject":
                self.r.reject(grant_id=grant.id, member=COMMITTEE[0], day=day)
                plan.grants.remove(grant)
                self.counts.grants_rejected += 1
                return
            member = next(m for m in COMMITTEE if m != grant.proposer and m not in grant.approvals)
            if len(grant.approvals) + 1 >= 2 and grant.amount_minor > self.r.available_minor(
                plan.slug, grant.purpose
            ):
                self.r.reject(grant_id=grant.id, member=member, day=day)
                plan.grants.remove(grant)
                self.counts.grants_rejected += 1
                return
            grant.committed = self.r.approve(grant_id=grant.id, member=member, day=day)
            grant.approvals.append(member)
            if grant.committed:
                self.counts.grants_committed += 1
                self._moved()
            return
        remaining = grant.amount_minor - grant.disbursed_minor
        paid = [t for t in grant.tranches if not t.reversed]
        if grant.plan == "cancel" and (paid or self.rng.random() < 0.5):
            self.r.end_grant(grant_id=grant.id, cancel=True, day=day)
            self._ended(plan, grant, remaining)
            self.counts.grants_cancelled += 1
            return
        if paid and self.rng.random() < 0.12:
            tranche = paid[-1]
            self.r.reverse_tranche(grant_id=grant.id, tranche_no=tranche.no, day=day)
            tranche.reversed = True
            self.counts.tranches_bounced += 1
            self._moved()
            return
        if remaining > 0 and len(paid) < 3 and not (paid and self.rng.random() < 0.25):
            amount = remaining if len(paid) == 2 else remaining // 2
            no = self.r.disburse(
                slug=plan.slug,
                grant_id=grant.id,
                key=plan.key("tranche"),
                amount_minor=amount,
                day=day,
                method=self.rng.choice(("bank", "bank", "cash")),
            )
            grant.tranches.append(_Tranche(no, amount))
            self.counts.tranches += 1
            self._moved()
            return
        self.r.end_grant(grant_id=grant.id, cancel=False, day=day)
        self._ended(plan, grant, remaining)
        self.counts.grants_closed_unspent += remaining > 0

    def _ended(self, plan: _FundPlan, grant: _Grant, released_minor: int) -> None:
        plan.grants.remove(grant)
        if released_minor > 0:
            self._moved()
