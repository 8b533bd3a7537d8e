"""Where each projection stands: position, lag, version, a rebuild in progress, its last
failure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import Engine

from projections.projection import Projection
from projections.registry import PROJECTIONS
from projections.tracking import read_states


@dataclass(frozen=True, slots=True)
class Failure:
    name: str
    position: int  # the notification id it failed on
    error: str
    attempts: int
    transient: bool


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    version: int  # of the code
    tables_version: int | None  # of the code that made the live tables
    position: int
    head: int
    generation: int
    rebuilding: bool
    build_position: int | None
    failure: Failure | None = None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    @property
    def stale(self) -> bool:
        return self.tables_version != self.version


def projection_status(
    app: Application[Any],
    engine: Engine,
    failures: dict[str, Failure] | None = None,
    *,
    projections: Sequence[type[Projection[Any]]] = PROJECTIONS,
) -> list[ProjectionStatus]:
    """Position, lag and version of every projection, from the database."""
    head = app.recorder.max_notification_id() or 0
    with engine.connect() as conn:
        states = read_states(conn)
    out = []
    for cls in projections:
        state = states.get(cls.name, {})
        out.append(
            ProjectionStatus(
                name=cls.name,
                version=cls.version,
                tables_version=state.get("version"),
                position=int(state.get("position") or 0),
                head=head,
                generation=int(state.get("generation") or 0),
                rebuilding=state.get("build_generation") is not None,
                build_position=state.get("build_position"),
                failure=(failures or {}).get(cls.name),
            )
        )
    return out
