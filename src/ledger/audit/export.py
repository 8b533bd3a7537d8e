"""The log as JSON Lines: what ``ledger audit export`` writes and ``ledger audit verify`` reads.

An export is UTF-8, one JSON object per line, each line ending in ``\\n``::

    {"format":"ledger-audit-export","origin":"<origin>","v":1}          the header
    {"leaf":<leaf data>,"leaf_hash":"<base64>"}                          one per event
    ...
    {"size":<number of event lines>}                                     the trailer

- ``<leaf data>`` is the leaf data of ``leaf.py`` *verbatim* (canonical JSON of the stored
  record with its leaf index), so the line is itself canonical JSON and the leaf data is the
  bytes between ``{"leaf":`` and ``,"leaf_hash":"``;
- ``leaf_hash`` is base64 of the leaf hash *the log recorded* when it appended the event (its
  Merkle tree's level 0), or computed from the record when the writer has no tree. A verifier
  recomputes the hash from the leaf data: where the two differ, that event was changed after
  the log recorded it — the first bad leaf is named exactly, while the signed checkpoints'
  roots vouch for the recorded hashes;
- the trailer says how many events were written: an export without it was cut short.

Events are in log order, leaf indexes 0, 1, 2, ... with no gaps. ``write_export`` streams from
any iterable of stored records; memory does not grow with the log.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Final

from ledger.audit.leaf import StoredRecord, canonical_json, leaf_data
from ledger.audit.merkle import HASH_SIZE, leaf_hash

FORMAT: Final = "ledger-audit-export"
FORMAT_VERSION: Final = 1
LINE_PREFIX: Final = b'{"leaf":'
HASH_PREFIX: Final = b',"leaf_hash":"'
LINE_SUFFIX: Final = b'"}'
HASH_B64_LEN: Final = 44  # base64 of 32 bytes
WRITE_BATCH: Final = 1000  # lines per write call
PROGRESS_EVERY: Final = 10_000  # events between progress calls


def header_line(origin: str) -> bytes:
    return canonical_json({"format": FORMAT, "origin": origin, "v": FORMAT_VERSION}) + b"\n"


def trailer_line(size: int) -> bytes:
    return canonical_json({"size": size}) + b"\n"


def event_line(data: bytes, hash_: bytes) -> bytes:
    """The export line of one event: its leaf data verbatim and the log's leaf hash."""
    if len(hash_) != HASH_SIZE:
        raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(hash_)}")
    return LINE_PREFIX + data + HASH_PREFIX + base64.b64encode(hash_) + LINE_SUFFIX + b"\n"


def export_lines(
    records: Iterable[StoredRecord],
    *,
    origin: str,
    leaf_hashes: Iterable[bytes] | None = None,
) -> Iterator[bytes]:
    """The export, line by line (for a streaming HTTP response or a file).

    ``leaf_hashes``, if given, are the log's recorded leaf hashes in the same order (the tree's
    level 0). The export writes what the store holds even where it disagrees with them: that
    is for the verifier to find. Records beyond the recorded hashes (the tree not caught up
    yet) get their hash computed; recorded hashes beyond the records are left out."""
    yield header_line(origin)
    hashes = iter(leaf_hashes if leaf_hashes is not None else ())
    size = 0
    # Leaf indexes are places, whatever the ids: an export writes what the store holds, and
    # ids out of order are for the verifier to name.
    for index, record in enumerate(records):
        data = leaf_data(index, record)
        yield event_line(data, next(hashes, None) or leaf_hash(data))
        size = index + 1
    yield trailer_line(size)


def write_export(
    out: IO[bytes],
    records: Iterable[StoredRecord],
    *,
    origin: str,
    leaf_hashes: Iterable[bytes] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the export of ``records`` to a binary stream; return the number of events.
    ``progress(events_written)`` is called every ``PROGRESS_EVERY`` events and at the end."""
    batch: list[bytes] = []
    events = -1  # the header is not an event
    for line in export_lines(records, origin=origin, leaf_hashes=leaf_hashes):
        batch.append(line)
        events += 1
        if len(batch) >= WRITE_BATCH:
            out.write(b"".join(batch))
            batch.clear()
        if progress is not None and events and events % PROGRESS_EVERY == 0:
            progress(events)
    out.write(b"".join(batch))
    events -= 1  # nor is the trailer
    if progress is not None:
        progress(events)
    return events
