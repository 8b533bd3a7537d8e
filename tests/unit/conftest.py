"""Builders shared by the domain unit tests: aggregates made directly, no application, no I/O.

The builders are handed to tests as factory fixtures (a test asks for ``open_fund`` and calls
it), so no test module imports this file. Builders that set up history collect its events, so
a test sees only the events of the command it is about ("given events, when command, then
events").
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate

from ledger.domain.donation import Donation
from ledger.domain.fund import Fund
from ledger.domain.grant import Grant

ACTOR = "treasurer"
COMMITTEE = ["alice", "bob", "carol"]
DAY = date(2024, 3, 15)
SHA = "0" * 64


def open_fund(**overrides: Any) -> Fund:
    fields: dict[str, Any] = {
        "slug": "river-fund",
        "name": "River community fund",
        "currency": "CNY",
        "description": "",
        "host": "Host charity",
        "committee": list(COMMITTEE),
        "approvals_required": 2,
        "purposes": [
            {"code": "elderly-care", "name": "养老"},
            {"code": "school", "name": "助学"},
        ],
        "actor": ACTOR,
        "request_sha256": SHA,
    }
    fields.update(overrides)
    return Fund.open(**fields)


def funded(*credits: tuple[str, int], on: date = DAY, **overrides: Any) -> Fund:
    """A fund given donations ``(purpose, amount_minor)``, with its setup events collected."""
    fund = open_fund(**overrides)
    for purpose, amount_minor in credits:
        fund.credit_donation(
            donation_id=str(uuid4()),
            amount_minor=amount_minor,
            purpose=purpose,
            received_on=on,
            actor=ACTOR,
        )
    fund.collect_events()
    return fund


def receive_donation(**overrides: Any) -> Donation:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "fund_id": str(uuid4()),
        "fund_slug": "river-fund",
        "currency": "CNY",
        "amount_minor": 10_000,
        "received_on": DAY,
        "channel": "bank",
        "purpose": "",
        "donor_id": str(uuid4()),
        "donor_public_name": "张*",
        "donor_anonymous": False,
        "donor_sealed": "sealed-bytes",
        "external_ref": None,
        "receipt_no": "river-fund-2024-000001",
        "note": "",
        "in_kind": None,
        "actor": ACTOR,
        "request_sha256": SHA,
    }
    fields.update(overrides)
    return Donation.receive(**fields)


def propose_grant(**overrides: Any) -> Grant:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "fund_id": str(uuid4()),
        "fund_slug": "river-fund",
        "currency": "CNY",
        "title": "School lunches",
        "description": "",
        "purpose": "",
        "grantee_name": "Village school",
        "grantee_id": None,
        "amount_minor": 10_000,
        "proposed_on": DAY,
        "actor": "alice",
        "request_sha256": SHA,
    }
    fields.update(overrides)
    return Grant.propose(**fields)


def committed_grant(**overrides: Any) -> Grant:
    """A grant proposed by alice, approved by bob and carol, committed; events collected."""
    grant = propose_grant(**overrides)
    for member in ("bob", "carol"):
        grant.approve(member=member, committee=COMMITTEE, note="", approved_on=DAY)
    grant.commit(committed_on=DAY, actor="carol")
    grant.collect_events()
    return grant


def disburse(grant: Grant, amount_minor: int, **overrides: Any) -> int:
    fields: dict[str, Any] = {
        "tranche_id": str(uuid4()),
        "amount_minor": amount_minor,
        "paid_on": DAY,
        "method": "bank",
        "reference": "TX-1",
        "evidence_sha256": None,
        "actor": ACTOR,
        "request_sha256": SHA,
    }
    fields.update(overrides)
    return grant.disburse(**fields)


def event_names(aggregate: Aggregate) -> list[str]:
    """Collect the pending events and name them (``Fund.DonationCredited``)."""
    return [type(e).__qualname__ for e in aggregate.collect_events()]


def replayed(events: list[Any]) -> Any:
    """The aggregate rebuilt from its events alone, as the event store would."""
    return project_aggregate(None, events)


@pytest.fixture(name="open_fund")
def _open_fund() -> Any:
    return open_fund


@pytest.fixture(name="funded")
def _funded() -> Any:
    return funded


@pytest.fixture(name="receive_donation")
def _receive_donation() -> Any:
    return receive_donation


@pytest.fixture(name="propose_grant")
def _propose_grant() -> Any:
    return propose_grant


@pytest.fixture(name="committed_grant")
def _committed_grant() -> Any:
    return committed_grant


@pytest.fixture(name="disburse")
def _disburse() -> Any:
    return disburse


@pytest.fixture(name="event_names")
def _event_names() -> Any:
    return event_names


@pytest.fixture(name="replayed")
def _replayed() -> Any:
    return replayed
