"""A worker process of a rebuild (``projections.engine.processes.Worker``), run as
``python -m projections.engine.rebuild_worker``: it reads its job, pickled, from standard
input (a callable: ``job(report) -> events``), runs it and reports on standard output:
``position N`` as it goes, then ``done EVENTS``. A failure: the traceback on standard
error, exit status 1 (the parent drops the rebuild's tables). SIGTERM stops it the same
way, its page writer first.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # the load's cleanup runs


def main() -> int:
    # Told to stop (the rebuild failed elsewhere): its page writer is stopped first.
    signal.signal(signal.SIGTERM, _stop)
    # The protocol has standard output to itself: anything else printed goes to errors.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    job = pickle.loads(sys.stdin.buffer.read())  # (imports the job's own modules)

    def report(position: int) -> None:
        out.write(f"position {position}\n")

    events = job(report)
    out.write(f"done {events}\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
