"""Who may call what: an explicit table, written by hand from DESIGN §5, of the roles that may
call each route. Every route of the app must be in it, declare exactly its policy, and answer
every role (and no token) accordingly: a wrongly declared policy fails here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from test_api_support import COMMITTEE, FUND, World, problem, serve

from api.auth import api_routes, route_access
from api.deps import TreasurerCaller

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CALLERS = (None, "admin", "treasurer", "committee", "auditor")
AUTH_TYPES = {"unauthorized", "role-not-allowed", "fund-not-allowed"}
PUBLIC: frozenset[str] = frozenset({"public"})  # no token needed (a token is still checked)

# (method, path) -> the roles that may call it; from DESIGN §5, not from the routes.
ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/api/funds"): frozenset({"admin"}),
    ("GET", "/api/funds"): PUBLIC,
    ("GET", "/api/funds/{slug}"): PUBLIC,
    ("POST", "/api/funds/{slug}/purposes"): frozenset({"admin"}),
    ("PUT", "/api/funds/{slug}/host"): frozenset({"admin"}),
    ("POST", "/api/funds/{slug}/donations"): frozenset({"treasurer"}),
    ("GET", "/api/funds/{slug}/donations"): PUBLIC,  # masked; auditors see donor details
    ("POST", "/api/donations/{donation_id}/refunds"): frozenset({"treasurer"}),
    ("POST", "/api/donations/{donation_id}/reversal"): frozenset({"treasurer"}),
    ("POST", "/api/funds/{slug}/grants"): frozenset({"treasurer", "committee"}),
    ("POST", "/api/grants/{grant_id}/approvals"): frozenset({"committee"}),
    ("POST", "/api/grants/{grant_id}/rejection"): frozenset({"committee"}),
    ("POST", "/api/grants/{grant_id}/cancellation"): frozenset({"committee"}),
    ("POST", "/api/grants/{grant_id}/closure"): frozenset({"committee", "treasurer"}),
    ("POST", "/api/grants/{grant_id}/disbursements"): frozenset({"treasurer"}),
    ("POST", "/api/grants/{grant_id}/disbursements/{tranche_no}/reversal"): frozenset(
        {"treasurer"}
    ),
    # A dated progress note on a grant: a treasurer or a committee member of its fund.
    ("POST", "/api/grants/{grant_id}/progress"): frozenset({"treasurer", "committee"}),
    ("GET", "/api/funds/{slug}/grants"): PUBLIC,
    ("GET", "/api/grants/{grant_id}"): PUBLIC,
    ("POST", "/api/funds/{slug}/expenses"): frozenset({"treasurer"}),
    ("POST", "/api/expenses/{expense_id}/reversal"): frozenset({"treasurer"}),
    ("POST", "/api/funds/{slug}/periods/{period}/close"): frozenset({"treasurer"}),
    ("GET", "/api/funds/{slug}/balance"): PUBLIC,
    ("GET", "/api/funds/{slug}/report"): PUBLIC,
    ("GET", "/api/funds/{slug}/exports/{kind}.csv"): PUBLIC,  # auditors: donor details
    # The books for Beancount and hledger: exports like the CSVs (auditors: donor details).
    ("GET", "/api/funds/{slug}/exports/ledger.beancount"): PUBLIC,
    ("GET", "/api/funds/{slug}/exports/ledger.journal"): PUBLIC,
    ("GET", "/api/funds/{slug}/360giving.json"): PUBLIC,  # awarded grants, no donor data
    ("GET", "/api/health"): PUBLIC,
    # The verifiable log (DESIGN §6): checkpoints and proofs are public, the raw log is the
    # auditors'; a donor checks a receipt; witnesses' cosignatures and erasure are admins'.
    ("GET", "/api/receipts/{receipt_no}"): PUBLIC,
    ("GET", "/api/audit/checkpoint"): PUBLIC,
    ("GET", "/api/audit/checkpoints/{size}"): PUBLIC,
    ("GET", "/api/audit/proofs/inclusion"): PUBLIC,
    ("GET", "/api/audit/proofs/consistency"): PUBLIC,
    ("GET", "/api/audit/events"): frozenset({"auditor"}),
    ("POST", "/api/audit/cosignatures"): frozenset({"admin"}),
    ("POST", "/api/donations/{donation_id}/erasure"): frozenset({"admin"}),
}


def app_routes(api: FastAPI) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in api_routes(api.routes)
        if route.path.startswith("/api")
        for method in route.methods or ()
    }


def policy_mismatches(api: FastAPI, allowed: dict[tuple[str, str], frozenset[str]]) -> list[str]:
    """Routes whose declared policy is not the table's (or that the table lacks)."""
    out = []
    for route in api_routes(api.routes):
        if not route.path.startswith("/api"):
            continue
        access = route_access(route)
        declared = None if access is None else PUBLIC if access.public else access.roles
        for method in sorted(route.methods or ()):
            expected = allowed.get((method, route.path))
            if expected is None:
                out.append(f"{method} {route.path}: not in the table")
            elif declared != expected:
                out.append(f"{method} {route.path}: declares {declared}, the table {expected}")
    return out


def undeclared_routes(api: FastAPI) -> list[str]:
    """Routes under /api that depend on no access policy."""
    return [
        f"{sorted(route.methods or ())} {route.path}"
        for route in api_routes(api.routes)
        if route.path.startswith("/api") and route_access(route) is None
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, dict[str, str]]]:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tmp: Path = tmp_path_factory.mktemp("access")
    now = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with serve(f"sqlite:///{tmp / 'ledger.db'}", tmp, lambda: now) as w:
        w.open_fund()
        donation = w.donate("1000.00")
        grant = w.committed_grant("100.00")
        w.create(
            f"/api/grants/{grant['id']}/disbursements",
            {"amount": "10.00", "method": "bank", "reference": "R"},
        )
        expense = w.create(
            f"/api/funds/{FUND}/expenses",
            {"amount": "1.00", "category": "program", "paid_on": "2026-11-01", "payee": "p",
             "description": "d"},
        )  # fmt: skip
        params = {
            "slug": FUND,
            "donation_id": donation["id"],
            "grant_id": grant["id"],
            "tranche_no": "1",
            "expense_id": expense["id"],
            "period": "2026-10",
            "kind": "donations",
            "receipt_no": donation["receipt_no"],
            "size": "1",
        }
        yield w, params


def test_every_api_route_declares_who_may_call_it(world: tuple[World, dict[str, str]]) -> None:
    w, _ = world
    routes = list(api_routes(w.api.routes))
    assert len([r for r in routes if r.path.startswith("/api")]) >= 24
    assert undeclared_routes(w.api) == []


def test_a_route_without_a_policy_is_caught() -> None:
    api = FastAPI()
    router = APIRouter()

    @router.get("/api/secret")
    def secret() -> dict[str, str]:
        return {}

    api.include_router(router)
    assert undeclared_routes(api) == ["['GET'] /api/secret"]


def test_every_route_of_the_app_is_in_the_table_and_nothing_else(
    world: tuple[World, dict[str, str]],
) -> None:
    w, _ = world
    assert app_routes(w.api) == set(ALLOWED)


def test_every_route_declares_the_policy_of_the_table(world: tuple[World, dict[str, str]]) -> None:
    w, _ = world
    assert policy_mismatches(w.api, ALLOWED) == []


def test_a_wrongly_declared_policy_is_caught() -> None:
    api = FastAPI()
    router = APIRouter()

    @router.post("/api/funds")
    def open_fund(_: TreasurerCaller) -> dict[str, str]:
        return {}

    api.include_router(router)
    assert policy_mismatches(api, ALLOWED) == [
        "POST /api/funds: declares frozenset({'treasurer'}), the table frozenset({'admin'})"
    ]
    assert policy_mismatches(api, {}) == ["POST /api/funds: not in the table"]


def _cases() -> Iterator[Any]:
    for (method, path), roles in ALLOWED.items():
        for caller in CALLERS:
            yield pytest.param(
                method, path, roles, caller, id=f"{method} {path} {caller or 'none'}"
            )


@pytest.mark.parametrize(("method", "path", "allowed", "caller"), list(_cases()))
def test_each_role_gets_what_the_table_says(
    world: tuple[World, dict[str, str]],
    method: str,
    path: str,
    allowed: frozenset[str],
    caller: str | None,
) -> None:
    w, params = world
    url = path.format(**params)
    headers = {**w.auth(caller), "Idempotency-Key": f"matrix-{method}-{path}-{caller}"}
    # An empty body: the policy is checked before the body is validated.
    response = w.client.request(
        method, url, json={} if method in ("POST", "PUT") else None, headers=headers
    )
    body = response.json() if "json" in response.headers.get("content-type", "") else {}
    kind = body.get("type") if isinstance(body, dict) else None

    if allowed is PUBLIC:
        assert kind not in AUTH_TYPES, response.text
    elif caller is None:
        problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    elif caller in allowed:
        assert response.status_code not in (401,), response.text
        assert kind not in AUTH_TYPES, response.text
    else:
        problem(response, 403, "role-not-allowed")


def test_committee_members_approve_with_their_own_tokens(
    world: tuple[World, dict[str, str]],
) -> None:
    w, _ = world
    grant = w.create(
        f"/api/funds/{FUND}/grants", {"title": "t", "grantee": {"name": "g"}, "amount": "1.00"}
    )
    path = f"/api/grants/{grant['id']}/approvals"
    problem(w.post(path, {}, "treasurer"), 403, "role-not-allowed")
    w.token("外人", "committee", funds=(FUND,))
    problem(w.post(path, {}, "外人"), 403, "not-committee-member")
    approved = w.post(path, {}, COMMITTEE[1]).json()
    assert [a["member"] for a in approved["approvals"]] == [COMMITTEE[1]]
