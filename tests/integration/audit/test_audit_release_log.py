"""The event log written by release 0.1.0 (tests/data/release-0.1): exported, signed and
verified offline, its replay gives the figures the release's aggregates hold."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from uuid import UUID

from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.export import write_export
from ledger.audit.leaf import StoredRecord, leaf_hash_of
from ledger.audit.merkle import CompactTree
from ledger.audit.note import Ed25519Signer
from ledger.audit.verify import verify_export
from ledger.domain.figures import FIGURE_NAMES

RELEASE = Path(__file__).parents[2] / "data" / "release-0.1"
ORIGIN = "ledger.example.org/release-0.1"


def release_records() -> list[StoredRecord]:
    uri = f"file:{RELEASE / 'ledger.db'}?mode=ro&immutable=1"
    with sqlite3.connect(uri, uri=True) as db:
        rows = db.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events"
            " ORDER BY rowid"
        ).fetchall()
    return [StoredRecord(r[0], str(UUID(r[1])), r[2], r[3], bytes(r[4])) for r in rows]


def test_the_release_log_verifies_and_replays_to_the_release_figures() -> None:
    records = release_records()
    tree = CompactTree(leaf_hash_of(i, r) for i, r in enumerate(records))
    key = Ed25519Signer.generate(ORIGIN)
    sizes = [*range(20, tree.size, 20), tree.size]
    checkpoints = [sign_checkpoint(Checkpoint(ORIGIN, s, tree.root(s)), key) for s in sizes]
    out = io.BytesIO()
    write_export(out, records, origin=ORIGIN, leaf_hashes=tree.levels[0])

    report = verify_export(
        io.BytesIO(out.getvalue()), checkpoints=checkpoints, public_key=key.verifier.vkey
    )

    expected = json.loads((RELEASE / "expected.json").read_text())["funds"]
    assert report.size == len(records) > 90
    assert {f.fund_id for f in report.funds.values()} == set(expected)
    for fund in report.funds.values():
        want = expected[fund.fund_id]
        assert fund.slug == want["slug"]
        got = {p: {n: f[n] for n in FIGURE_NAMES} for p, f in fund.by_purpose.items()}
        assert got == want["figures"]
