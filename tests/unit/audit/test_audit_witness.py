"""The witness (c2sp.org/tlog-witness add-checkpoint): it cosigns only a checkpoint consistent
with the last one it cosigned, and refuses a split view."""

from __future__ import annotations

import hashlib

import pytest

from ledger.audit import merkle as m
from ledger.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.audit.note import COSIGNATURE_V1, Ed25519Signer
from ledger.audit.witness import (
    AddCheckpoint,
    Witness,
    WitnessError,
    cosigned,
    parse_add_checkpoint,
)

ORIGIN = "ledger.example.org/tea-village"
# Fixed keys: test ids made from their signatures must be the same in every pytest worker.
LOG = Ed25519Signer(ORIGIN, hashlib.sha256(b"the log's test key").digest())
W = Ed25519Signer(
    "witness.example.org/civil-affairs", hashlib.sha256(b"a witness").digest(), COSIGNATURE_V1
)
TREE = m.CompactTree(m.leaf_hash(bytes([i])) for i in range(40))
NOW = 1_780_000_000


def note(size: int, tree: m.CompactTree = TREE, key: Ed25519Signer = LOG) -> str:
    return sign_checkpoint(Checkpoint(key.name, size, tree.root(size)), key)


def request(old: int, size: int, tree: m.CompactTree = TREE, key: Ed25519Signer = LOG) -> str:
    proof = tuple(tree.consistency_proof(old, size)) if old else ()
    return AddCheckpoint(old, proof, note(size, tree, key)).body


def witness() -> Witness:
    return Witness(W, {ORIGIN: LOG.verifier})


def refused(w: Witness, body: str, status: int) -> WitnessError:
    with pytest.raises(WitnessError) as caught:
        w.add_checkpoint(body, timestamp=NOW)
    assert caught.value.status == status, str(caught.value)
    return caught.value


def test_a_witness_cosigns_a_growing_log() -> None:
    w = witness()
    for old, size in ((0, 5), (5, 17), (17, 17), (17, 40)):
        line = w.add_checkpoint(request(old, size), timestamp=NOW + size)
        opened = open_checkpoint(
            cosigned(note(size), [line]), LOG.verifier, witnesses=[W.verifier], quorum=1
        )
        assert opened.witnesses == (W.verifier,)
        assert opened.note.signatures[-1].timestamp == NOW + size
        assert w.latest[ORIGIN].size == size


def test_a_split_view_is_refused() -> None:
    w = witness()
    w.add_checkpoint(request(0, 17), timestamp=NOW)
    other = m.CompactTree([*TREE.levels[0][:16], m.leaf_hash(b"another history")])
    error = refused(w, AddCheckpoint(17, (), note(17, other)).body, 422)
    assert "two histories" in str(error)
    # A later checkpoint of the other history cannot prove it extends the cosigned one.
    longer = m.CompactTree([*other.levels[0], *TREE.levels[0][17:]])
    body = AddCheckpoint(17, tuple(longer.consistency_proof(17, 40)), note(40, longer)).body
    error = refused(w, body, 422)
    assert "not consistent with size 17" in str(error)
    assert w.latest[ORIGIN].root == TREE.root(17)  # nothing changed


def test_an_old_size_that_is_not_the_witnesss_is_a_conflict() -> None:
    w = witness()
    w.add_checkpoint(request(0, 5), timestamp=NOW)
    error = refused(w, request(3, 17), 409)
    assert error.latest_size == 5
    assert refused(witness(), request(5, 17), 409).latest_size == 0


def test_the_witness_checks_signatures_and_origins() -> None:
    w = witness()
    refused(w, request(0, 5, key=Ed25519Signer.generate(ORIGIN)), 403)
    refused(w, request(0, 5, key=Ed25519Signer.generate("ledger.example.org/other")), 404)
    changed = request(0, 5).replace("\n5\n", "\n6\n")
    refused(w, changed, 403)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("old 5\n", 400),
        ("old 05\n\n" + note(5), 400),
        ("new 5\n\n" + note(5), 400),
        ("old 5\n!!\n\n" + note(5), 400),
        ("old 5\nAAAA\n\n" + note(5), 400),
        ("old 9\n\n" + note(5), 400),
        ("old 0\n" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64 + "\n" + note(5), 400),
        ("old 0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n" + note(5), 422),
    ],
)
def test_malformed_or_wrong_requests_are_refused(body: str, status: int) -> None:
    refused(witness(), body, status)


def test_a_wrong_proof_is_refused() -> None:
    w = witness()
    w.add_checkpoint(request(0, 5), timestamp=NOW)
    proof = TREE.consistency_proof(5, 17)
    body = AddCheckpoint(5, (proof[0], bytes(32), *proof[2:]), note(17)).body
    refused(w, body, 422)


def test_an_empty_tree_has_the_empty_root() -> None:
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, m.EMPTY_ROOT), LOG)
    witness().add_checkpoint(AddCheckpoint(0, (), empty).body, timestamp=NOW)
    wrong = sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), LOG)
    refused(witness(), AddCheckpoint(0, (), wrong).body, 422)


def test_a_request_round_trips() -> None:
    body = request(5, 17)
    parsed = parse_add_checkpoint(body.encode())
    assert (parsed.old_size, list(parsed.proof)) == (5, TREE.consistency_proof(5, 17))
    assert parsed.body == body
