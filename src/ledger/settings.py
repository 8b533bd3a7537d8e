"""Settings: environment variables prefixed ``LEDGER_``, read once by a cached factory.

Only ``LEDGER_DATABASE_URL`` matters to run; everything has a working default.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./ledger.db",
        description="Event store and read models: sqlite:///path or postgresql://user@host/db",
    )
    key_dir: Path = Field(
        default=Path("./ledger-keys"),
        description="Signing and key-encryption keys; never stored in the database",
    )
    audit_origin: str = Field(
        default="ledger.local/community-fund",
        description="The name of the verifiable log: its checkpoints' origin and the name of "
        "its signing key (one word, no spaces or '+', e.g. ledger.example.org/tea-village)",
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        description="Where the fund's business day is counted (today, closed months)",
    )
    threesixty_giving_prefix: str = Field(
        default="360G-ledger",
        pattern=r"^360G-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$",
        max_length=60,
        description="The 360Giving identifier prefix of the publisher (360G-…, registered with "
        "360Giving): grant ids in /api/funds/{slug}/360giving.json are <prefix>-<grant id>",
    )
    aggregate_cache_size: int = Field(default=10_000, ge=1, le=1_000_000)
    rate_limit_per_address: str | None = Field(
        default=None,
        max_length=200,
        description="Requests one client address may make, in the `limits` library's notation "
        "(e.g. '50/second;1500/minute'); unset: api.limits' defaults. Raise it behind a proxy "
        "that gives every client one address, or for a benchmark",
    )
    rate_limit_per_token: str | None = Field(
        default=None,
        max_length=200,
        description="Requests one bearer token may make (as above; unset: api.limits')",
    )
    page_cache_entries: int = Field(
        default=512,
        ge=0,
        le=100_000,
        description="Rendered public pages kept while the read models do not move (0: off)",
    )
    projections_in_process: bool = Field(
        default=True,
        description="Run the projections inside the server process (with several workers or "
        "hosts one of them works, the others stand by); set false when a separate "
        "`ledger projector` process does",
    )
    writes_wait_for_read_models: bool = Field(
        default=True,
        description="A write answers once the read models hold it; when false (what `ledger "
        "serve --workers N` sets for N > 1) it answers once durable, and a client reads its "
        "own writes by sending the write's Ledger-Position back (docs/api.md)",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
