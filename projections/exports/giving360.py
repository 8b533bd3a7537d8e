"""A fund's grants in the 360Giving Data Standard (1.4.3): a grant package.

The mapping (docs/api.md, "360Giving"):

- ``id``: ``<prefix>-<grant id>``, the prefix a setting (``LEDGER_THREESIXTY_GIVING_PREFIX``,
  ``360G-`` and the publisher's own code, registered with 360Giving);
- ``fundingOrganization``: the host charity (the fund is its sub-ledger: ``department``),
  ``CN-USCI-<统一社会信用代码>`` once its credit code is recorded; until then
  ``<prefix>-host-<fund slug>``, an identifier of the publisher's own (360Giving's rule for
  organisations without a registered number);
- ``recipientOrganization``: the grantee; ``CN-USCI-<code>`` when the grantee's id is a valid
  credit code, else ``<prefix>-grantee-<first 16 hex digits of SHA-256 of its name>``: a
  grantee id that is not a credit code is never published (it could be a person's national
  id number);
- ``amountAwarded``: the amount committed; ``awardDate``: the day it was committed;
  ``amountDisbursed`` and ``disbursementTransaction``: the tranches paid and not reversed;
- ``plannedDates``: the ledger keeps no planned dates; the grant's one event has its start
  (the day it was committed) and, once closed or cancelled, its end.

Only awarded grants (committed, closed, cancelled) are published: a proposal or a rejected one
awarded nothing. Nothing of any donor is in the file. The standard's amounts are JSON
numbers: ``dumps`` writes them from the exact decimal strings, never through a float.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.domain.credit_code import check_credit_code
from ledger.domain.errors import InvalidCreditCode
from ledger.domain.grant import CANCELLED, CLOSED, COMMITTED
from ledger.domain.money import format_amount

STANDARD_VERSION = "1.4"  # the package's ``version``: major.minor of 1.4.3
AWARDED_STATUSES = (COMMITTED, CLOSED, CANCELLED)
USCI_SCHEME = "CN-USCI"
_NUMBER = "\x00number:"  # marks a decimal string that ``dumps`` writes as a JSON number


def org_id_of_credit_code(code: str) -> str:
    return f"{USCI_SCHEME}-{code}"


def host_org_id(fund: Mapping[str, Any], prefix: str) -> str:
    code = fund["host_credit_code"]
    return org_id_of_credit_code(code) if code else f"{prefix}-host-{fund['slug']}"


def grantee_org_id(name: str, grantee_id: str | None, prefix: str) -> str:
    if grantee_id is not None:
        try:
            return org_id_of_credit_code(check_credit_code(grantee_id))
        except InvalidCreditCode:
            pass
    return f"{prefix}-grantee-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def number(amount_minor: int, currency: str) -> str:
    """An amount for the package: written as a JSON number by ``dumps``."""
    return _NUMBER + format_amount(int(amount_minor), currency=currency)


def grant_record(
    fund: Mapping[str, Any],
    grant: Mapping[str, Any],
    tranches: Sequence[Mapping[str, Any]],
    *,
    prefix: str,
) -> dict[str, Any]:
    currency = grant["currency"]
    grant_id = f"{prefix}-{grant['grant_id']}"
    committed_on = _iso(grant["committed_on"])
    dates: dict[str, Any] = {"startDate": committed_on}
    if grant["status"] in (CLOSED, CANCELLED) and grant["ended_on"] is not None:
        dates["endDate"] = _iso(grant["ended_on"])
    paid = [t for t in tranches if not t["reversed"]]
    funder: dict[str, Any] = {"id": host_org_id(fund, prefix), "name": fund["host"]}
    funder["department"] = fund["name"]
    return {
        "id": grant_id,
        "title": grant["title"],
        "description": grant["description"] or grant["title"],
        "currency": currency,
        "amountAwarded": number(grant["committed_minor"], currency),
        "amountDisbursed": number(grant["disbursed_minor"], currency),
        "awardDate": committed_on,
        "plannedDates": [dates],
        "recipientOrganization": [
            {
                "id": grantee_org_id(grant["grantee_name"], grant["grantee_id"], prefix),
                "name": grant["grantee_name"],
            }
        ],
        "fundingOrganization": [funder],
        "disbursementTransaction": [
            {
                "id": f"{grant_id}-tranche-{t['tranche_no']}",
                "transactionDate": _iso(t["paid_on"]),
                "currency": currency,
                "value": number(t["amount_minor"], currency),
            }
            for t in paid
        ],
    }


def grant_package(
    fund: Mapping[str, Any],
    grants: Sequence[Mapping[str, Any]],
    tranches: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    prefix: str,
) -> dict[str, Any]:
    """The package of a fund's awarded grants (``grants``: its read-model rows, oldest first;
    ``tranches``: by grant id)."""
    return {
        "version": STANDARD_VERSION,
        "title": f"{fund['name']}: grants",
        "publisher": {"name": fund["host"], "identifier": host_org_id(fund, prefix)},
        "grants": [
            grant_record(fund, g, tranches.get(g["grant_id"], ()), prefix=prefix)
            for g in grants
            if g["status"] in AWARDED_STATUSES and g["committed_on"] is not None
        ],
    }


def dumps(package: Mapping[str, Any]) -> str:
    """The package as JSON (UTF-8 text, names as written), amounts as exact JSON numbers."""
    text = json.dumps(package, ensure_ascii=False, separators=(",", ":"))
    marker = json.dumps(_NUMBER)[1:-1]  # how the marker is escaped inside a JSON string
    out, rest = [], text
    while True:
        start = rest.find('"' + marker)
        if start < 0:
            out.append(rest)
            return "".join(out)
        end = rest.index('"', start + 1)
        out.append(rest[:start])
        out.append(rest[start + 1 + len(marker) : end])
        rest = rest[end + 1 :]


def _iso(value: Any) -> str:
    return value if isinstance(value, str) else value.isoformat()
