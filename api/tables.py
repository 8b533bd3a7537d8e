"""The API's own tables, in the ledger's database: tokens, and the idempotency keys of
fund openings (a fund's id comes from its slug, so its key is remembered here)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, MetaData, String, Table

from api.limits import IDEMPOTENCY_KEY_LEN_MAX, TOKEN_NAME_LEN_MAX
from projections.columns import NAMING_CONVENTION, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(36), primary_key=True),
    Column("name", String(TOKEN_NAME_LEN_MAX), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("funds", JSON, nullable=False),  # [] = every fund
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

api_fund_keys = Table(
    "api_fund_keys",
    metadata,
    Column("idempotency_key", String(IDEMPOTENCY_KEY_LEN_MAX), primary_key=True),
    Column("request_sha256", String(64), nullable=False),
    Column("slug", String(40), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)
