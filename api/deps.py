"""``Annotated`` dependency aliases of the routers.

Each route takes exactly one caller alias (its access policy, see ``api.auth``):
``PublicCaller`` (no token needed), ``ReaderCaller`` (no token needed; auditors, treasurers
and admins see more), ``AdminCaller``, ``AuditorCaller``, ``TreasurerCaller``, ``CommitteeCaller``,
``ProposerCaller`` (treasurer or committee), ``CloserCaller`` (committee or treasurer),
``ReporterCaller`` (treasurer or committee: progress notes).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from api.auth import Access, Caller
from api.idempotency import idempotency_key
from api.limits import CURSOR_LEN_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX
from api.tokens import ADMIN, AUDITOR, COMMITTEE, TREASURER
from api.writes import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

PUBLIC = Access(public=True)
READER = Access(public=True, elevated=(AUDITOR, TREASURER, ADMIN))
ADMINS = Access(ADMIN)
AUDITORS = Access(AUDITOR)
TREASURERS = Access(TREASURER)
COMMITTEES = Access(COMMITTEE)
PROPOSERS = Access(TREASURER, COMMITTEE)
CLOSERS = Access(COMMITTEE, TREASURER)
REPORTERS = Access(TREASURER, COMMITTEE)

PublicCaller = Annotated[Caller | None, Depends(PUBLIC)]
ReaderCaller = Annotated[Caller | None, Depends(READER)]
AdminCaller = Annotated[Caller, Depends(ADMINS)]
AuditorCaller = Annotated[Caller, Depends(AUDITORS)]
TreasurerCaller = Annotated[Caller, Depends(TREASURERS)]
CommitteeCaller = Annotated[Caller, Depends(COMMITTEES)]
ProposerCaller = Annotated[Caller, Depends(PROPOSERS)]
CloserCaller = Annotated[Caller, Depends(CLOSERS)]
ReporterCaller = Annotated[Caller, Depends(REPORTERS)]

IdempotencyKey = Annotated[str, Depends(idempotency_key)]

Limit = Annotated[
    int,
    Query(ge=1, le=PAGE_LIMIT_MAX, description=f"Items per page (1–{PAGE_LIMIT_MAX})"),
]
Cursor = Annotated[
    str | None,
    Query(max_length=CURSOR_LEN_MAX, description="From the previous page's next_cursor"),
]
DEFAULT_LIMIT = PAGE_LIMIT_DEFAULT
