"""What the aggregates share: deterministic ids, request fingerprints, dates, limits.

Ids of created things are ``uuid5(NAMESPACE, f"{fund}:{kind}:{key}")`` where ``key`` is the
client's idempotency key, so a retried command names the same aggregate and the event
store's uniqueness refuses a second copy in the same write.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.domain.errors import InvalidDate, InvalidField, PeriodClosed

NAMESPACE = uuid5(NAMESPACE_URL, "urn:community-fund-ledger")

# Limits on what one entry may carry (enforced in the domain, documented at the edges).
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
CODE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
PERIOD_RE = re.compile(r"^[0-9]{4}-(?:0[1-9]|1[0-2])$")  # a month, YYYY-MM
SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}$")  # evidence and request hashes
KEY_LEN_MAX = 200
NAME_LEN_MAX = 200
TEXT_LEN_MAX = 2000
COMMITTEE_SIZE_MAX = 50
PURPOSES_MAX = 100
APPROVALS_REQUIRED_MAX = 20


# Made once: ``json.dumps`` with these options builds a new encoder on every call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=1024)
def fund_id(slug: str) -> UUID:
    return uuid5(NAMESPACE, f"fund:{slug}")


def entity_id(fund_slug: str, kind: str, key: str) -> UUID:
    """The id of a created thing (donation, grant, expense, refund, tranche) from its key."""
    check_text("idempotency key", key, max_len=KEY_LEN_MAX)
    return uuid5(NAMESPACE, f"{fund_slug}:{kind}:{key}")


def donor_id_for(donation_id: UUID) -> UUID:
    """Each donation has its own donor record, so erasing it touches nothing else."""
    return uuid5(donation_id, "donor")


def fingerprint(**fields: Any) -> str:
    """SHA-256 of a command's content (canonical JSON: sorted keys, no spaces, UTF-8), kept
    to answer retries. Stored events carry it, so these bytes never change (tests pin them)."""
    return hashlib.sha256(_CANONICAL_JSON.encode(fields).encode()).hexdigest()


def check_text(label: str, value: object, *, max_len: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidField(f"{label} must be text", field=label)
    if required and not value.strip():
        raise InvalidField(f"{label} must not be empty", field=label)
    if len(value) > max_len:
        raise InvalidField(f"{label} is longer than {max_len} characters", field=label)
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise InvalidField(f"{label} contains control characters", field=label)
    return value


def check_slug(label: str, value: object, pattern: re.Pattern[str] = SLUG_RE) -> str:
    # fullmatch, not match: "$" would also accept a final "\n" ("abc\n" as a slug).
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidField(
            f"{label} must be lowercase letters, digits and dashes ({pattern.pattern})",
            field=label,
        )
    return value


def check_date(label: str, value: object) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidDate(f"{label} must be an ISO date (YYYY-MM-DD)", field=label)


def period_of(day: date | str) -> str:
    """The month ``YYYY-MM`` a business date falls in."""
    return (day if isinstance(day, str) else day.isoformat())[:7]


def check_period_open(closed_periods: list[str], day: date) -> None:
    period = period_of(day)
    if period in closed_periods:
        raise PeriodClosed(
            f"period {period} is closed; record a correction dated in an open period",
            period=period,
        )
