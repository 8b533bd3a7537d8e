"""Shared fixtures: settings, a settable clock, stores (memory, SQLite, PostgreSQL), apps.

PostgreSQL: the server is ``LEDGER_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Every test gets a schema of its own, dropped
afterwards. An unreachable server skips the test, except under ``CI=true``, where it fails:
CI must never skip the PostgreSQL tests silently.

Hypothesis: ``HYPOTHESIS_PROFILE=ci`` runs 200 examples per property, the default ``dev``
profile 50.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings

from ledger.application import LedgerApp
from ledger.settings import Settings

POSTGRES_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_CONNECT_TIMEOUT_S = 3
POSTGRES_DROP_LOCK_TIMEOUT = "10s"
SHANGHAI = ZoneInfo("Asia/Shanghai")
CLOCK_START = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# -- clock ---------------------------------------------------------------------------------


class FakeClock:
    """A clock that stands still until a test moves it. ``now`` is what LedgerApp calls."""

    def __init__(self, start: datetime = CLOCK_START) -> None:
        if start.tzinfo is None:
            raise ValueError("the fake clock needs a timezone-aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def today(self) -> Any:
        return self._now.astimezone(SHANGHAI).date()

    def advance(self, **delta: float) -> datetime:
        self._now = self._now + timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("the fake clock needs a timezone-aware datetime")
        self._now = moment


@pytest.fixture
def clock() -> FakeClock:
    """2026-11-27 10:00 Asia/Shanghai until the test advances it."""
    return FakeClock()


# -- settings and stores -------------------------------------------------------------------


def _settings_for(url: str, tmp_path: Path) -> Settings:
    """Settings for a store URL; keys in ``tmp_path/keys`` (shared by apps of one test, so
    that every app of a test can open every donor's data)."""
    return Settings(database_url=url, key_dir=tmp_path / "keys", timezone="Asia/Shanghai")


@pytest.fixture
def settings_for() -> Callable[[str, Path], Settings]:
    """``settings_for(url, tmp_path)`` → Settings."""
    return _settings_for


def _postgres_server_url() -> str:
    return os.environ.get("LEDGER_TEST_POSTGRES_URL", POSTGRES_URL_DEFAULT)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _connect_postgres(url: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=POSTGRES_CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as e:
        reason = f"PostgreSQL at {_redacted(url)} is unreachable: {e}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run, not skip)")
        pytest.skip(reason)


def _with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("schema="))
    query = f"{query}&schema={schema}" if query else f"schema={schema}"
    return parts._replace(query=query).geturl()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL with a fresh schema of this test's own, dropped afterwards."""
    server_url = _postgres_server_url()
    schema = f"test_{secrets.token_hex(6)}"
    with _connect_postgres(server_url) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _with_schema(server_url, schema)
    finally:
        with _connect_postgres(server_url) as conn:
            conn.execute(f"SET lock_timeout = '{POSTGRES_DROP_LOCK_TIMEOUT}'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def sqlite_url(sqlite_path: Path) -> str:
    return f"sqlite:///{sqlite_path}"


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    """One URL per store kind; narrow it with
    ``@pytest.mark.parametrize("store_url", ["memory", "sqlite"], indirect=True)``."""
    kind = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    if kind == "postgres":
        return str(request.getfixturevalue("pg_url"))
    raise ValueError(f"unknown store kind {kind!r}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches PostgreSQL ``postgres`` (also when ``store_url`` is
    narrowed by indirect parametrization, which drops the param's own mark)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        uses_pg = "pg_url" in getattr(item, "fixturenames", ())
        if callspec is not None and callspec.params.get("store_url") == "postgres":
            uses_pg = True
        if uses_pg and item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)


# -- apps ----------------------------------------------------------------------------------


AppFactory = Callable[..., LedgerApp]


@pytest.fixture
def make_app(tmp_path: Path, clock: FakeClock) -> Iterator[AppFactory]:
    """``make_app(url="memory://", **kwargs)``: a LedgerApp on the test's clock and keys,
    closed after the test."""
    apps: list[LedgerApp] = []

    def make(url: str = "memory://", **kwargs: Any) -> LedgerApp:
        kwargs.setdefault("clock", clock.now)
        app = LedgerApp(_settings_for(url, tmp_path), **kwargs)
        apps.append(app)
        return app

    yield make
    for app in reversed(apps):
        app.close()


@pytest.fixture
def app(make_app: AppFactory) -> LedgerApp:
    """A LedgerApp on the in-memory store."""
    return make_app("memory://")


TEA = "tea-village"
TEA_COMMITTEE = ["李主任", "王会计", "张村长"]
TEA_PURPOSES = [{"code": "elderly-care", "name": "养老"}, {"code": "education", "name": "教育"}]


def _open_tea(app: LedgerApp, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "slug": TEA,
        "name": "茶乡振兴基金",
        "currency": "CNY",
        "description": "牌坊村的社区基金",
        "host": "示例公益基金会",
        "committee": list(TEA_COMMITTEE),
        "approvals_required": 2,
        "purposes": [dict(p) for p in TEA_PURPOSES],
        "actor": "admin",
    }
    fields.update(overrides)
    return app.open_fund(**fields)


@pytest.fixture
def open_tea() -> Callable[..., Any]:
    """``open_tea(app, **overrides)`` opens the demo fund 茶乡振兴基金 (slug ``tea-village``,
    committee 李主任 王会计 张村长, two approvals, purposes elderly-care and education)."""
    return _open_tea
