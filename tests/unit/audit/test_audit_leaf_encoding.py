"""The leaf encoding written out directly is the canonical JSON of the leaf, and reads back."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.leaf import (
    JSON_SAFE_INT_MAX,
    LeafError,
    StoredRecord,
    canonical_json,
    leaf_data,
    leaf_object,
    parse_leaf,
)

ints = st.integers(min_value=0, max_value=JSON_SAFE_INT_MAX)
topics = st.from_regex(r"[A-Za-z0-9_.:]{1,80}", fullmatch=True)
records = st.builds(
    StoredRecord,
    notification_id=ints,
    originator_id=st.uuids().map(str),
    originator_version=ints,
    topic=topics,
    state=st.binary(max_size=300),
)


@given(index=ints, record=records)
def test_leaf_data_is_the_canonical_json_of_the_leaf_and_reads_back(
    index: int, record: StoredRecord
) -> None:
    data = leaf_data(index, record)
    assert data == canonical_json(leaf_object(index, record))
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert parse_leaf(data) == (index, record)


def test_a_uuid_in_another_form_is_refused() -> None:
    record = StoredRecord(1, uuid.uuid4().hex, 1, "m:C.E", b"")
    with pytest.raises(LeafError, match="lowercase UUID"):
        leaf_data(0, record)


@pytest.mark.parametrize("topic", ["", 'a"b', "a b", "模块:类", "a\\b"])
def test_a_topic_that_would_need_escaping_is_refused(topic: str) -> None:
    with pytest.raises(LeafError, match="topic"):
        leaf_data(0, StoredRecord(1, str(uuid.uuid4()), 1, topic, b""))
