"""Several processes' worth of writers on one fund: nothing lost, nothing broken.

A LedgerApp serialises its own commands, so real write conflicts need several apps on the
same database, like several server processes: here 4 apps with 2 threads each record
donations, propose, approve and disburse grants on ONE fund at the same time.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.domain.common import fund_id
from ledger.domain.errors import (
    AlreadyApproved,
    Conflict,
    GrantOverdrawn,
    InsufficientFunds,
    InvalidState,
    SelfApproval,
)

TEA = "tea-village"
COMMITTEE = ["李主任", "王会计", "张村长"]
APPS = 4
THREADS_PER_APP = 2
OPERATIONS_PER_THREAD = 16
JOIN_TIMEOUT_S = 180
# Refusals that concurrent grant work may meet, and that are right to meet.
EXPECTED_REFUSALS = (AlreadyApproved, InvalidState, InsufficientFunds, GrantOverdrawn, SelfApproval)


@dataclass
class Outcomes:
    lock: threading.Lock = field(default_factory=threading.Lock)
    donations: list[tuple[str, int]] = field(default_factory=list)  # (receipt_no, amount)
    grants: list[Any] = field(default_factory=list)
    committed: list[Any] = field(default_factory=list)  # grants known to be committed
    disbursed: list[tuple[Any, int]] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    failures: list[BaseException] = field(default_factory=list)

    def refuse(self, error: BaseException) -> None:
        with self.lock:
            name = type(error).__name__
            self.refused[name] = self.refused.get(name, 0) + 1


def writer(app: LedgerApp, name: str, seed: int, start: threading.Barrier, out: Outcomes):
    rng = random.Random(seed)
    start.wait(timeout=30)
    for i in range(OPERATIONS_PER_THREAD):
        try:
            step(app, name, i, rng, out)
        except EXPECTED_REFUSALS as error:
            out.refuse(error)
        except Conflict:
            with out.lock:
                out.conflicts += 1
        except BaseException as error:
            with out.lock:
                out.failures.append(error)
            return


def step(app: LedgerApp, name: str, i: int, rng: random.Random, out: Outcomes) -> None:
    kind = i % 4
    with out.lock:
        grants = list(out.grants)
        committed = list(out.committed)
    if kind == 0 or (kind >= 2 and not grants):
        amount = rng.randint(1_000, 8_000)
        recorded = app.record_donation(
            slug=TEA,
            key=f"{name}-d{i}",
            amount_minor=amount,
            received_on="2026-11-27",
            channel="wechat",
            actor=name,
        )
        assert recorded.created
        with out.lock:
            out.donations.append((recorded.value.receipt_no, amount))
    elif kind == 1:
        grant = app.propose_grant(
            slug=TEA,
            key=f"{name}-g{i}",
            title=f"项目 {name} {i}",
            grantee_name="村委",
            amount_minor=rng.randint(10_000, 40_000),
            actor="秘书",
        ).value
        with out.lock:
            out.grants.append(grant.id)
    elif kind == 2:
        grant = app.approve_grant(grant_id=rng.choice(grants), actor=rng.choice(COMMITTEE))
        if grant.committed_minor:
            with out.lock:
                out.committed.append(grant.id)
    else:
        # Mostly committed grants (so money does move), sometimes any grant (a refusal is
        # right when it is still proposed).
        grant_id = rng.choice(committed if rng.random() < 0.8 else grants)
        amount = rng.randint(2_000, 20_000)
        app.disburse(
            grant_id=grant_id,
            key=f"{name}-p{i}",
            amount_minor=amount,
            method="bank",
            reference=f"TX-{name}-{i}",
            actor=name,
        )
        with out.lock:
            out.disbursed.append((grant_id, amount))


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
def test_concurrent_writers_on_one_fund_lose_nothing(make_app: Any, store_url: str, open_tea):
    apps = [make_app(store_url) for _ in range(APPS)]
    open_tea(apps[0], committee=list(COMMITTEE))
    seed = apps[0].record_donation(
        slug=TEA,
        key="seed",
        amount_minor=50_000,
        received_on="2026-11-27",
        channel="bank",
        actor="t",
    )
    # One grant is committed before the race, so disbursements are certain to have a target;
    # more are committed during it.
    first = (
        apps[0]
        .propose_grant(
            slug=TEA,
            key="first-grant",
            title="先行项目",
            grantee_name="村委",
            amount_minor=30_000,
            actor="秘书",
        )
        .value
    )
    for member in COMMITTEE[:2]:
        apps[0].approve_grant(grant_id=first.id, actor=member)
    # Every app holds the fund in its cache before the race: the first write of any app
    # makes the others' copies stale, so conflicts are certain, not left to timing.
    for app in apps:
        app.get_fund(TEA)
    out = Outcomes(
        donations=[(seed.value.receipt_no, 50_000)], grants=[first.id], committed=[first.id]
    )
    start = threading.Barrier(APPS * THREADS_PER_APP)
    threads = [
        threading.Thread(
            target=writer,
            args=(app, f"w{a}{t}", a * 100 + t, start, out),
            name=f"writer-{a}-{t}",
            daemon=True,
        )
        for a, app in enumerate(apps)
        for t in range(THREADS_PER_APP)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT_S)
    assert not [t.name for t in threads if t.is_alive()], "writers still running (a hang?)"
    assert not out.failures, out.failures

    # A new process reads what was stored.
    reader = make_app(store_url)
    fund = reader.get_fund(TEA)
    totals = fund.totals()

    # No lost update: every donation that returned success is in the fund, and only those.
    assert totals["received"] == sum(amount for _, amount in out.donations)
    receipts = sorted(int(no.rsplit("-", 1)[1]) for no, _ in out.donations)
    assert receipts == list(range(1, len(out.donations) + 1)), "receipt gap or duplicate"
    assert fund.receipt_seq == {"2026": len(out.donations)}
    credited = [
        ev for ev in reader.events.get(fund_id(TEA)) if type(ev).__name__ == "DonationCredited"
    ]
    assert len(credited) == len(out.donations)

    # No invariant broken.
    for purpose in fund.figures:
        assert fund.available_minor(purpose) >= 0
        assert fund.on_hand_minor(purpose) >= 0
    committed = disbursed = 0
    for grant_id in out.grants:
        grant = reader.get_grant(grant_id)
        assert 0 <= grant.disbursed_minor <= grant.committed_minor, grant_id
        committed += grant.committed_minor
        disbursed += grant.disbursed_minor
        paid = sum(amount for gid, amount in out.disbursed if gid == grant_id)
        assert grant.disbursed_minor == paid, grant_id
    assert totals["committed"] == committed
    assert totals["disbursed"] == disbursed

    # The apps did meet each other: at least one command ran again after a conflict.
    assert sum(app.conflicts_retried for app in apps) > 0
    # The work did happen (the test would prove little if everything was refused).
    assert len(out.donations) > APPS * THREADS_PER_APP
    assert committed > 0
    assert disbursed > 0
