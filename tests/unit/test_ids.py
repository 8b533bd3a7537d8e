"""Ids and request fingerprints are in stored logs: they never change.

Pinned values were computed by release 0.1.0 (orjson fingerprints, hand-built uuid5s); a
property test checks the fingerprint against orjson's canonical JSON, the bytes release
0.1.0 hashed, on random command content.
"""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.common import NAMESPACE, donor_id_for, entity_id, fingerprint, fund_id

DONATION = entity_id("tea-village", "donation", "2026-11-27-001")


@pytest.mark.parametrize(
    ("made", "pinned"),
    [
        (NAMESPACE, "0015c384-a232-54f6-97b1-c751f12363b1"),
        (fund_id("tea-village"), "4d828b8a-22cd-5723-9951-856d4e3fa34a"),
        (DONATION, "5fbe3283-6d3e-58a1-91a7-7024a28563e0"),
        (entity_id("tea-village:8f1c", "refund", "退款-1"), "3c74fc56-9853-5ab0-a181-fd22e851e854"),
        (donor_id_for(DONATION), "b9d2fc4c-83f6-58fc-95df-025fc4e67937"),
    ],
)
def test_ids_are_the_ones_release_0_1_made(made: UUID, pinned: str) -> None:
    assert made == UUID(pinned)
    assert (made.version, str(made)) == (5, pinned)


@pytest.mark.parametrize(
    ("fields", "pinned"),
    [
        (
            {
                "kind": "donation",
                "fund": "tea-village",
                "amount_minor": 5000,
                "received_on": "2026-11-27",
                "channel": "wechat",
                "purpose": "",
                "anonymous": False,
                "public_name": None,
                "personal": True,
                "external_ref": None,
                "note": '给老人\n买米 "好" \\ \x00 \u2028',
                "in_kind": None,
            },
            "5cf769e8ea0583118d33a3799e832b3512397e6a72b96667a2edea39168ae9fe",
        ),
        (
            {
                "kind": "fund",
                "slug": "tea-village",
                "name": "茶乡振兴基金",
                "currency": "CNY",
                "description": "",
                "host": "示例公益基金会",
                "committee": ["李主任", "王会计", "张村长"],
                "approvals_required": 2,
                "purposes": [{"code": "elderly-care", "name": "养老"}],
            },
            "d7d612e88c91bd84401da3e6c9822b2bb78bbda7d1ac0308238e03b6217a491f",
        ),
        (
            {
                "kind": "disbursement",
                "grant": "g",
                "amount_minor": 2**70,  # past 64 bits
                "paid_on": "None",
                "method": "bank",
                "reference": "T1",
                "evidence_sha256": None,
            },
            "4823c4fb06c3e28eef736174cec47b38541213547909fb4b28cc486f9f422aff",
        ),
    ],
)
def test_fingerprints_are_the_ones_release_0_1_made(fields: dict[str, Any], pinned: str) -> None:
    assert fingerprint(**fields) == pinned


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=12),
        st.recursive(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(min_value=-(2**63), max_value=2**64 - 1),  # orjson's range
                st.text(),
            ),
            lambda inner: st.one_of(
                st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ),
        max_size=8,
    )
)
def test_fingerprints_hash_the_bytes_release_0_1_hashed(fields: dict[str, Any]) -> None:
    written_by_0_1 = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    assert fingerprint(**fields) == hashlib.sha256(written_by_0_1).hexdigest()
