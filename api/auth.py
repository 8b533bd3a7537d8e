"""Who may call a route: a declarative policy per route, checked by one dependency.

Every route under ``/api`` depends on exactly one ``Access``: ``Access(PUBLIC)`` for public
reads, ``Access(TREASURER)`` etc. for the rest. The policy is data — ``route_access(route)``
finds it on a route, and a test fails for any route that has none. A protected route
answers 401 (``WWW-Authenticate: Bearer``) to a missing, unknown or revoked token and 403
to a token of another role or, for a route with a ``{slug}``, of other funds. The token's
name is the ``actor`` of every command made with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute

from api.errors import FundNotAllowed, RoleNotAllowed, Unauthorized
from api.middleware import RateLimiter, client_address
from api.tokens import COMMITTEE, FUND_BOUND_ROLES, ROLES, TokenInfo
from api.writes import Services

_bearer = HTTPBearer(
    auto_error=False,
    description="A token made by `ledger token create` (shown once).",
)


@dataclass(frozen=True, slots=True)
class Caller:
    """The token behind a request."""

    name: str
    role: str
    funds: tuple[str, ...]

    def may_act_for(self, slug: str) -> bool:
        """Whether the token may act for the fund. A token without funds acts for every
        fund only if it is an admin's (or an auditor's, who only reads); a treasurer or
        committee token that names no fund (made before tokens were bound) acts for none."""
        if not self.funds:
            return self.role not in FUND_BOUND_ROLES
        return slug in self.funds

    def check_fund(self, slug: str) -> None:
        """Writes of a token go to the funds it may act for only."""
        if not self.may_act_for(slug):
            raise FundNotAllowed(
                f"the token {self.name!r} may not write to the fund {slug}",
                fund=slug,
                allowed=list(self.funds),
            )

    @property
    def as_member(self) -> bool:
        """The caller acts as a member of a fund's committee (checked by the ledger)."""
        return self.role == COMMITTEE


class Access:
    """The access policy of a route: the roles that may call it, or public.

    ``public=True`` routes take an optional token; ``elevated`` names the roles that see
    more there (auditors: donor details).
    """

    def __init__(self, *roles: str, public: bool = False, elevated: tuple[str, ...] = ()) -> None:
        unknown = [r for r in (*roles, *elevated) if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown roles {unknown}")
        if not roles and not public:
            raise ValueError("a route is public or names its roles")
        self.roles = frozenset(roles)
        self.public = public
        self.elevated = frozenset(elevated)

    def __repr__(self) -> str:
        if self.public:
            return f"Access(public, elevated={sorted(self.elevated)})"
        return f"Access({', '.join(sorted(self.roles))})"

    async def __call__(
        self,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> Caller | None:
        if credentials is None:
            if self.public:
                return None
            raise Unauthorized("this route needs a bearer token (Authorization: Bearer …)")
        services: Services = request.app.state.services
        token = _authenticate(services, credentials.credentials)
        if token is None:
            limiter: RateLimiter = request.app.state.rate_limiter
            limiter.bad_token(client_address(request.scope))
            raise Unauthorized("the bearer token is unknown or revoked")
        caller = Caller(name=token.name, role=token.role, funds=token.funds)
        if self.public:
            return caller
        if caller.role not in self.roles:
            raise RoleNotAllowed(
                f"a {caller.role} token may not do this (needs {' or '.join(sorted(self.roles))})",
                role=caller.role,
                allowed_roles=sorted(self.roles),
            )
        slug = request.path_params.get("slug")
        if isinstance(slug, str):
            caller.check_fund(slug)
        return caller


def _authenticate(services: Services, secret: str) -> TokenInfo | None:
    if not secret or len(secret) > 200:
        return None
    return services.tokens.authenticate(secret)


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute of an application's routes, included routers' too."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            yield from api_routes(included.routes)


def route_access(route: APIRoute) -> Access | None:
    """The access policy a route depends on, if any."""
    pending: list[Any] = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, Access):
            return dependant.call
        pending.extend(dependant.dependencies)
    return None
