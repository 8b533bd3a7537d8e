"""Every limit of the HTTP API's own, in one place (documented in docs/api.md and the OpenAPI
schema). The domain's limits (name and text lengths, committee size, purposes, tranches)
are imported from ``ledger.domain`` where the edge enforces them, never retyped."""

from __future__ import annotations

from datetime import date

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
# Dates and instants in queries (as_of, known_at, from, to): outside, 422 validation-error.
QUERY_DATE_MIN = date(1900, 1, 1)
QUERY_DATE_MAX = date(2999, 12, 31)

# -- connection budgets (docs/operations.md "Limits under load") -------------------------------
# Public reads have a pool of their own, apart from the one of the projections, tokens and
# writes: a flood of reads waits for these connections only, and after READ_POOL_TIMEOUT_S is
# answered 503 busy (Retry-After: BUSY_RETRY_AFTER_S) instead of waiting for 30 s.
READ_POOL_SIZE = 5
READ_POOL_OVERFLOW = 5
READ_POOL_TIMEOUT_S = 2.0
BUSY_RETRY_AFTER_S = 5
# Exports: built whole on one short-lived connection into a spooled file, then sent.
EXPORTS_IN_FLIGHT_MAX = 8  # being built or sent at once; beyond: 503 too-many-exports
EXPORTS_BUILDING_MAX = 2  # built at once (each holds one read connection while it reads)
EXPORT_BYTES_MAX = 256 * 1024 * 1024  # larger: 422 export-too-large (narrow from/to)
EXPORT_SPOOL_MEMORY_BYTES = 1024 * 1024  # beyond this an export waits in a temporary file
EXPORT_CHUNK_BYTES = 64 * 1024
EXPORT_SEND_TIMEOUT_S = 300.0  # a client that reads an export slower is cut off

# -- rate limits (``limits`` moving windows, in the memory of one server process) ---------------
# A request over a limit is answered 429 rate-limited with Retry-After (seconds until the
# window lets one through). Several ``ledger serve --workers`` each count their own.
RATE_LIMIT_PER_ADDRESS = "50/second;1500/minute"  # every request of one client address
RATE_LIMIT_PER_TOKEN = "50/second;1500/minute"  # every request with one bearer token
# Unknown or revoked bearer tokens from one address: past this, every request of that
# address with a bearer token is refused before the token is looked up (no database query).
RATE_LIMIT_BAD_TOKENS_PER_ADDRESS = "10/minute"
