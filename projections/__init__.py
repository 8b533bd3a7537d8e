"""Read models of the ledger: SQLAlchemy tables in the event store's database, fed from the
event log by projections, and what reads them (figures, as-of queries, reports, CSV).

The usual entry points::

    engine = make_engine(settings.database_url)
    runner = ProjectionRunner(app, engine).start()   # keeps the tables up with the log
    runner.wait_for(app.recorder.max_notification_id(), timeout_s=2)   # read your writes
    with engine.connect() as conn:
        figures = fund_figures(conn, "tea-village")

``projections.rebuild.rebuild(app, engine)`` rebuilds from zero (``ledger projections
rebuild``, in ``api.cli.projections``, runs it). Nothing happens at import time.
"""

from projections.db import make_engine
from projections.errors import InvariantBroken, ProjectionError
from projections.exports.csv_files import export_csv, iter_csv
from projections.queries import (
    Figures,
    FundFigures,
    figures_as_of,
    figures_known_at_replay,
    fund_figures,
)
from projections.rebuild import RebuildResult
from projections.registry import PROJECTION_NAMES, ensure_schema
from projections.reports import build_report
from projections.runner import ProjectionRunner
from projections.status import ProjectionStatus, projection_status

__all__ = [
    "PROJECTION_NAMES",
    "Figures",
    "FundFigures",
    "InvariantBroken",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionStatus",
    "RebuildResult",
    "build_report",
    "ensure_schema",
    "export_csv",
    "figures_as_of",
    "figures_known_at_replay",
    "fund_figures",
    "iter_csv",
    "make_engine",
    "projection_status",
]
