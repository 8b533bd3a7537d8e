"""The rebuild's other processes: worker processes that load some projections, and what
every process of the rebuild needs (waiting for or killing one, the cyclic garbage
collector paused).

A ``Worker`` runs ``python -m projections.engine.rebuild_worker``: its job (a callable that
pickles, ``job(report) -> events``) goes down its standard input; it reports its position
as lines (``position N``) and ends with ``done EVENTS``. Its standard error is read as it
comes (a full pipe would stop it), logged here at INFO, and its last lines kept: a failure
is raised by ``wait`` with the last one.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from projections.errors import RebuildFailed

log = logging.getLogger(__name__)

WAIT_S = 0.5  # how often a wait for a process ticks
JOIN_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 10.0  # for a worker told to stop, before it is killed
WORKER_ERROR_LINES = 40  # of a worker's standard error, kept for its failure

Job = Callable[[Callable[[int], None]], int]
"""A worker's job: loads, calling ``report(position)`` as it goes; returns the events read.
It pickles (a module-level function, or a ``functools.partial`` of one)."""


class Worker:
    """A process of the rebuild that runs one job (``describes``: what it loads, for the
    messages); ``close`` stops a worker still running."""

    def __init__(self, job: Job, describes: str) -> None:
        self.describes = describes
        self.position = 0
        self._events: int | None = None
        # The same modules as this process (a benchmark or test may have put the code on
        # the path rather than installed it).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "projections.engine.rebuild_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        log.info("rebuild worker %d loads %s", self._process.pid, describes)
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(pickle.dumps(job))
            self._process.stdin.close()
        except OSError:
            pass  # it ended at once: ``wait`` says why
        self._said: collections.deque[str] = collections.deque(maxlen=WORKER_ERROR_LINES)
        self._threads = [
            threading.Thread(target=target, name=f"rebuild-worker-{self.pid}", daemon=True)
            for target in (self._read, self._read_errors)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            word, _, number = line.decode().partition(" ")
            if word == "position":
                self.position = int(number)
            elif word == "done":
                self._events = int(number)

    def _read_errors(self) -> None:
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line.strip():
                self._said.append(line)
                log.info("rebuild worker %d: %s", self.pid, line)

    def wait(self, tick: Callable[[], None]) -> int:
        """Wait for the worker to finish (``tick`` now and then); the events it read."""
        while True:
            try:
                self._process.wait(WAIT_S)
                break
            except subprocess.TimeoutExpired:
                tick()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)
        if self._process.returncode != 0 or self._events is None:
            if self._said:
                log.error("rebuild worker %d failed:\n%s", self.pid, "\n".join(self._said))
            reason = self._said[-1] if self._said else f"exit status {self._process.returncode}"
            raise RebuildFailed(f"the rebuild's worker for {self.describes} failed: {reason}")
        return self._events

    def close(self) -> None:
        """Stop the worker if it still runs (it stops its page writer first), and wait."""
        process = self._process
        if process.poll() is None:
            process.terminate()
        wait_or_kill(process, WORKER_STOP_TIMEOUT_S, "the rebuild's worker")
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)
        close_pipes(process)


def wait_or_kill(process: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    """Wait for a process of the rebuild to end; kill it if it does not in time."""
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        log.error("%s (pid %d) did not stop; killing it", what, process.pid)
        process.kill()
        process.wait(JOIN_TIMEOUT_S)


def close_pipes(process: subprocess.Popen[Any]) -> None:
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def cpus_usable() -> int:
    """The CPUs this process may run on (a container's share, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or os.cpu_count() or 1
    return os.cpu_count() or 1


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """A rebuild makes millions of short-lived objects and keeps large caches: the cyclic
    garbage collector's passes over them cost a third of the time. It makes no reference
    cycles worth collecting (reference counting frees what it drops), so the collector
    pauses while it runs, process-wide, and runs once after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            gc.collect(1)
