"""The page writer of a rebuild on SQLite: a process of its own, run by path
(``python -I page_writer.py FILE``), that writes pages of rows into the new tables while the
rebuild's process decodes and applies the next batch.

It imports the standard library only (it starts in tens of milliseconds) and speaks a
small protocol over its standard streams:

- in: frames, each an 8-byte little-endian length and that many bytes: a pickled list of
  ``(sql, rows, count)`` (``rows`` the parameters of ``executemany``, ``count`` how many
  rows the statement must write). The end of the input stops it.
- out: after each frame is committed, its number (8 bytes, from 1).
- a failure: the traceback on standard error and exit status 1; the frame's transaction is
  rolled back (nothing of it is in the file).

Each frame is one transaction (``BEGIN IMMEDIATE``, SQLite's busy timeout for the file's
write lock), with the read models' connection settings (``synchronous=NORMAL``, the same
page cache and ``secure_delete``): in WAL mode a commit is atomic. Until the rebuild's
final transaction writes its position, a crash leaves only tables the next rebuild drops.
"""

from __future__ import annotations

import gc
import pickle
import sqlite3
import struct
import sys
from typing import Any, BinaryIO

HEADER = struct.Struct("<Q")


def read_frame(source: BinaryIO) -> bytes | None:
    """The next frame's bytes; None at the end of the input."""
    header = source.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    data = source.read(size)
    if len(data) != size:
        raise EOFError(f"a frame of {size} bytes ended after {len(data)}")
    return data


def write_page(db: sqlite3.Connection, statements: list[tuple[str, list[Any], int]]) -> None:
    """One page in one transaction; every statement must write exactly its ``count`` rows."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows, count in statements:
            written = db.executemany(sql, rows).rowcount
            if written != count or len(rows) != count:
                raise RuntimeError(f"{sql!r} wrote {written} rows, not {count}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: page_writer.py FILE BUSY_TIMEOUT_MS CACHE_KIB SECURE_DELETE", file=sys.stderr)
        return 2
    path, busy_ms, cache_kib, secure_delete = argv[1], int(argv[2]), int(argv[3]), argv[4]
    if secure_delete not in ("ON", "OFF", "FAST"):
        print(f"SECURE_DELETE is ON, OFF or FAST, not {secure_delete!r}", file=sys.stderr)
        return 2
    # ``bool`` and ``None`` are not among the types the driver binds without asking its
    # adapter registry, and a miss there costs several attribute lookups per value (half
    # the cost of a donation's row): registered, they cost one call. Same values bound
    # (``bool`` as its ``int``, ``None`` as NULL); this process binds nothing else.
    sqlite3.register_adapter(bool, int)
    null: Any = {}.get  # a C callable that returns None
    sqlite3.register_adapter(type(None), null)
    db = sqlite3.connect(path, isolation_level=None, timeout=busy_ms / 1000)
    db.execute(f"PRAGMA busy_timeout = {busy_ms}")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(f"PRAGMA cache_size = -{cache_kib}")
    db.execute(f"PRAGMA secure_delete = {secure_delete}")
    # Its objects are pages of flat tuples, freed by reference counting once written: the
    # cyclic collector would only walk them (a tenth of the unpickling's time).
    gc.disable()
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    number = 0
    try:
        while (data := read_frame(source)) is not None:
            statements = pickle.loads(data)
            del data
            write_page(db, statements)
            del statements
            number += 1
            sink.write(HEADER.pack(number))
            sink.flush()
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
