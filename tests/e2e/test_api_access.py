"""Who may call what: every route declares its access policy, and every route answers every
role (and no token) accordingly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from test_api_support import COMMITTEE, FUND, World, problem, serve

from api.auth import api_routes, route_access

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CALLERS = (None, "admin", "treasurer", "committee", "auditor")
AUTH_TYPES = {"unauthorized", "role-not-allowed", "fund-not-allowed"}


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


def _cases() -> Iterator[Any]:
    from api.app import ROUTERS
    from api.health import router as health_router

    for router in (*ROUTERS, health_router):
        for route in api_routes(router.routes):
            for method in sorted(route.methods or ()):
                for caller in CALLERS:
                    yield pytest.param(
                        method, route.path, caller, id=f"{method} {route.path} {caller or 'none'}"
                    )


@pytest.mark.parametrize(("method", "path", "caller"), list(_cases()))
def test_each_role_gets_what_the_policy_says(
    world: tuple[World, dict[str, str]], method: str, path: str, caller: str | None
) -> None:
    w, params = world
    route = next(
        r for r in api_routes(w.api.routes) if r.path == path and method in (r.methods or ())
    )
    access = route_access(route)
    assert access is not None, f"{method} {path} declares no access policy"
    url = path.format(**params)
    headers = {**w.auth(caller), "Idempotency-Key": f"matrix-{method}-{path}-{caller}"}
    # An empty body: the policy is checked before the body is validated.
    response = w.client.request(method, url, json={} if method == "POST" else None, headers=headers)
    body = response.json() if "json" in response.headers.get("content-type", "") else {}
    kind = body.get("type") if isinstance(body, dict) else None

    if access.public:
        assert kind not in AUTH_TYPES, response.text
    elif caller is None:
        problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    elif caller in access.roles:
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
    w.token("外人", "committee")
    problem(w.post(path, {}, "外人"), 403, "not-committee-member")
    approved = w.post(path, {}, COMMITTEE[1]).json()
    assert [a["member"] for a in approved["approvals"]] == [COMMITTEE[1]]
