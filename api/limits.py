"""Every limit of the HTTP API's own, in one place (documented in docs/api.md and the OpenAPI
schema). The domain's limits (name and text lengths, committee size, purposes, tranches)
are imported from ``ledger.domain`` where the edge enforces them, never retyped."""

from __future__ import annotations

from ledger.domain.common import KEY_LEN_MAX, NAME_LEN_MAX

BODY_BYTES_MAX = 64 * 1024  # a request body, counted as it streams in
PAGE_LIMIT_DEFAULT = 50
PAGE_LIMIT_MAX = 500
CURSOR_LEN_MAX = 512
IDEMPOTENCY_KEY_LEN_MAX = KEY_LEN_MAX
READ_YOUR_WRITES_TIMEOUT_S = 5.0  # how long a write waits for the read models
WORKER_THREADS = 32  # blocking work (commands and their waits) of one server process
TOKEN_CACHE_TTL_S = 1.0  # a revoked token stops working within this time
TOKEN_NAME_LEN_MAX = NAME_LEN_MAX
TOKEN_FUNDS_MAX = 100
TOKEN_BYTES = 32
AMOUNT_LEN_MAX = 40
