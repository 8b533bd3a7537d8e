"""A rebuild's pages of rows on SQLite, and the page writer process that commits them.

The rebuild's process turns each page's rows into the parameters ``executemany`` would bind
(``Page``: statements and tuples of plain values), pickles them, and hands them to a
``Sink``: ``PageWriter`` sends them to a process of its own (``page_writer.py``, standard
library only) that writes and commits each page while this process decodes and applies
the next batch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Dialect

from projections.engine.page_writer import HEADER
from projections.engine.processes import close_pipes, wait_or_kill
from projections.engine.writer import TableWriter, writer_for
from projections.errors import RebuildFailed
from projections.projection import Appends, Part, Rows

log = logging.getLogger(__name__)

PAGES_QUEUED_MAX = 2  # pages handed to the page writer and not yet sent to it
WRITER_WAIT_S = 0.5  # how often a wait for the writer checks that it still runs
WRITER_JOIN_TIMEOUT_S = 60.0
_STOP = (0, b"")  # the page writer's thread ends when it takes this


class Page:
    """A page of a rebuild's rows (SQLite), for the page writer process: the statements
    and the parameters the driver would bind, with how many rows each must write, handed
    over pickled. Nothing the projections keep is shared: the rows are tuples of plain
    values."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.statements: list[tuple[str, list[Any], int]] = []  # (SQL, rows, row count)

    def add(self, writer: TableWriter, chunks: Iterable[list[Any]], *, update: bool) -> None:
        """Add rows (tuples of every column, in the table's order): inserted, or, with
        ``update``, rows read back from the table, updated by key."""
        sql = writer.upsert_sql if update else writer.insert_sql
        for chunk in chunks:
            if chunk:
                self.statements.append((sql, chunk, len(chunk)))

    def finish(self) -> bytes:
        """The page, pickled without a memo (its rows are flat tuples of plain values:
        several times faster than with one, or than ``marshal``)."""
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.fast = True
        pickler.dump(self.statements)
        return buffer.getvalue()


def stage_part(page: Page, part: Part) -> None:
    """What a batch changed in one table, into ``page`` (``write_part``'s SQLite twin)."""
    writer = writer_for(part.table, page.dialect)
    if isinstance(part, Appends):
        page.add(writer, writer.tuple_chunks(part.rows), update=False)
    elif isinstance(part, Rows):
        page.add(writer, writer.row_chunks(list(part.new.values())), update=False)
        page.add(writer, writer.row_chunks(list(part.dirty.values())), update=True)
    else:
        raise TypeError(f"no writer for {type(part).__name__}")


class Sink(Protocol):
    """Where a rebuild on SQLite hands its pages of rows: ``submit`` queues one, ``drain``
    waits until every page handed over is committed (and raises what the writer raised),
    ``close`` stops it (pages not yet written are dropped)."""

    def submit(self, page: Page) -> None: ...

    def drain(self) -> None: ...

    def close(self) -> None: ...


class PageWriter:
    """The page writer of a rebuild on SQLite: a process of its own (``page_writer.py``,
    standard library only) that owns the rebuild's write transactions while the log is
    replayed. Each page goes down its standard input and is written with ``executemany``
    and committed there, one transaction per page, on the second core, while this process
    decodes and applies the next batch. (A thread would not overlap: binding rows takes
    the GIL back for every row; staging them here instead cost as much as writing them.)

    A thread here (``rebuild-pages``) sends the pages and reads the writer's
    acknowledgements, one page at a time; at most ``PAGES_QUEUED_MAX`` more wait here
    (memory stays bounded; the main thread waits for room). A failure of the process (its
    last line of standard error) or of the pipe stops the thread; the main thread's next
    ``submit`` or ``drain`` raises it. ``close`` stops both and waits for them; after a
    failure it kills the process (its open transaction is rolled back)."""

    def __init__(
        self, path: str, *, busy_timeout_ms: int, cache_kib: int, secure_delete: str
    ) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                str(Path(__file__).with_name("page_writer.py")),
                path,
                str(busy_timeout_ms),
                str(cache_kib),
                secure_delete,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._pages: queue.Queue[tuple[int, bytes]] = queue.Queue(PAGES_QUEUED_MAX)
        self._done = threading.Condition()
        self._submitted = 0
        self._written = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rebuild-pages", daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def submit(self, page: Page) -> None:
        item = (self._submitted + 1, page.finish())
        while True:
            self._check()
            try:
                self._pages.put(item, timeout=WRITER_WAIT_S)
                break
            except queue.Full:
                continue
        self._submitted += 1

    def drain(self) -> None:
        with self._done:
            while self._written < self._submitted:
                self._check()
                self._done.wait(WRITER_WAIT_S)
        self._check()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive():
            raise RebuildFailed("the rebuild's page writer stopped")

    def close(self) -> None:
        """Stop the writer (pages not yet written are dropped) and wait for it; after a
        failure, or if it does not stop in time, kill it."""
        self._stop.set()
        process = self._process
        if self._error is not None or self._written < self._submitted:
            process.kill()
        with contextlib.suppress(queue.Full):
            self._pages.put_nowait(_STOP)  # wakes the thread at once
        self._thread.join(WRITER_JOIN_TIMEOUT_S)
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]  # the end: the writer exits
        wait_or_kill(process, WRITER_JOIN_TIMEOUT_S, "the rebuild's page writer")
        close_pipes(process)
        if self._thread.is_alive():
            log.error("the rebuild's page thread did not stop")

    def _run(self) -> None:
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            # Until ``close`` hands over ``_STOP`` (or, where the queue was full, kills the
            # process: the next write or read here then fails).
            while (item := self._pages.get()) is not _STOP:
                number, data = item
                process.stdin.write(HEADER.pack(len(data)))
                process.stdin.write(data)
                process.stdin.flush()
                del item, data
                ack = process.stdout.read(HEADER.size)
                if len(ack) < HEADER.size or HEADER.unpack(ack)[0] != number:
                    raise self._failure()
                with self._done:
                    self._written = number
                    self._done.notify_all()
        except BaseException as e:
            error = e if self._stop.is_set() or not isinstance(e, OSError) else self._failure()
            self._fail(error)

    def _failure(self) -> RebuildFailed:
        """What the writer process said before it ended (the last line of its error)."""
        process = self._process
        wait_or_kill(process, WRITER_JOIN_TIMEOUT_S, "the failed page writer")
        said = process.stderr.read().decode(errors="replace") if process.stderr else ""
        lines = [line for line in said.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {process.returncode}"
        return RebuildFailed(f"the rebuild's page writer failed: {reason}")

    def _fail(self, error: BaseException) -> None:
        with self._done:
            self._error = error
            self._done.notify_all()
