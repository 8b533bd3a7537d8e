"""The FundOpening aggregate: the record of the idempotency key that opened a fund.

A fund's id comes from its slug, not from the client's key, so the key needs a record of its
own to be idempotent: its id is ``uuid5(NAMESPACE, f"fund-opening:{key}")``, and it is saved
in the same write as the fund it opened. Two openings with one key (say twenty concurrent
retries, each with another slug) therefore meet at the event store's uniqueness: one write
succeeds, the others conflict, run again, find the record and answer from it (the same
content: the original fund; other content: ``IdempotencyKeyReused``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ledger.domain.common import KEY_LEN_MAX, NAMESPACE, check_text


def opening_id(key: str) -> UUID:
    """The id of the record of the fund opening made with the idempotency key ``key``."""
    check_text("idempotency key", key, max_len=KEY_LEN_MAX)
    return uuid5(NAMESPACE, f"fund-opening:{key}")


class FundOpening(Aggregate):
    """One idempotency key of a fund opening: the fund it opened and the request's hash."""

    @staticmethod
    def create_id(key: str) -> Any:
        return opening_id(key)

    @event("Recorded")
    def __init__(self, *, key: str, slug: str, request_sha256: str, actor: str) -> None:
        self.key = key
        self.slug = slug
        self.request_sha256 = request_sha256
