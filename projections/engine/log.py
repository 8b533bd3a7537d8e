"""Reading the event log in batches, each event decoded once for every projection.

A batch is a list of ``Decoded`` tuples, in log order::

    (notification id, topic, domain event or None, originator id as text, notification)

The event is None where no projection follows its topic (it is not decoded); the
notification (as the recorder holds it: id, topic, originator id and version, ``state``
bytes) only where a projection follows the whole log (``Projection.follows_log``), else
None: the others never pay for it.

On SQLite the events table is read directly, without the recorder's ``Notification``
objects; the events and ids are the same (the recorder's own id conversion).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID, SafeUUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from eventsourcing.sqlite import SQLiteApplicationRecorder

from projections.engine.decoder import FastDecoder

IDS_CACHED_MAX = 100_000  # originator ids kept converted while reading the log

Decoded = tuple[int, str, Any, str, Notification | None]


class LogReader:
    """Reads and decodes the log for projections that follow ``topics`` (and, with
    ``whole_log``, one that follows every notification)."""

    def __init__(self, app: Application[Any], topics: frozenset[str], *, whole_log: bool) -> None:
        self.recorder = app.recorder
        self.decoder = FastDecoder(app.mapper)
        self.topics = topics
        self.whole_log = whole_log
        # Stored originator ids, converted as the recorder converts them, and as text.
        self._ids: dict[Any, tuple[Any, str]] = {}

    def decode(self, notifications: Iterable[Notification]) -> list[Decoded]:
        to_event = self.decoder
        topics = self.topics
        keep = self.whole_log
        return [
            (n.id, n.topic, to_event(n), str(n.originator_id), n if keep else None)
            if n.topic in topics
            else (n.id, n.topic, None, "", n if keep else None)
            for n in notifications
        ]

    def read(
        self, after: int, limit: int, *, stop: int | None = None, followed_only: bool = False
    ) -> list[Decoded]:
        """The log after ``after`` (at most ``limit`` notifications, up to ``stop``),
        decoded. ``followed_only``: only the events of the topics followed (the store
        filters; a rebuild that knows where it stops)."""
        recorder = self.recorder
        wanted = sorted(self.topics) if followed_only and not self.whole_log else []
        if followed_only and not wanted and not self.whole_log:
            return []
        if not isinstance(recorder, SQLiteApplicationRecorder):
            return self.decode(
                recorder.select_notifications(
                    after + 1, limit, stop=stop, topics=wanted, inclusive_of_start=True
                )
            )
        where = f" AND topic IN ({', '.join('?' for _ in wanted)})" if wanted else ""
        statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {recorder.events_table_name} WHERE rowid>? AND rowid<=?{where} "
            "ORDER BY rowid LIMIT ?"
        )
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute(
                statement, (after, stop if stop is not None else 2**63 - 1, *wanted, limit)
            )
            rows = curs.fetchall()
        return self._decode_rows(recorder, rows)

    def _decode_rows(self, recorder: SQLiteApplicationRecorder, rows: list[Any]) -> list[Decoded]:
        if self.whole_log:
            return self._decode_rows_kept(recorder, rows)
        decode = self.decoder.decode
        ids = self._converted_ids(recorder)
        topics = self.topics
        out: list[Decoded] = []
        append = out.append
        for id_, stored_id, version, topic, state in rows:
            if topic in topics:
                known = ids.get(stored_id)
                if known is None:
                    known = ids[stored_id] = converted_id(recorder, stored_id)
                append((id_, topic, decode(id_, known[0], version, topic, state), known[1], None))
            else:
                append((id_, topic, None, "", None))
        return out

    def _decode_rows_kept(
        self, recorder: SQLiteApplicationRecorder, rows: list[Any]
    ) -> list[Decoded]:
        """``_decode_rows``, each with its notification (a projection follows the log)."""
        decode = self.decoder.decode
        ids = self._converted_ids(recorder)
        topics = self.topics
        out: list[Decoded] = []
        for id_, stored_id, version, topic, state in rows:
            known = ids.get(stored_id)
            if known is None:
                known = ids[stored_id] = converted_id(recorder, stored_id)
            notification = Notification(
                id=id_,
                originator_id=known[0],
                originator_version=version,
                topic=topic,
                state=state,
            )
            if topic in topics:
                event = decode(id_, known[0], version, topic, state)
                out.append((id_, topic, event, known[1], notification))
            else:
                out.append((id_, topic, None, "", notification))
        return out

    def _converted_ids(self, recorder: SQLiteApplicationRecorder) -> dict[Any, tuple[Any, str]]:
        if len(self._ids) > IDS_CACHED_MAX:
            self._ids.clear()
        return self._ids


def converted_id(recorder: SQLiteApplicationRecorder, stored_id: Any) -> tuple[Any, str]:
    """A stored originator id as the recorder converts it, and as text. The form the
    recorder stores UUIDs in (32 hex digits) is converted here, the ``UUID`` built as
    ``UUID(hex)`` builds it without its parsing; anything else by the recorder."""
    if (
        type(stored_id) is str
        and len(stored_id) == 32
        and recorder.datastore.originator_id_type == "uuid"
    ):
        try:
            raw = bytes.fromhex(stored_id)
        except ValueError:
            raw = b""
        if len(raw) == 16:
            oid = object.__new__(UUID)
            object.__setattr__(oid, "int", int.from_bytes(raw, "big"))
            object.__setattr__(oid, "is_safe", SafeUUID.unknown)
            d = raw.hex()
            return oid, f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:]}"
    converted = recorder.convert_originator_id(stored_id)
    return converted, str(converted)
