"""Request fingerprints are the SHA-256 of the standard library's canonical JSON; ids are the
standard ``uuid5``."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import RFC_4122, UUID, uuid5

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.common import _uuid5, fingerprint


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=12),
        st.recursive(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(min_value=-(2**70), max_value=2**70),
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
def test_request_fingerprints_are_the_sha256_of_the_canonical_json(fields: dict[str, Any]) -> None:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert fingerprint(**fields) == hashlib.sha256(canonical.encode()).hexdigest()


@settings(max_examples=300, deadline=None)
@given(st.uuids(), st.text())
def test_ids_are_the_standard_uuid5(namespace: UUID, name: str) -> None:
    ours = _uuid5(namespace, name)
    assert ours == uuid5(namespace, name)
    assert (str(ours), ours.version, ours.variant) == (str(uuid5(namespace, name)), 5, RFC_4122)
    assert hash(ours) == hash(uuid5(namespace, name))
