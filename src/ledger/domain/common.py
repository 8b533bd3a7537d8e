"""What the aggregates share: deterministic ids, request fingerprints, dates, limits.

Ids of created things are ``uuid5(NAMESPACE, f"{fund}:{kind}:{key}")`` where ``key`` is the
client's idempotency key, so a retried command names the same aggregate and the event
store's uniqueness refuses a second copy in the same write.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.domain.errors import (
    DateInFuture,
    DateTooEarly,
    InvalidDate,
    InvalidField,
    PeriodClosed,
)

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


# The text policy: every text an entry carries (names, titles, reasons, notes, committee
# members, donor details, references) goes through ``check_text``. Unicode general
# categories refused anywhere: controls (Cc: NUL, BEL, ESC, DEL, C1), formats (Cf: zero-width
# space and joiners, the BOM, bidi embeddings, overrides and isolates U+202A-202E and
# U+2066-2069), surrogates (Cs), private use (Co), unassigned (Cn), line and paragraph
# separators (Zl U+2028, Zp U+2029). Long-form text (``multiline``: descriptions, notes,
# reasons) may hold line feeds (U+000A), nothing else of these.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
MULTILINE_ALLOWED = frozenset("\n")


def check_text(
    label: str, value: object, *, max_len: int, required: bool = True, multiline: bool = False
) -> str:
    """``value`` under the text policy: NFC-normalised and trimmed, refused if blank (when
    ``required``), longer than ``max_len`` characters (after normalising), or holding a
    character of ``FORBIDDEN_CATEGORIES``. Returns the normalised text: what is recorded."""
    if not isinstance(value, str):
        raise InvalidField(f"{label} must be text", field=label)
    text = unicodedata.normalize("NFC", value).strip()
    if required and not text:
        raise InvalidField(f"{label} must not be empty", field=label)
    if len(text) > max_len:
        raise InvalidField(f"{label} is longer than {max_len} characters", field=label)
    for ch in text:
        if unicodedata.category(ch) in FORBIDDEN_CATEGORIES and not (
            multiline and ch in MULTILINE_ALLOWED
        ):
            codepoint = f"U+{ord(ch):04X}"
            raise InvalidField(
                f"{label} contains {codepoint} ({unicodedata.category(ch)}): control, format, "
                "bidi and separator characters are not allowed",
                field=label,
                codepoint=codepoint,
            )
    return text


def check_optional_text(
    label: str, value: object, *, max_len: int, multiline: bool = False
) -> str | None:
    """``check_text`` for a field that may be absent (None); given, it must not be blank."""
    if value is None:
        return None
    return check_text(label, value, max_len=max_len, multiline=multiline)


def identity_key(name: str) -> str:
    """What two names of people are compared by (committee members, token names): their
    NFC form, exactly (no case folding: "Bob" is not "bob"). Recorded names are trimmed and
    refused with format characters, so ``"刘一"`` and ``"刘一\u200b"`` cannot both exist."""
    return unicodedata.normalize("NFC", name)


def member_of(committee: list[str], name: str) -> str | None:
    """The member of ``committee`` whom ``name`` names (by ``identity_key``), as the
    committee records them; None if nobody. A member's identity is scoped to one fund: the
    committee of the fund a grant belongs to is the only one ever asked."""
    key = identity_key(name)
    return next((m for m in committee if identity_key(m) == key), None)


def check_slug(label: str, value: object, pattern: re.Pattern[str] = SLUG_RE) -> str:
    # fullmatch, not match: "$" would also accept a final "\n" ("abc\n" as a slug).
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidField(
            f"{label} must be lowercase letters, digits and dashes ({pattern.pattern})",
            field=label,
        )
    return value


ISO_DATE_RE = re.compile(r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$")
# The window of business dates: an entry may be dated up to this many days before the day
# its fund was opened (the books of the two years before can be brought in), and never
# after today in the ledger's time zone (``LEDGER_TIMEZONE``: every fund's).
BUSINESS_DATE_GRACE_DAYS = 731


def check_date(label: str, value: object) -> date:
    """An ISO calendar date, ``YYYY-MM-DD`` exactly (not ``20261102``, ``2026-W48-1``, a
    number or a timestamp)."""
    if isinstance(value, datetime):
        raise InvalidDate(f"{label} must be a date, not an instant", field=label)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and ISO_DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass  # 2026-02-30
    raise InvalidDate(f"{label} must be an ISO date (YYYY-MM-DD)", field=label)


def check_business_date(label: str, day: date, *, opened_on: date, today: date) -> date:
    """``day`` within the window of business dates of a fund opened on ``opened_on``."""
    earliest = opened_on - timedelta(days=BUSINESS_DATE_GRACE_DAYS)
    if day > today:
        raise DateInFuture(f"{label} {day} is in the future", field=label, latest=str(today))
    if day < earliest:
        raise DateTooEarly(
            f"{label} {day} is more than {BUSINESS_DATE_GRACE_DAYS} days before the fund "
            f"was opened ({opened_on}); the earliest date it may carry is {earliest}",
            field=label,
            earliest=str(earliest),
        )
    return day


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
