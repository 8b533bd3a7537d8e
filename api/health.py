"""``GET /api/health``: is the store reachable, how far behind are the read models."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import PublicCaller, ServicesDep
from api.errors import Unavailable, problem_responses
from api.schemas import HealthOut, ProjectionHealthOut
from api.writes import json_response

router = APIRouter(tags=["health"])


@router.get(
    "/api/health",
    response_model=HealthOut,
    summary="Store reachable, projection lag, reads' pool",
    description="503 with `status: degraded` and `reads: exhausted` when the public reads' "
    "pool cannot hand out a connection; 503 `unavailable` when the store is not reachable.",
    responses=problem_responses(401, 503),
)
def health(_: PublicCaller, services: ServicesDep) -> Response:
    try:
        head = services.ledger.recorder.max_notification_id() or 0
        positions = services.runner.positions()
    except Exception as e:
        raise Unavailable(f"the event store is not reachable: {type(e).__name__}") from None
    failures = services.runner.failures
    projections = [
        ProjectionHealthOut(
            name=name,
            position=position,
            lag=max(0, head - position),
            failing=name in failures,
            error=failures[name].error if name in failures else None,
        )
        for name, position in sorted(positions.items())
    ]
    lag = max((p.lag for p in projections), default=head)
    reads_ok = services.reads_available()
    degraded = bool(failures) or not services.runner.running or not projections or not reads_ok
    out = HealthOut(
        status="degraded" if degraded else "ok",
        store="reachable",
        reads="ok" if reads_ok else "exhausted",
        exports_in_flight=services.exports.in_flight,
        head=head,
        lag=lag,
        projections=projections,
    )
    return json_response(out, status_code=200 if reads_ok else 503)
