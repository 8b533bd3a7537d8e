"""docs/audit.md's own verifier, run as written against a real export: the documented formats
are enough to verify a log without the ledger's code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.application import LedgerApp
from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.export import write_export
from ledger.audit.leaf import leaf_hash_of, read_records
from ledger.audit.merkle import CompactTree
from ledger.audit.note import Ed25519Signer

DOC = Path(__file__).parents[3] / "docs" / "audit.md"
ORIGIN = "ledger.example.org/tea-village"


def own_verifier() -> str:
    section = DOC.read_text().split("## A verifier of your own", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def run(tmp_path: Path, export: Path, note: str, vkey: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "own_verifier.py"
    script.write_text(own_verifier())
    checkpoint = tmp_path / "checkpoint.txt"
    checkpoint.write_text(note)
    return subprocess.run(
        [sys.executable, str(script), str(export), str(checkpoint), vkey],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def exported(busy_app: LedgerApp, tmp_path: Path) -> tuple[Path, CompactTree]:
    records = list(read_records(busy_app.recorder))
    tree = CompactTree(leaf_hash_of(i, r) for i, r in enumerate(records))
    path = tmp_path / "export.jsonl"
    with path.open("wb") as out:
        write_export(out, records, origin=ORIGIN, leaf_hashes=tree.levels[0])
    return path, tree


def test_the_documented_verifier_verifies_a_real_export(
    exported: tuple[Path, CompactTree], tmp_path: Path
) -> None:
    path, tree = exported
    key = Ed25519Signer.generate(ORIGIN)
    for size in (0, 1, 13, tree.size):
        note = sign_checkpoint(Checkpoint(ORIGIN, size, tree.root(size)), key)
        done = run(tmp_path, path, note, key.verifier.vkey)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"verified {size} leaves\n"


def test_the_documented_verifier_refuses_a_changed_export_and_a_forged_checkpoint(
    exported: tuple[Path, CompactTree], tmp_path: Path
) -> None:
    path, tree = exported
    key = Ed25519Signer.generate(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), key)
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b'"originator_version":', b'"originator_version":1', 1)
    changed = tmp_path / "changed.jsonl"
    changed.write_bytes(b"\n".join(lines))
    done = run(tmp_path, changed, note, key.verifier.vkey)
    assert done.returncode != 0
    assert "leaf 4: not the recorded one" in done.stderr
    forged = sign_checkpoint(Checkpoint(ORIGIN, tree.size, bytes(32)), key)
    done = run(tmp_path, path, forged, key.verifier.vkey)
    assert "the root is not the signed one" in done.stderr
    other = Ed25519Signer.generate(ORIGIN)
    done = run(
        tmp_path,
        path,
        sign_checkpoint(Checkpoint(ORIGIN, 3, tree.root(3)), other),
        key.verifier.vkey,
    )
    assert "not signed by this key" in done.stderr
