"""The RFC 9162 Merkle tree: every reference vector, every negative case failing for its stated
reason, an independent reference implementation of the RFC's recursive definitions, and
properties over random sizes."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit import merkle as m

DATA = Path(__file__).parents[2] / "data" / "audit"
RFC = json.loads((DATA / "rfc9162-test-vectors.json").read_text())
INCLUSION_FILES = sorted((DATA / "merkle-testdata" / "inclusion").rglob("*.json"))
CONSISTENCY_FILES = sorted((DATA / "merkle-testdata" / "consistency").rglob("*.json"))
SIZE_MAX_EXHAUSTIVE = 64

# What each negative case of transparency-dev/merkle's testdata (by its ``desc``) may fail
# with. A size or index mutated by arithmetic can land anywhere (out of range, a proof of the
# wrong length, or one that leads elsewhere); a changed hash must lead to another root;
# garbage is not a hash; an extra or a missing hash is the wrong length.
SIZE_MUTATIONS = {
    "index_out_of_range",
    "sizes_out_of_order",
    "first_size_zero",
    "proof_not_empty",
    "proof_length",
    "root_mismatch",
}
INCLUSION_REASONS: dict[str, set[str]] = {
    "wrong leaf": {"hash_length", "root_mismatch"},
    "empty leaf": {"hash_length"},
    "empty root": {"hash_length", "root_mismatch", "index_out_of_range"},
    "empty root and leaf": {"hash_length"},
    "empty root and random leaf": {"root_mismatch", "index_out_of_range"},
    "random leaf": {"root_mismatch", "index_out_of_range"},
    "random root": {"root_mismatch"},
    "modified proof[0] bit @3": {"root_mismatch"},
    "modified proof[1] bit @3": {"root_mismatch"},
    "modified proof[2] bit @3": {"root_mismatch"},
    "preceding garbage": {"hash_length"},
    "trailing garbage": {"hash_length"},
    "preceding root": {"proof_length"},
    "trailing root": {"proof_length"},
    "inserted component": {"proof_length"},
    "removed component": {"proof_length"},
    "leafIdx XOR @2": SIZE_MUTATIONS,
    "leafIdx plus @1": SIZE_MUTATIONS,
    "leafIdx sub @1": SIZE_MUTATIONS,
    "treeSize div @2": SIZE_MUTATIONS,
    "treeSize mul @2": SIZE_MUTATIONS,
}
CONSISTENCY_REASONS: dict[str, set[str]] = {
    "empty proof": {"proof_length"},
    "truncated proof": {"proof_length"},
    "preceding proof @0": {"proof_length"},
    "preceding root1": {"proof_length"},
    "preceding root2": {"proof_length"},
    "trailing root1": {"proof_length"},
    "trailing root2": {"proof_length"},
    "preceding garbage": {"hash_length"},
    "trailing garbage": {"hash_length"},
    "modified proof@0 bit @4": {"root_mismatch"},
    "modified proof@1 bit @4": {"root_mismatch"},
    "modified proof@2 bit @4": {"root_mismatch"},
    "swapped roots": {"root_mismatch"},
    "wrong root1": {"root_mismatch"},
    "wrong root2": {"root_mismatch"},
    "size1 XOR @2": SIZE_MUTATIONS,
    "size1 plus @1": SIZE_MUTATIONS,
    "size1 sub @1": SIZE_MUTATIONS,
    "size2 div @2": SIZE_MUTATIONS,
    "size2 mul @2": SIZE_MUTATIONS,
    "consistency check on empty tree (size1 is zero) is useless": {"first_size_zero"},
    "size1 is zero and does not equal size2": {"first_size_zero"},
    "size1 is zero and size2 is not zero": {"first_size_zero"},
    "size1 is greater than size2": {"sizes_out_of_order"},
    "size1 is greater than size2 again": {"sizes_out_of_order"},
    "sizes do not watch and proof is empty": {"proof_length"},
    "sizes match but proof is not empty and sizes are one": {"proof_not_empty"},
    "sizes match but proof is not empty and sizes are zero": {"proof_not_empty"},
    "roots do not match and sizes are zero": {"root_mismatch"},
    "roots do not not match and sizes are one": {"root_mismatch"},
    "sizes are equal (one) but roots are not": {"root_mismatch"},
    "sizes are equal (zero) but roots are not": {"root_mismatch"},
    # Both roots are the same 12 bytes, but a tree of size 0 has one root: SHA-256("").
    "sizes are equal (zero) and proof is empty": {"root_mismatch"},
}


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def hexb(text: str) -> bytes:
    return bytes.fromhex(text)


def rel(path: Path) -> str:
    return str(path.relative_to(DATA / "merkle-testdata"))


# -- an independent reference: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 as written ----------------


def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf *hashes* (the RFC's MTH({d(0)}) = leaf hash)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = k_of(len(leaves))
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(i: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = k_of(n)
    if i < k:
        return [*path(i, leaves[:k]), mth(leaves[k:])]
    return [*path(i - k, leaves[k:]), mth(leaves[:k])]


def subproof(i: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if i == n:
        return [] if complete else [mth(leaves)]
    k = k_of(n)
    if i <= k:
        return [*subproof(i, leaves[:k], complete), mth(leaves[k:])]
    return [*subproof(i - k, leaves[k:], False), mth(leaves[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [m.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


TREE = m.CompactTree(leaves_of(SIZE_MAX_EXHAUSTIVE))
LEAVES = leaves_of(SIZE_MAX_EXHAUSTIVE)


def flipped(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- the RFC 9162 vectors --------------------------------------------------------------------


def rfc_tree() -> m.CompactTree:
    return m.CompactTree(m.leaf_hash(hexb(x)) for x in RFC["leaves_hex"])


def test_the_empty_tree_has_the_rfc_root() -> None:
    assert hexb(RFC["empty_tree_root"]) == m.EMPTY_ROOT
    assert m.root_of([]) == m.EMPTY_ROOT
    assert m.CompactTree().root() == m.EMPTY_ROOT


@pytest.mark.parametrize("size", sorted(RFC["roots_by_size"], key=int))
def test_the_root_of_each_size_is_the_rfc_root(size: str) -> None:
    expected = hexb(RFC["roots_by_size"][size])
    leaves = [m.leaf_hash(hexb(x)) for x in RFC["leaves_hex"][: int(size)]]
    assert m.root_of(leaves) == expected
    assert rfc_tree().root(int(size)) == expected


@pytest.mark.parametrize("vector", RFC["inclusion_proofs"], ids=lambda v: f"{v['leaf_index']}")
def test_the_rfc_audit_paths_are_generated_and_verify(vector: dict[str, Any]) -> None:
    index, size = vector["leaf_index"], vector["tree_size"]
    expected = [hexb(h) for h in vector["path"]]
    tree = rfc_tree()
    assert tree.inclusion_proof(index, size) == expected
    m.verify_inclusion(tree.node(0, index), index, size, expected, tree.root(size))


@pytest.mark.parametrize(
    "vector", RFC["consistency_proofs"], ids=lambda v: f"{v['first_size']}-{v['second_size']}"
)
def test_the_rfc_consistency_proofs_are_generated_and_verify(vector: dict[str, Any]) -> None:
    first, second = vector["first_size"], vector["second_size"]
    expected = [hexb(h) for h in vector["proof"]]
    tree = rfc_tree()
    assert tree.consistency_proof(first, second) == expected
    m.verify_consistency(first, second, expected, tree.root(first), tree.root(second))


def test_the_single_hashes_are_the_rfc_ones() -> None:
    vectors = RFC["single_hashes"]
    assert m.leaf_hash(bytes(range(0x10, 0x20))) == hexb(vectors["leaf_hash(bytes 0x10..0x1f)"])
    assert m.node_hash(bytes(range(0x00, 0x20)), bytes(range(0x20, 0x40))) == hexb(
        vectors["node_hash(bytes 0x00..0x1f, bytes 0x20..0x3f)"]
    )


# -- transparency-dev/merkle testdata -----------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text())
    vector["proof"] = [b64(p) for p in vector["proof"] or []]
    return vector


def test_every_vector_file_is_read() -> None:
    assert len(INCLUSION_FILES) == 98
    assert len(CONSISTENCY_FILES) == 98
    descs = {load(p)["desc"] for p in INCLUSION_FILES} - {"happy path", "matching root and leaf"}
    assert descs == set(INCLUSION_REASONS)
    descs = {load(p)["desc"] for p in CONSISTENCY_FILES}
    assert descs - {"happy path", "sizes are equal (one) and proof is empty"} == set(
        CONSISTENCY_REASONS
    )


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=rel)
def test_inclusion_vector(path: Path) -> None:
    v = load(path)
    args = (b64(v["leafHash"]), v["leafIdx"], v["treeSize"], v["proof"], b64(v["root"]))
    if not v["wantErr"]:
        m.verify_inclusion(*args)
        return
    with pytest.raises(m.ProofError) as caught:
        m.verify_inclusion(*args)
    assert caught.value.reason in INCLUSION_REASONS[v["desc"]], str(caught.value)


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=rel)
def test_consistency_vector(path: Path) -> None:
    v = load(path)
    args = (v["size1"], v["size2"], v["proof"], b64(v["root1"]), b64(v["root2"]))
    if not v["wantErr"]:
        m.verify_consistency(*args)
        return
    with pytest.raises(m.ProofError) as caught:
        m.verify_consistency(*args)
    assert caught.value.reason in CONSISTENCY_REASONS[v["desc"]], str(caught.value)


def test_the_happy_path_proofs_are_the_ones_the_tree_generates() -> None:
    # transparency-dev's happy paths use the RFC's eight leaves.
    tree = rfc_tree()
    for path in INCLUSION_FILES:
        v = load(path)
        if v["desc"] == "happy path" and v["treeSize"] <= tree.size:
            assert tree.inclusion_proof(v["leafIdx"], v["treeSize"]) == v["proof"], rel(path)
    for path in CONSISTENCY_FILES:
        v = load(path)
        if v["desc"] == "happy path" and 0 < v["size1"] < v["size2"] <= tree.size:
            assert tree.consistency_proof(v["size1"], v["size2"]) == v["proof"], rel(path)


# -- every size up to 64 against the reference implementation ---------------------------------


def test_roots_of_every_size_match_the_reference() -> None:
    for n in range(SIZE_MAX_EXHAUSTIVE + 1):
        assert TREE.root(n) == mth(LEAVES[:n]) == m.root_of(LEAVES[:n]), n


def test_inclusion_proofs_of_every_size_and_index_round_trip() -> None:
    for n in range(1, SIZE_MAX_EXHAUSTIVE + 1):
        root = TREE.root(n)
        for i in range(n):
            proof = TREE.inclusion_proof(i, n)
            assert proof == path(i, LEAVES[:n]), (i, n)
            assert len(proof) == len(m.inclusion_plan(i, n)) == m.inclusion_proof_size(i, n)
            m.verify_inclusion(LEAVES[i], i, n, proof, root)


def test_consistency_proofs_of_every_pair_of_sizes_round_trip() -> None:
    for n in range(1, SIZE_MAX_EXHAUSTIVE + 1):
        for first in range(1, n + 1):
            proof = TREE.consistency_proof(first, n)
            expected = [] if first == n else subproof(first, LEAVES[:n], True)
            assert proof == expected, (first, n)
            if first < n:
                assert len(proof) == m.consistency_proof_size(first, n)
            m.verify_consistency(first, n, proof, TREE.root(first), TREE.root(n))


def flip_bits(n: int, seed: int) -> range | list[int]:
    """Every bit of every hash up to size 8; above, one bit in each quarter of each hash (a
    different one for each proof). Hypothesis below flips random bits of larger trees."""
    if n <= 8:
        return range(256)
    return [quarter * 64 + (seed * 37 + n) % 64 for quarter in range(4)]


def test_every_flipped_bit_of_an_inclusion_proof_fails() -> None:
    for n in range(1, SIZE_MAX_EXHAUSTIVE + 1):
        root = TREE.root(n)
        for i in range(n):
            proof = TREE.inclusion_proof(i, n)
            bits = flip_bits(n, i)
            for j in range(len(proof)):
                for bit in bits:
                    bad = [*proof[:j], flipped(proof[j], bit), *proof[j + 1 :]]
                    with pytest.raises(m.ProofError, match="leads to") as caught:
                        m.verify_inclusion(LEAVES[i], i, n, bad, root)
                    assert caught.value.reason == "root_mismatch"
            for bit in bits:
                with pytest.raises(m.ProofError):
                    m.verify_inclusion(flipped(LEAVES[i], bit), i, n, proof, root)
                with pytest.raises(m.ProofError):
                    m.verify_inclusion(LEAVES[i], i, n, proof, flipped(root, bit))


def test_every_flipped_bit_of_a_consistency_proof_fails() -> None:
    for n in range(2, SIZE_MAX_EXHAUSTIVE + 1):
        for first in range(1, n):
            proof = TREE.consistency_proof(first, n)
            roots = TREE.root(first), TREE.root(n)
            bits = flip_bits(n, first)
            for j in range(len(proof)):
                for bit in bits:
                    bad = [*proof[:j], flipped(proof[j], bit), *proof[j + 1 :]]
                    with pytest.raises(m.ProofError) as caught:
                        m.verify_consistency(first, n, bad, *roots)
                    assert caught.value.reason == "root_mismatch"
            for bit in bits:
                with pytest.raises(m.ProofError):
                    m.verify_consistency(first, n, proof, flipped(roots[0], bit), roots[1])
                with pytest.raises(m.ProofError):
                    m.verify_consistency(first, n, proof, roots[0], flipped(roots[1], bit))


# -- the compact structure ----------------------------------------------------------------------


def test_appending_returns_the_nodes_a_table_stores() -> None:
    tree = m.CompactTree()
    rows: dict[m.Coord, bytes] = {}
    for i, leaf in enumerate(LEAVES[:11]):
        created = tree.append(leaf)
        # The leaf and one parent per trailing one-bit of its index.
        assert len(created) == 1 + (len(bin(i + 1)) - len(bin(i + 1).rstrip("0")))
        rows.update(((n.level, n.index), n.hash) for n in created)
    assert sorted(rows) == sorted(
        (level, index) for level in range(4) for index in range(11 >> level)
    )
    source = m.MappingSource(rows)
    for n in range(12):
        assert m.root_at(source, n) == mth(LEAVES[:n])
    assert m.inclusion_proof(source, 3, 11) == path(3, LEAVES[:11])
    assert m.consistency_proof(source, 5, 11) == subproof(5, LEAVES[:11], True)


def test_a_proof_needs_logarithmically_many_nodes() -> None:
    size = 2**40 - 1
    for index in (0, 1, size // 3, size - 2, size - 1):
        assert len(m.plan_coords(m.inclusion_plan(index, size))) <= 2 * 40
    for first in (1, 3, size // 3, size - 1):
        assert len(m.plan_coords(m.consistency_plan(first, size))) <= 3 * 40


def test_a_restored_frontier_continues_where_the_tree_was() -> None:
    for n in range(SIZE_MAX_EXHAUSTIVE):
        frontier = m.Frontier.restore(n, TREE)
        assert frontier.root() == TREE.root(n)
        created = frontier.append(LEAVES[n])
        assert all(TREE.node(c.level, c.index) == c.hash for c in created)
        assert frontier.root() == TREE.root(n + 1)


def test_extend_and_append_agree() -> None:
    a, b = m.Frontier(), m.Frontier()
    for leaf in LEAVES[:37]:
        a.append(leaf)
    b.extend(LEAVES[:37])
    assert (a.size, a.root()) == (b.size, b.root()) == (37, mth(LEAVES[:37]))


def test_a_tree_answers_only_sizes_it_has_reached() -> None:
    tree = m.CompactTree(LEAVES[:5])
    with pytest.raises(m.ProofError, match="has 5 leaves"):
        tree.root(6)
    with pytest.raises(m.ProofError, match="not in a tree of size 5"):
        tree.inclusion_proof(5, 5)
    with pytest.raises(m.ProofError, match="has 5 leaves"):
        tree.consistency_proof(2, 6)
    with pytest.raises(m.ProofError, match="from size 4 to size 3"):
        tree.consistency_proof(4, 3)


# -- properties ----------------------------------------------------------------------------------

SIZE_MAX_RANDOM = 3000
BIG = m.CompactTree(leaves_of(SIZE_MAX_RANDOM))
sizes = st.integers(min_value=1, max_value=SIZE_MAX_RANDOM)


@given(data=st.data(), n=sizes)
def test_an_inclusion_proof_verifies_and_a_tampered_one_fails(data: st.DataObject, n: int) -> None:
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = BIG.inclusion_proof(i, n)
    root = BIG.root(n)
    leaf = BIG.node(0, i)
    m.verify_inclusion(leaf, i, n, proof, root)
    if proof:
        j = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        with pytest.raises(m.ProofError):
            m.verify_inclusion(
                leaf, i, n, [*proof[:j], flipped(proof[j], bit), *proof[j + 1 :]], root
            )
        with pytest.raises(m.ProofError):
            m.verify_inclusion(leaf, i, n, proof[:j] + proof[j + 1 :], root)
        with pytest.raises(m.ProofError):
            m.verify_inclusion(leaf, i, n, [*proof, proof[j]], root)
    other = data.draw(st.integers(min_value=0, max_value=n - 1))
    if other != i:
        with pytest.raises(m.ProofError):
            m.verify_inclusion(leaf, other, n, proof, root)


@given(data=st.data(), n=sizes)
def test_a_consistency_proof_verifies_and_a_tampered_one_fails(data: st.DataObject, n: int) -> None:
    first = data.draw(st.integers(min_value=1, max_value=n))
    proof = BIG.consistency_proof(first, n)
    roots = BIG.root(first), BIG.root(n)
    m.verify_consistency(first, n, proof, *roots)
    if proof:
        j = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        bad = [*proof[:j], flipped(proof[j], bit), *proof[j + 1 :]]
        with pytest.raises(m.ProofError):
            m.verify_consistency(first, n, bad, *roots)
        with pytest.raises(m.ProofError):
            m.verify_consistency(first, n, proof[:j] + proof[j + 1 :], *roots)
    if first < n:
        # A log that rewrote leaf ``first - 1`` cannot prove it kept the first tree.
        forged = m.CompactTree([*BIG.levels[0][: first - 1], m.leaf_hash(b"forged")])
        with pytest.raises(m.ProofError):
            m.verify_consistency(first, n, proof, forged.root(), roots[1])
