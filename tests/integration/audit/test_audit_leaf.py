"""Leaves of real stored events (DESIGN §6): the bytes as stored, gap-free indexes."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from uuid import UUID

import pytest

from ledger.application import LedgerApp
from ledger.audit.leaf import (
    LeafError,
    StoredRecord,
    indexed,
    leaf_data,
    leaf_hash_of,
    parse_leaf,
    read_records,
)
from ledger.audit.merkle import leaf_hash


def raw_rows(path: Path) -> list[tuple[int, str, int, str, bytes]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events"
            " ORDER BY rowid"
        ).fetchall()
    return [(int(r[0]), str(r[1]), int(r[2]), str(r[3]), bytes(r[4])) for r in rows]


def test_a_leaf_holds_the_stored_bytes_exactly(busy_app: LedgerApp, sqlite_path: Path) -> None:
    records = list(read_records(busy_app.recorder, page_size=7))
    rows = raw_rows(sqlite_path)
    assert len(records) == len(rows) > 20
    for (index, record), row in zip(indexed(records), rows, strict=True):
        data = leaf_data(index, record)
        leaf = json.loads(data)
        assert leaf == {
            "v": 1,
            "index": index,
            "notification_id": row[0],
            # SQLite keeps the UUID as 32 hex digits; the leaf has its canonical form.
            "originator_id": str(UUID(row[1])),
            "originator_version": row[2],
            "topic": row[3],
            "state_b64": base64.b64encode(row[4]).decode(),
        }
        # Canonical: sorted keys, no whitespace.
        assert data == json.dumps(leaf, sort_keys=True, separators=(",", ":")).encode()
        assert leaf_hash_of(index, record) == leaf_hash(data)
        assert parse_leaf(data) == (index, record)


def test_a_named_donors_details_are_in_the_leaf_as_ciphertext(busy_app: LedgerApp) -> None:
    credited = [r for r in read_records(busy_app.recorder) if r.topic.endswith("Donation.Received")]
    assert credited
    leaves = b"".join(leaf_data(i, r) for i, r in indexed(credited))
    states = b"".join(r.state for r in credited)
    assert "张三".encode() not in states + leaves
    assert b"13800000000" not in states + leaves


RECORD = StoredRecord(
    notification_id=7,
    originator_id="d28ebf31-1bcb-5711-a853-6e7d6b1f8842",
    originator_version=1,
    topic="ledger.domain.fund:Fund.Opened",
    state=b'{"slug":"tea"}',
)


def test_leaf_indexes_are_gap_free_whatever_the_store_ids() -> None:
    records = [RECORD._replace(notification_id=n) for n in (3, 4, 9, 200)]
    assert [i for i, _ in indexed(records)] == [0, 1, 2, 3]
    assert [i for i, _ in indexed(records, start=10)] == [10, 11, 12, 13]


@pytest.mark.parametrize("ids", [(3, 3), (5, 4)])
def test_store_ids_that_do_not_increase_are_refused(ids: tuple[int, int]) -> None:
    records = [RECORD._replace(notification_id=n) for n in ids]
    with pytest.raises(LeafError, match="leaf 1: notification id"):
        list(indexed(records))


def test_the_leaf_encoding_of_a_known_record() -> None:
    assert leaf_data(0, RECORD) == (
        b'{"index":0,"notification_id":7,"originator_id":"d28ebf31-1bcb-5711-a853-6e7d6b1f8842",'
        b'"originator_version":1,"state_b64":"eyJzbHVnIjoidGVhIn0=",'
        b'"topic":"ledger.domain.fund:Fund.Opened","v":1}'
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"v":1}', "fields missing"),
        (leaf_data(0, RECORD).replace(b'"v":1', b'"v":2'), "leaf version"),
        (leaf_data(0, RECORD).replace(b'"v":1', b'"v":true'), "leaf version"),
        (leaf_data(0, RECORD).replace(b'"index":0', b'"index":-1'), "non-negative"),
        (leaf_data(0, RECORD).replace(b"eyJ", b"!yJ"), "not base64"),
        (leaf_data(0, RECORD).replace(b"d28ebf31", b"D28EBF31"), "lowercase UUID"),
        (leaf_data(0, RECORD).replace(b'{"index"', b'{ "index"'), "canonical"),
        (leaf_data(0, RECORD).replace(b'"index":0', b'"index":0.0'), "integer"),
    ],
)
def test_leaf_data_that_is_not_the_canonical_encoding_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(LeafError, match=reason):
        parse_leaf(data)
