"""The ``Idempotency-Key`` header of creating POSTs, and the keys of fund openings.

Donations, refunds, grants, disbursements and expenses take their id from the key
(``uuid5(fund:kind:key)``): the application answers a retry itself. A fund's id comes from
its slug, so the key of an opening has a record of its own in the event store
(``ledger.domain.opening.FundOpening``), saved in the same write as the fund: the check and
the write are one step. ``api_fund_keys`` holds the keys of openings made before those
records; it is only read, so that such a key still refuses other content.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header
from sqlalchemy import Engine, select

from api.errors import IdempotencyKeyInvalid, IdempotencyKeyMissing
from api.limits import IDEMPOTENCY_KEY_LEN_MAX
from api.tables import api_fund_keys
from ledger.domain.errors import IdempotencyKeyReused

HEADER = "Idempotency-Key"


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="A key of the client's choosing, unique per creation (a UUID is "
            "fine). The same key and content again: the original result, 200. The same key "
            "with other content: 409 idempotency-key-reused.",
            json_schema_extra={"minLength": 1, "maxLength": IDEMPOTENCY_KEY_LEN_MAX},
        ),
    ] = None,
) -> str:
    if key is None:
        raise IdempotencyKeyMissing(f"a creating POST needs an {HEADER} header", header=HEADER)
    if not key.strip() or len(key) > IDEMPOTENCY_KEY_LEN_MAX or not key.isprintable():
        raise IdempotencyKeyInvalid(
            f"the {HEADER} header must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable characters",
            header=HEADER,
        )
    return key


class FundKeys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check(self, key: str, request_sha256: str) -> None:
        """Refuse a key that opened a fund with other content."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_fund_keys.c.request_sha256, api_fund_keys.c.slug).where(
                    api_fund_keys.c.idempotency_key == key
                )
            ).first()
        if row is not None and row.request_sha256 != request_sha256:
            raise IdempotencyKeyReused(
                "this idempotency key opened a different fund", fund=row.slug
            )
