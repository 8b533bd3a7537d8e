"""The orjson transcoder writes the library's JSON bytes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.engine.transcoder import LedgerTranscoder, RecordAsDict


def transcoders() -> tuple[LedgerTranscoder, JSONTranscoder]:
    ours, theirs = LedgerTranscoder(), JSONTranscoder()
    for t in (ours, theirs):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            t.register(transcoding)
    return ours, theirs


OURS, THEIRS = transcoders()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits: the library's path
    st.text(),  # any code point but lone surrogates: control characters, CJK, emoji
    st.uuids().map(lambda u: UUID(int=u.int)),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), values, max_size=8))
def test_the_same_bytes_as_the_library(state: dict[str, Any]) -> None:
    encoded = OURS.encode(state)
    assert encoded == THEIRS.encode(state)
    assert OURS.decode(encoded) == THEIRS.decode(encoded)


def test_an_event_state_with_its_timestamp() -> None:
    state = {
        "timestamp": datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC),
        "receipt_no": "tea-village-2026-000001",
        "amount_minor": 5000,
        "note": '给老人\n买米 "好" \\ \x00 \u2028',
        "in_kind": {"description": "大米", "valuation_basis": "市价"},
        "external_ref": None,
    }
    assert OURS.encode(state) == THEIRS.encode(state)


@pytest.mark.parametrize(
    "value",
    [1.5, 1e16, -0.0, {1: "non-string key"}, [2**64, -(2**63) - 1]],
)
def test_what_it_does_not_write_itself_the_library_writes(value: Any) -> None:
    assert OURS.encode({"v": value}) == THEIRS.encode({"v": value})


def test_unregistered_types_are_refused_like_the_library_does() -> None:
    class Unknown:
        pass

    for value in (Unknown(), {1, 2}):
        for transcoder in (OURS, THEIRS):
            with pytest.raises(TranscodingNotRegisteredError):
                transcoder.encode({"v": value})


@dataclass(frozen=True, slots=True)
class _Record:
    amount_minor: int
    paid_on: str
    note: str | None
    reversed: bool


def test_a_record_is_written_as_its_fields_and_read_back_as_itself() -> None:
    ours, theirs = transcoders()
    for t in (ours, theirs):
        t.register(RecordAsDict(_Record, "record"))
    state = {
        "records": [_Record(100, "2026-11-27", "茶", False)],
        "by_id": {"a": _Record(1, "", None, True)},
    }

    encoded = ours.encode(state)

    assert encoded == theirs.encode(state)
    assert b'{"_type_":"record","_data_":{"amount_minor":100,' in encoded
    assert ours.decode(encoded) == state


def test_only_a_dataclass_has_a_record_transcoding() -> None:
    with pytest.raises(TypeError):
        RecordAsDict(dict, "dict")
