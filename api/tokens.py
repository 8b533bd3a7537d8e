"""API tokens: created by ``ledger token create``, shown once, stored only as a hash.

A token is 32 random bytes, URL-safe base64 (43 characters). The database keeps its SHA-256
(``api_tokens``, in the ledger's own database), its name — which becomes the ``actor`` of
every command made with it — its role and the funds it may write to (required for
treasurer and committee tokens: only an admin token may be unscoped). A committee token
acts, in each of its funds, as the member of that fund's committee whose name it has
(compared by ``identity_key``). A lookup
hashes the presented token, finds the row by hash and compares the two hashes in constant
time. Revoked tokens stay listed (who had access, and until when).

Lookups are cached for ``TOKEN_CACHE_TTL_S`` so that a request costs no query; a token
revoked from another process stops working within that time (at once in this process).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import Engine, insert, select, update

from api.limits import TOKEN_BYTES, TOKEN_CACHE_TTL_S, TOKEN_FUNDS_MAX, TOKEN_NAME_LEN_MAX
from api.tables import api_tokens, metadata
from ledger.domain.common import check_slug, check_text
from ledger.domain.errors import DuplicateCode, InvalidField, NotFound
from projections.engine.transactions import write_engine

ADMIN = "admin"
TREASURER = "treasurer"
COMMITTEE = "committee"
AUDITOR = "auditor"
ROLES = (ADMIN, TREASURER, COMMITTEE, AUDITOR)
# Roles that act for particular funds: their tokens name them (an empty list would mean
# every fund, which only an admin token may have; auditors only read).
FUND_BOUND_ROLES = frozenset({TREASURER, COMMITTEE})
TOKEN_CACHE_MAX = 1_000


class TokenNotFound(NotFound):
    slug = "token-not-found"
    title = "Token not found"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    name: str
    role: str
    funds: tuple[str, ...]  # empty: every fund
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _info(m: Mapping[Any, Any]) -> TokenInfo:
    return TokenInfo(
        token_id=m["token_id"],
        name=m["name"],
        role=m["role"],
        funds=tuple(m["funds"] or ()),
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


class TokenStore:
    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        cache_ttl_s: float = TOKEN_CACHE_TTL_S,
    ) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[TokenInfo, float]] = {}
        self._lock = threading.Lock()

    def ensure_schema(self) -> None:
        metadata.create_all(self.engine)

    # -- the CLI's side ----------------------------------------------------------------------

    def create(self, *, name: str, role: str, funds: Sequence[str] = ()) -> tuple[TokenInfo, str]:
        """A new token; returns its record and the secret (the only time it exists)."""
        name = check_text("name", name, max_len=TOKEN_NAME_LEN_MAX)
        if role not in ROLES:
            raise InvalidField(f"role must be one of {', '.join(ROLES)}", field="role")
        funds = list(dict.fromkeys(check_slug("fund", f) for f in funds))
        if role in FUND_BOUND_ROLES and not funds:
            raise InvalidField(
                f"a {role} token acts for named funds: give them (--fund SLUG); "
                "only an admin token may be unscoped",
                field="fund",
            )
        if len(funds) > TOKEN_FUNDS_MAX:
            raise InvalidField(f"at most {TOKEN_FUNDS_MAX} funds per token", field="fund")
        secret = new_secret()
        row: dict[str, Any] = {
            "token_id": str(uuid4()),
            "name": name,
            "role": role,
            "funds": funds,
            "token_sha256": hash_token(secret),
            "created_at": self.clock().astimezone(UTC),
            "revoked_at": None,
        }
        with write_engine(self.engine).begin() as conn:
            active = conn.execute(
                select(api_tokens.c.token_id).where(
                    api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None)
                )
            ).first()
            if active is not None:
                raise DuplicateCode(f"a token named {name!r} exists; revoke it first", name=name)
            conn.execute(insert(api_tokens).values(**row))
        return _info(row), secret

    def list(self) -> list[TokenInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.name)
            ).all()
        return [_info(r._mapping) for r in rows]

    def revoke(self, name: str) -> int:
        """Revoke every active token of ``name``; returns how many."""
        with write_engine(self.engine).begin() as conn:
            result = conn.execute(
                update(api_tokens)
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.clock().astimezone(UTC))
            )
        with self._lock:
            self._cache.clear()
        if not result.rowcount:
            raise TokenNotFound(f"no active token named {name!r}", name=name)
        return int(result.rowcount)

    # -- the API's side ----------------------------------------------------------------------

    def authenticate(self, secret: str) -> TokenInfo | None:
        """The active token ``secret`` stands for, or None."""
        digest = hash_token(secret)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_tokens).where(api_tokens.c.token_sha256 == digest)
            ).first()
        if row is None or not hmac.compare_digest(str(row.token_sha256), digest):
            return None
        info = _info(row._mapping)
        if not info.active:
            return None
        with self._lock:
            if len(self._cache) >= TOKEN_CACHE_MAX:
                self._cache.clear()
            self._cache[digest] = (info, now + self.cache_ttl_s)
        return info
