"""A stored event as a leaf of the log's Merkle tree (DESIGN §6).

The leaf data of the event at leaf index ``i`` is the canonical JSON of::

    {"v": 1, "index": i, "notification_id": ..., "originator_id": ..., "originator_version": ...,
     "topic": ..., "state_b64": ...}

- canonical: keys sorted, no whitespace, UTF-8 — for these values (ASCII strings, integers
  below 2**53) the same bytes as RFC 8785 (JCS) and as ``JSON.stringify`` of an object built in
  sorted key order;
- ``originator_id`` is the UUID in its 36-character lowercase form, ``topic`` the library's
  topic of the event class (``ledger.domain.fund:Fund.DonationCredited``);
- ``state_b64`` is the standard base64 (RFC 4648 §4, with padding) of the state *as stored*:
  the bytes in the store's ``state`` column, whatever they encode (encrypted donor fields are
  ciphertext there, so the leaf verifies without any key);
- ``index`` counts the log's events from 0 without gaps. ``notification_id`` is the store's own
  id, which may have gaps (PostgreSQL sequences skip on rollback); it must only increase.

The leaf hash is ``SHA-256(0x00 || leaf data)`` (``merkle.leaf_hash``). The export writes the
leaf data as its lines, so a verifier may hash each line as it is.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol

from ledger.audit.merkle import leaf_hash

LEAF_VERSION: Final = 1
LEAF_KEYS: Final = frozenset(
    {"v", "index", "notification_id", "originator_id", "originator_version", "topic", "state_b64"}
)
JSON_SAFE_INT_MAX: Final = 2**53 - 1
TOPIC_LEN_MAX: Final = 1000
READ_PAGE_SIZE: Final = 1000
STATE_SIZE_MAX: Final = 16 * 1024 * 1024  # bytes of one stored state
TOPIC_CHARS: Final = "A-Z a-z 0-9 _ . :"  # a Python module path, a colon, a class's qualname
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UUID_RE: Final = re.compile(_UUID)
_TOPIC_RE: Final = re.compile(r"[A-Za-z0-9_.:]+")
_INT = rb"(0|[1-9][0-9]{0,15})"
_LEAF_RE: Final = re.compile(
    rb'\{"index":' + _INT + rb',"notification_id":' + _INT
    + rb',"originator_id":"(' + _UUID.encode() + rb')","originator_version":' + _INT
    + rb',"state_b64":"([A-Za-z0-9+/]*={0,2})","topic":"([A-Za-z0-9_.:]+)","v":1\}'
)  # fmt: skip


class LeafError(ValueError):
    """A leaf that is not what the encoding says (a field missing, a wrong type, not
    canonical, an index out of sequence)."""


class StoredRecord(NamedTuple):
    """One stored event, as the store holds it. (A named tuple: the verifier makes one per
    event, and a tuple is made several times faster than a frozen dataclass.)"""

    notification_id: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes


class NotificationLike(Protocol):
    """The eventsourcing library's ``Notification`` (a stored event with its position)."""

    @property
    def id(self) -> int: ...
    @property
    def originator_id(self) -> Any: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...


class NotificationReader(Protocol):
    """The library's application recorder, as far as reading the log goes."""

    def select_notifications(self, start: int | None, limit: int) -> Sequence[NotificationLike]: ...


def read_records(
    recorder: NotificationReader, *, after: int = 0, page_size: int = READ_PAGE_SIZE
) -> Iterator[StoredRecord]:
    """The stored events with notification ids above ``after``, in log order, read page by
    page (the library's ``select_notifications``; ``start`` is inclusive)."""
    start = after + 1
    while True:
        page = recorder.select_notifications(start=start, limit=page_size)
        for notification in page:
            yield record_of(notification)
        if len(page) < page_size:
            return
        start = page[-1].id + 1


def record_of(notification: NotificationLike) -> StoredRecord:
    """The stored record of a notification read from the store."""
    return StoredRecord(
        notification_id=notification.id,
        originator_id=str(notification.originator_id),
        originator_version=notification.originator_version,
        topic=notification.topic,
        state=bytes(notification.state),
    )


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaf_object(index: int, record: StoredRecord) -> dict[str, Any]:
    """The leaf as a JSON object (before encoding)."""
    return {
        "v": LEAF_VERSION,
        "index": index,
        "notification_id": record.notification_id,
        "originator_id": record.originator_id,
        "originator_version": record.originator_version,
        "topic": record.topic,
        "state_b64": base64.b64encode(record.state).decode("ascii"),
    }


def leaf_data(index: int, record: StoredRecord) -> bytes:
    """The bytes that are hashed into the tree for the event at leaf ``index``.

    The same bytes as ``canonical_json(leaf_object(index, record))`` (a property test holds
    the two equal), written out directly: no field needs JSON escaping once checked (a UUID,
    integers, base64 and a topic of ``TOPIC_CHARS``)."""
    _check_record(record)
    if type(index) is not int or not 0 <= index <= JSON_SAFE_INT_MAX:
        raise LeafError(f"leaf index {index!r} is out of range")
    state_b64 = base64.b64encode(record.state).decode("ascii")
    return (
        f'{{"index":{index},"notification_id":{record.notification_id},'
        f'"originator_id":"{record.originator_id}",'
        f'"originator_version":{record.originator_version},'
        f'"state_b64":"{state_b64}","topic":"{record.topic}","v":{LEAF_VERSION}}}'
    ).encode("ascii")


def leaf_hash_of(index: int, record: StoredRecord) -> bytes:
    return leaf_hash(leaf_data(index, record))


def indexed(records: Iterable[StoredRecord], start: int = 0) -> Iterator[tuple[int, StoredRecord]]:
    """Leaf indexes for records in log order, gap-free from ``start``, whatever the store's
    ids; a notification id that does not increase is refused (the log's order is broken)."""
    previous = -1
    for index, record in enumerate(records, start):
        if record.notification_id <= previous:
            raise LeafError(
                f"leaf {index}: notification id {record.notification_id} does not follow {previous}"
            )
        previous = record.notification_id
        yield index, record


def parse_leaf(data: bytes) -> tuple[int, StoredRecord]:
    """The leaf index and stored record of leaf data; refuse anything that is not exactly the
    canonical encoding (so that two different byte strings never read as the same leaf)."""
    match = _LEAF_RE.fullmatch(data)
    if match is None:
        return _parse_leaf_slowly(data)  # to say what is wrong
    index_text, id_text, originator_id, version_text, state_b64, topic = match.groups()
    try:
        state = binascii.a2b_base64(state_b64)  # the pattern admits only the base64 alphabet
    except binascii.Error:
        raise LeafError("state_b64 is not base64") from None
    index, notification_id, version = int(index_text), int(id_text), int(version_text)
    record = StoredRecord(notification_id, originator_id.decode(), version, topic.decode(), state)
    if binascii.b2a_base64(state, newline=False) != state_b64 or max(
        index, notification_id, version
    ) > (JSON_SAFE_INT_MAX):
        return _parse_leaf_slowly(data)
    if len(topic) > TOPIC_LEN_MAX or len(state) > STATE_SIZE_MAX:
        _check_record(record)
    return index, record


def _parse_leaf_slowly(data: bytes) -> tuple[int, StoredRecord]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LeafError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise LeafError("not a JSON object")
    if set(value) != LEAF_KEYS:
        missing, extra = LEAF_KEYS - set(value), set(value) - LEAF_KEYS
        raise LeafError(f"fields missing {sorted(missing)}, unexpected {sorted(extra)}")
    if value["v"] != LEAF_VERSION or type(value["v"]) is not int:
        raise LeafError(f"leaf version {value['v']!r}, not {LEAF_VERSION}")
    for name in ("index", "notification_id", "originator_version"):
        if type(value[name]) is not int or value[name] < 0:
            raise LeafError(f"{name} must be a non-negative integer")
    for name in ("originator_id", "topic", "state_b64"):
        if not isinstance(value[name], str):
            raise LeafError(f"{name} must be a string")
    try:
        state = base64.b64decode(value["state_b64"], validate=True)
    except binascii.Error:
        raise LeafError("state_b64 is not base64") from None
    record = StoredRecord(
        notification_id=value["notification_id"],
        originator_id=value["originator_id"],
        originator_version=value["originator_version"],
        topic=value["topic"],
        state=state,
    )
    index: int = value["index"]
    if leaf_data(index, record) != data:
        raise LeafError("not the canonical encoding of its fields")
    return index, record


def _check_record(record: StoredRecord) -> None:
    if not _UUID_RE.fullmatch(record.originator_id):
        raise LeafError(f"originator id {record.originator_id!r} is not a lowercase UUID")
    for name in ("notification_id", "originator_version"):
        number = getattr(record, name)
        if type(number) is not int or not 0 <= number <= JSON_SAFE_INT_MAX:
            raise LeafError(f"{name} {number!r} is out of range")
    if len(record.topic) > TOPIC_LEN_MAX or not _TOPIC_RE.fullmatch(record.topic):
        raise LeafError(f"topic {record.topic[:80]!r} must be 1..{TOPIC_LEN_MAX} of {TOPIC_CHARS}")
    if len(record.state) > STATE_SIZE_MAX:
        raise LeafError(f"a stored state of {len(record.state)} bytes is over {STATE_SIZE_MAX}")
