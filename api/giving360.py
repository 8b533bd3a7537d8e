"""A fund's grants in the 360Giving Data Standard: ``GET /api/funds/{slug}/360giving.json``
(public; the mapping is ``projections.exports.giving360``'s)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import Connection, select

from api.deps import PublicCaller, ServicesDep
from api.errors import problem_responses
from api.funds import SlugPath
from projections.exports.giving360 import AWARDED_STATUSES, dumps, grant_package
from projections.queries import fund_row
from projections.tables import LIVE

router = APIRouter(prefix="/api/funds/{slug}", tags=["reports"])

JSON_MEDIA_TYPE = "application/json"


@router.get(
    "/360giving.json",
    summary="The fund's awarded grants as a 360Giving 1.4.3 grant package",
    description="Grants committed, closed or cancelled; no donor data. A fund that has "
    "awarded nothing has an empty `grants` list (the standard asks for at least one).",
    responses={
        200: {"content": {JSON_MEDIA_TYPE: {}}, "description": "A 360Giving grant package"},
        **problem_responses(401, 404, 422),
    },
)
def giving360(_: PublicCaller, slug: SlugPath, services: ServicesDep) -> Response:
    with services.read() as conn:
        package = package_of(conn, slug, prefix=services.settings.threesixty_giving_prefix)
    return Response(dumps(package), media_type=JSON_MEDIA_TYPE)


def package_of(conn: Connection, slug: str, *, prefix: str) -> dict[str, Any]:
    fund = fund_row(conn, slug)
    g, t = LIVE.grants, LIVE.grant_tranches
    grants = [
        dict(r)
        for r in conn.execute(
            select(g)
            .where(g.c.fund_id == fund["fund_id"], g.c.status.in_(AWARDED_STATUSES))
            .order_by(g.c.committed_on, g.c.grant_id)
        ).mappings()
    ]
    tranches: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(
        select(t).where(t.c.fund_id == fund["fund_id"]).order_by(t.c.grant_id, t.c.tranche_no)
    ).mappings():
        tranches.setdefault(row["grant_id"], []).append(dict(row))
    return grant_package(fund, grants, tranches, prefix=prefix)
