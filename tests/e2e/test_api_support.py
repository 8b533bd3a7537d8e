"""What the HTTP API tests share: a ledger served in-process (its own database under
``tmp_path``, the tests' clock), tokens for every role, and small request helpers.

Imported by the ``test_api*`` modules; it holds no tests of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_api
from api.middleware import RateLimits
from api.writes import Services
from ledger.application import LedgerApp
from ledger.settings import Settings

FUND = "tea-village"
OTHER_FUND = "river-school"
ADMIN = "周文华"
TREASURER = "刘晓梅"
COMMITTEE = ("李主任", "王会计", "张村长")
AUDITOR = "审计员"
ROLES = ("admin", "treasurer", "committee", "auditor")

FUND_BODY: dict[str, Any] = {
    "slug": FUND,
    "name": "茶乡振兴基金",
    "currency": "CNY",
    "description": "牌坊村的社区基金",
    "host": "示例公益基金会",
    "committee": list(COMMITTEE),
    "approvals_required": 2,
    "purposes": [{"code": "elderly-care", "name": "养老"}, {"code": "education", "name": "教育"}],
}


# Tests send requests as fast as they can from one address: the rate limits are tested on
# their own (test_api_edge.py), elsewhere they are out of the way.
UNLIMITED = RateLimits(
    per_address="1000000/second",
    per_token="1000000/second",
    bad_tokens_per_address="1000000/second",
)


def donation_body(amount: str = "100.00", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": amount,
        "received_on": "2026-11-02",
        "channel": "wechat",
        "donor": {"name": "张三", "contact": "13800000000"},
    }
    body.update(overrides)
    return body


@dataclass
class World:
    """An API on its own database, with a token per role (and one per committee member)."""

    api: FastAPI
    client: TestClient
    services: Services
    tokens: dict[str, str] = field(default_factory=dict)  # token name -> secret
    keys: int = 0

    @property
    def ledger(self) -> LedgerApp:
        return self.services.ledger

    def token(self, name: str, role: str, funds: tuple[str, ...] = ()) -> str:
        _, secret = self.services.tokens.create(name=name, role=role, funds=funds)
        self.tokens[name] = secret
        return secret

    def auth(self, who: str | None) -> dict[str, str]:
        """Headers of a token by role (admin, treasurer, committee, auditor) or by name."""
        if who is None:
            return {}
        name = {
            "admin": ADMIN,
            "treasurer": TREASURER,
            "committee": COMMITTEE[0],
            "auditor": AUDITOR,
        }.get(who, who)
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def key(self) -> str:
        self.keys += 1
        return f"key-{self.keys}"

    def post(
        self, path: str, body: Any, who: str | None = "treasurer", *, key: str | None = None
    ) -> Any:
        headers = self.auth(who)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post(path, json=body, headers=headers)

    def create(self, path: str, body: Any, who: str | None = "treasurer") -> Any:
        """A creating POST with a fresh key; asserts 201 and returns the body."""
        response = self.post(path, body, who, key=self.key())
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, path: str, who: str | None = None, **params: Any) -> Any:
        return self.client.get(path, headers=self.auth(who), params=params)

    def open_fund(self, **overrides: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.create("/api/funds", {**FUND_BODY, **overrides}, "admin")
        return created

    def donate(self, amount: str = "100.00", fund: str = FUND, **overrides: Any) -> Any:
        return self.create(f"/api/funds/{fund}/donations", donation_body(amount, **overrides))

    def committed_grant(self, amount: str = "500.00", **overrides: Any) -> dict[str, Any]:
        body = {"title": "老年食堂灶具", "grantee": {"name": "老年协会"}, "amount": amount}
        grant = self.create(f"/api/funds/{FUND}/grants", {**body, **overrides})
        for member in COMMITTEE[:2]:
            response = self.post(f"/api/grants/{grant['id']}/approvals", {}, member)
            assert response.status_code == 200, response.text
        committed: dict[str, Any] = response.json()
        assert committed["status"] == "committed"
        return committed


class LedgerThatFails(LedgerApp):
    """The real ledger, whose next call of a command can be made to fail: a fault injected
    where the API meets the core (the app is built with it), no method patched."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._faults: dict[str, BaseException] = {}

    def fail_next(self, command: str, error: BaseException) -> None:
        self._faults[command] = error

    def _fault(self, command: str) -> None:
        error = self._faults.pop(command, None)
        if error is not None:
            raise error

    def record_donation(self, **kwargs: Any) -> Any:
        self._fault("record_donation")
        return super().record_donation(**kwargs)


@contextmanager
def serve(
    url: str,
    tmp_path: Path,
    clock: Callable[[], Any],
    *,
    cache_ttl_s: float = 0.0,
    ledger_class: type[LedgerApp] = LedgerApp,
    rate_limits: RateLimits = UNLIMITED,
) -> Iterator[World]:
    """The API on ``url``: projections running, tokens for every role; the ledger a
    ``ledger_class`` (a fake such as ``LedgerThatFails``)."""
    settings = Settings(database_url=url, key_dir=tmp_path / "keys", timezone="Asia/Shanghai")
    ledger = ledger_class(settings, clock=clock)
    services = Services.open(settings, app=ledger)
    services.tokens.cache_ttl_s = cache_ttl_s
    try:
        api = create_api(settings, services=services, rate_limits=rate_limits)
        with TestClient(api, raise_server_exceptions=False) as client:
            world = World(api=api, client=client, services=services)
            world.token(ADMIN, "admin")
            world.token(TREASURER, "treasurer", funds=(FUND, OTHER_FUND))
            for member in COMMITTEE:
                world.token(member, "committee", funds=(FUND,))
            world.token(AUDITOR, "auditor")
            yield world
    finally:
        services.close()
        ledger.close()


def problem(response: Any, status: int, type_: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem of ``status`` and ``type_``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == type_, body
    assert body["status"] == status
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert "Traceback" not in response.text
    return body
