"""Helpers for the read-model tests (no tests here): database fixtures, a random but valid
ledger history built with the application's commands, and a dump of every read-model row.

Imported by the read-model tests (``tests/integration/test_projections*``, ``tests/engine``):
pytest puts ``tests/`` on ``sys.path`` (the folder of its ``conftest.py``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from ledger.application import DonorIn, LedgerApp
from ledger.domain.errors import LedgerError
from projections.db import make_engine
from projections.donations import DonationsProjection
from projections.projection import Projection
from projections.tables import LIVE, Tables
from projections.tracking import projection_state

TEA = "tea-village"
TEA_COMMITTEE = ["李主任", "王会计", "张村长"]
TEA_PURPOSES = [{"code": "elderly-care", "name": "养老"}, {"code": "education", "name": "教育"}]
DONORS = ["张三", "王小明", "李四", "赵丽华", "John Smith"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A SQLite file or a PostgreSQL schema of the test's own."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def open_tea(app: LedgerApp, slug: str = TEA) -> None:
    app.open_fund(
        slug=slug,
        name="茶乡振兴基金",
        currency="CNY",
        description="牌坊村的社区基金",
        host="示例公益基金会",
        committee=list(TEA_COMMITTEE),
        approvals_required=2,
        purposes=[dict(p) for p in TEA_PURPOSES],
        actor="admin",
    )


def instant() -> datetime:
    """Now, strictly between the events recorded before and after the call."""
    time.sleep(0.002)
    moment = datetime.now(UTC)
    time.sleep(0.002)
    return moment


@dataclass
class History:
    """What a random history did, for tests to pick from."""

    app: LedgerApp
    rng: random.Random
    slugs: list[str] = field(default_factory=list)
    donations: list[tuple[str, str]] = field(default_factory=list)  # (slug, donation id)
    grants: list[str] = field(default_factory=list)
    expenses: list[tuple[str, str]] = field(default_factory=list)
    keys: int = 0
    notes_rng: random.Random = field(default_factory=lambda: random.Random(0))
    notes: int = 0
    done: int = 0  # commands that recorded something
    refused: int = 0  # commands the domain refused (fine: that is part of the history)

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    def day(self) -> date:
        """A business date this year, up to today (2026-11-27 on the test clock)."""
        return date(2026, 1, 1) + timedelta(days=self.rng.randrange(0, 330))

    def step(self) -> None:
        """One random command; a refusal by the domain is counted, not raised."""
        actions: list[tuple[float, Callable[[], Any]]] = [
            (0.40, self.donate),
            (0.06, self.refund),
            (0.03, self.reverse_donation),
            (0.12, self.expense),
            (0.04, self.reverse_expense),
            (0.08, self.propose),
            (0.12, self.approve),
            (0.09, self.disburse),
            (0.02, self.reverse_disbursement),
            (0.03, self.end_grant),
            (0.01, self.close_period),
        ]
        (action,) = self.rng.choices([a for _, a in actions], weights=[w for w, _ in actions], k=1)
        try:
            action()
            self.done += 1
        except LedgerError:
            self.refused += 1
        # Progress notes draw on a generator of their own: the histories of the other
        # commands stay what they were before notes existed.
        if self.notes_rng.random() < 0.05:
            try:
                self.progress()
                self.done += 1
            except LedgerError:
                self.refused += 1

    def run(self, steps: int) -> History:
        for _ in range(steps):
            self.step()
        return self

    def donate(self) -> None:
        slug = self.rng.choice(self.slugs)
        anonymous = self.rng.random() < 0.25
        in_kind = self.rng.random() < 0.05
        result = self.app.record_donation(
            slug=slug,
            key=self.key(),
            amount_minor=self.rng.randrange(100, 200_000),
            received_on=self.day(),
            channel="in_kind" if in_kind else self.rng.choice(["cash", "bank", "wechat"]),
            purpose=self.rng.choice([None, None, "elderly-care", "education"]),
            donor=DonorIn(
                name=None if anonymous else self.rng.choice(DONORS),
                contact=None if anonymous else "138-0000-0000",
                anonymous=anonymous,
            ),
            external_ref=f"BANK-{self.keys}" if self.rng.random() < 0.3 else None,
            note="捐给村里的老人" if self.rng.random() < 0.2 else "",
            in_kind={"description": "大米 50 斤", "valuation_basis": "市场价"} if in_kind else None,
            actor="treasurer",
        )
        self.donations.append((slug, str(result.value.id)))

    def refund(self) -> None:
        if not self.donations:
            return self.donate()
        _, donation_id = self.rng.choice(self.donations)
        donation = self.app.get_donation(donation_id)
        amount = max(1, donation.remaining_minor // self.rng.choice([1, 2, 3]))
        self.app.refund_donation(
            donation_id=donation_id,
            key=self.key(),
            amount_minor=amount,
            refunded_on=max(self.day(), date.fromisoformat(donation.received_on)),
            reason="捐赠人要求退款",
            actor="treasurer",
        )
        return None

    def reverse_donation(self) -> None:
        if not self.donations:
            return self.donate()
        _, donation_id = self.rng.choice(self.donations)
        self.app.reverse_donation(donation_id=donation_id, reason="录入错误", actor="treasurer")
        return None

    def expense(self) -> None:
        slug = self.rng.choice(self.slugs)
        expense = self.app.record_expense(
            slug=slug,
            key=self.key(),
            amount_minor=self.rng.randrange(100, 30_000),
            category=self.rng.choice(["program", "administration", "fundraising"]),
            paid_on=self.day(),
            payee="村委会",
            description="办公用品",
            purpose=self.rng.choice([None, None, "elderly-care"]),
            actor="treasurer",
        )
        self.expenses.append((slug, expense.value))

    def reverse_expense(self) -> None:
        if not self.expenses:
            return self.expense()
        slug, expense_id = self.rng.choice(self.expenses)
        self.app.reverse_expense(
            slug=slug, expense_id=expense_id, reason="重复录入", actor="treasurer"
        )
        return None

    def propose(self) -> None:
        slug = self.rng.choice(self.slugs)
        grant = self.app.propose_grant(
            slug=slug,
            key=self.key(),
            title="村道修缮",
            grantee_name="牌坊村村民委员会",
            purpose=self.rng.choice([None, "education"]),
            amount_minor=self.rng.randrange(1_000, 300_000),
            actor=TEA_COMMITTEE[0],
        )
        self.grants.append(str(grant.value.id))

    def approve(self) -> None:
        if not self.grants:
            return self.propose()
        grant_id = self.rng.choice(self.grants)
        self.app.approve_grant(
            grant_id=grant_id, note="同意", actor=self.rng.choice(TEA_COMMITTEE[1:])
        )
        return None

    def disburse(self) -> None:
        if not self.grants:
            return self.propose()
        grant_id = self.rng.choice(self.grants)
        grant = self.app.get_grant(grant_id)
        remaining = grant.remaining_minor
        self.app.disburse(
            grant_id=grant_id,
            key=self.key(),
            amount_minor=max(1, remaining // self.rng.choice([1, 2])),
            paid_on=self.day(),
            method="bank",
            reference=f"TR-{self.keys}",
            actor="treasurer",
        )
        return None

    def reverse_disbursement(self) -> None:
        if not self.grants:
            return self.propose()
        grant_id = self.rng.choice(self.grants)
        grant = self.app.get_grant(grant_id)
        if not grant.tranches:
            return self.disburse()
        self.app.reverse_disbursement(
            grant_id=grant_id,
            tranche_no=self.rng.randrange(1, len(grant.tranches) + 1),
            reason="退票",
            actor="treasurer",
        )
        return None

    def end_grant(self) -> None:
        if not self.grants:
            return self.propose()
        grant_id = self.rng.choice(self.grants)
        if self.rng.random() < 0.5:
            self.app.close_grant(grant_id=grant_id, reason="项目完成", actor=TEA_COMMITTEE[0])
        else:
            self.app.cancel_grant(grant_id=grant_id, reason="项目取消", actor=TEA_COMMITTEE[0])
        return None

    def progress(self) -> None:
        if not self.grants:
            return None
        rng = self.notes_rng
        grant_id = rng.choice(self.grants)
        grant = self.app.get_grant(grant_id)
        self.notes += 1
        self.app.record_progress(
            grant_id=grant_id,
            key=f"note-{self.notes}",
            reported_on=grant.proposed_on,
            note="项目进展：已完成一半",
            evidence_sha256=[f"{self.notes:064x}"] if rng.random() < 0.5 else [],
            final=grant.status in ("closed", "cancelled") and rng.random() < 0.5,
            actor="treasurer",
        )
        return None

    def close_period(self) -> None:
        slug = self.rng.choice(self.slugs)
        month = self.rng.randrange(1, 6)
        self.app.close_period(slug=slug, period=f"2026-{month:02d}", actor="treasurer")


def new_history(app: LedgerApp, *, seed: int = 1, funds: int = 2) -> History:
    history = History(app=app, rng=random.Random(seed))
    for i in range(funds):
        slug = TEA if i == 0 else f"{TEA}-{i}"
        open_tea(app, slug)
        if i == 0:
            app.record_host_details(
                slug=slug,
                name="示例公益基金会",
                credit_code="53100000500021676K",
                public_fundraising=True,
                actor="admin",
            )
        history.slugs.append(slug)
    return history


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every live read-model table, in key order."""
    out = {}
    with engine.connect() as conn:
        for name, table in LIVE.by_base_name().items():
            query = select(table).order_by(*table.primary_key.columns)
            out[name] = [tuple(row) for row in conn.execute(query)]
    return out


def positions(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(projection_state.c.name, projection_state.c.position))
        return {name: int(position) for name, position in rows}


# -- faults, injected where a read model or the database would raise ------------------------


def break_handlers(projection: Projection, fail: Callable[[int], BaseException | None]) -> None:
    """Make each handler of ``projection`` raise what ``fail(notification_id)`` returns
    (None: handle the event as usual)."""
    for topic, handle in list(projection.handlers.items()):

        def broken(notification_id: int, oid: str, e: Any, handle: Any = handle) -> None:
            error = fail(notification_id)
            if error is not None:
                raise error
            handle(notification_id, oid, e)

        projection.handlers[topic] = broken


class FailingAfter:
    """``fail`` for ``break_handlers``: the ``events``-th call and after raise ``error``."""

    def __init__(self, events: int, error: BaseException) -> None:
        self.left = events
        self.error = error

    def __call__(self, notification_id: int) -> BaseException | None:
        self.left -= 1
        return self.error if self.left < 0 else None


class DonationsOnAFullDisk(DonationsProjection):
    """The donations read model on a disk that fills up: its 25th event raises (module
    level: a rebuild's worker process imports it by name)."""

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        break_handlers(self, FailingAfter(25, RuntimeError("the disk is full")))


def replaced(
    projections: Sequence[type[Projection]], *by: type[Projection]
) -> list[type[Projection]]:
    """``projections`` with those of the same name replaced ``by`` these."""
    names = {p.name: p for p in by}
    return [names.get(p.name, p) for p in projections]
