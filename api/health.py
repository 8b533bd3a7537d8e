"""``GET /api/health``: is the store reachable, how far behind are the read models."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import PublicCaller, ServicesDep
from api.errors import Unavailable, problem_responses
from api.schemas import HealthOut, ProjectionHealthOut

router = APIRouter(tags=["health"])


@router.get(
    "/api/health",
    response_model=HealthOut,
    summary="Store reachable, projection lag",
    responses=problem_responses(401, 503),
)
def health(_: PublicCaller, services: ServicesDep) -> HealthOut:
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
    degraded = bool(failures) or not services.runner.running or not projections
    return HealthOut(
        status="degraded" if degraded else "ok",
        store="reachable",
        head=head,
        lag=lag,
        projections=projections,
    )
