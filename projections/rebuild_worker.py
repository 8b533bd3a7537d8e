"""A worker process of a rebuild (``projections.rebuild.Worker``), run as
``python -m projections.rebuild_worker``: it reads its job, pickled, from standard input
(an opener of the store, the projections' names, the generation, the batch size and where
the load stops), loads those projections (``projections.rebuild.run_worker``) and reports
on standard output: ``position N`` as it goes, then ``done EVENTS``. A failure: the
traceback on standard error, exit status 1 (the parent drops the rebuild's tables).
SIGTERM stops it the same way, its page writer first.
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
    opener, names, generation, batch_size, stop = pickle.loads(sys.stdin.buffer.read())
    # The protocol has standard output to itself: anything else printed goes to errors.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from projections.rebuild import run_worker

    def report(position: int) -> None:
        out.write(f"position {position}\n")

    events = run_worker(opener, names, generation, batch_size, stop, report)
    out.write(f"done {events}\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
