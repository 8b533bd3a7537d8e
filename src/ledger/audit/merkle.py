"""The RFC 9162 Merkle tree (§2.1): hashing, roots, inclusion and consistency proofs.

Hashing is SHA-256 with domain separation: a leaf is ``SHA-256(0x00 || data)``, an interior
node ``SHA-256(0x01 || left || right)``, and the empty tree's root is ``SHA-256("")``.

Everything here works on *perfect subtrees*: the subtree at ``(level, index)`` covers the
``2**level`` leaves ``[index << level, (index + 1) << level)``; level 0 holds the leaf hashes.
Every range that a root or a proof needs (RFC 9162 ``MTH(D[a:b])`` in ``PATH`` and
``SUBPROOF``) is a run of at most ~log2(n) perfect subtrees, so a store that keeps every
perfect subtree's hash answers a root or a proof at *any* tree size with O(log n) look-ups:

- the ``*_plan`` functions say which perfect subtrees a root or proof needs (pure, no
  hashing), so a caller with a table fetches them in one query;
- ``root_at``, ``inclusion_proof`` and ``consistency_proof`` build the answer from any
  ``NodeSource`` (``CompactTree`` in memory, ``MappingSource`` over fetched rows);
- ``verify_inclusion`` and ``verify_consistency`` (RFC 9162 §2.1.3.2 and §2.1.4.2) raise
  ``ProofError`` with a ``reason`` from ``ProofError.REASONS``;
- ``Frontier`` is the right edge of a tree (one hash per set bit of its size): it takes leaves
  one at a time, gives the root at the current size and the new perfect subtrees each leaf
  completes. The offline verifier needs only it (O(log n) memory); a projection persists the
  nodes it returns.

Persisting the tree (the layout a projection uses)::

    audit_tree_nodes(
        level  SMALLINT NOT NULL,   -- 0 = leaf hashes, up to 63
        idx    BIGINT   NOT NULL,   -- covers leaves [idx << level, (idx + 1) << level)
        hash   BLOB     NOT NULL,   -- 32 bytes (BYTEA on PostgreSQL)
        PRIMARY KEY (level, idx)
    )

Appending leaf ``i`` inserts ``(0, i)`` and one node per trailing one-bit of ``i`` — two rows
per leaf on average, never updated. After a restart ``Frontier.restore(size, source)`` reads
``root_plan(size)`` back (O(log n) rows). The tree size is the number of level-0 rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
LEVEL_MAX: Final = 63  # tree sizes below 2**64, as in RFC 9162

Coord = tuple[int, int]  # (level, index) of a perfect subtree


class ProofError(ValueError):
    """A proof does not hold. ``reason`` is one of ``REASONS``; the message says more."""

    REASONS: ClassVar[frozenset[str]] = frozenset(
        {
            "index_out_of_range",  # leaf index >= tree size (or a size the tree has not reached)
            "sizes_out_of_order",  # consistency from a larger tree to a smaller one
            "first_size_zero",  # consistency from the empty tree proves nothing
            "proof_not_empty",  # equal sizes need no proof
            "proof_length",  # not the number of hashes this index and size need
            "hash_length",  # a hash that is not 32 bytes
            "root_mismatch",  # the proof leads to another root
        }
    )

    def __init__(self, reason: str, message: str) -> None:
        assert reason in self.REASONS, reason
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Node:
    """A perfect subtree's hash: the subtree at ``(level, index)``."""

    level: int
    index: int
    hash: bytes


class NodeSource(Protocol):
    """Anything that returns the hash of the perfect subtree at ``(level, index)``."""

    def node(self, level: int, index: int) -> bytes: ...


# -- hashing -------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 ``MTH({d})``: SHA-256 of 0x00 and the leaf data."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node: SHA-256 of 0x01, the left and the right child's hash."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    """The root of the tree over ``leaf_hashes`` (already leaf-hashed), in one pass."""
    frontier = Frontier()
    frontier.extend(leaf_hashes)
    return frontier.root()


# -- plans: which perfect subtrees a root or a proof needs ----------------------------------


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_plan(start: int, end: int) -> tuple[Coord, ...]:
    """The perfect subtrees whose right fold is ``MTH(D[start:end])``, left to right.

    ``start`` is a multiple of a power of two at least ``end - start`` (true of every range
    RFC 9162's ``PATH`` and ``SUBPROOF`` ask for): the pieces are the set bits of the
    range's size, largest first.
    """
    coords: list[Coord] = []
    size = end - start
    at = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            coords.append((level, at >> level))
            at += 1 << level
    return tuple(coords)


def root_plan(size: int) -> tuple[Coord, ...]:
    """The perfect subtrees of the tree of ``size`` leaves (its right edge), left to right."""
    return range_plan(0, size)


def inclusion_plan(index: int, size: int) -> list[tuple[Coord, ...]]:
    """RFC 9162 ``PATH(index, D[size])``, bottom to top, each element as its range plan."""
    if not 0 <= index < size:
        raise ProofError(
            "index_out_of_range", f"leaf index {index} is not in a tree of size {size}"
        )
    elements: list[tuple[Coord, ...]] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if m < k:
            elements.append(range_plan(lo + k, hi))
            hi = lo + k
        else:
            elements.append(range_plan(lo, lo + k))
            lo, m = lo + k, m - k
    elements.reverse()
    return elements


def consistency_plan(first: int, second: int) -> list[tuple[Coord, ...]]:
    """RFC 9162 ``PROOF(first, D[second])`` (§2.1.4.1), each element as its range plan."""
    if not 0 <= first <= second:
        raise ProofError(
            "sizes_out_of_order", f"no consistency proof from size {first} to size {second}"
        )
    if first == 0 or first == second:
        return []
    elements: list[tuple[Coord, ...]] = []
    lo, hi, m, complete = 0, second, first, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                elements.append(range_plan(lo, hi))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            elements.append(range_plan(lo + k, hi))
            hi = lo + k
        else:
            elements.append(range_plan(lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    elements.reverse()
    return elements


def inclusion_proof_size(index: int, size: int) -> int:
    """How many hashes the audit path of leaf ``index`` in a tree of ``size`` has (``index <
    size``): one per level where the path's sibling subtree is not empty."""
    inner = (index ^ (size - 1)).bit_length()  # levels where a sibling always exists
    return inner + (index >> inner).bit_count()  # and the right edge's complete subtrees


def consistency_proof_size(first: int, second: int) -> int:
    """How many hashes the consistency proof from ``first`` to ``second`` leaves has
    (``0 < first < second``), counted the way ``consistency_plan`` walks."""
    count, lo, hi, m, complete = 0, 0, second, first, True
    while True:
        n = hi - lo
        if m == n:
            return count + (0 if complete else 1)
        k = _largest_power_of_two_below(n)
        count += 1
        if m <= k:
            hi = lo + k
        else:
            lo, m, complete = lo + k, m - k, False


# -- building roots and proofs from a source ------------------------------------------------


def fold(source: NodeSource, coords: Sequence[Coord]) -> bytes:
    """The hash of a run of perfect subtrees (right fold: ``a, b, c`` → ``H(a, H(b, c))``)."""
    if not coords:
        return EMPTY_ROOT
    level, index = coords[-1]
    acc = source.node(level, index)
    for level, index in reversed(coords[:-1]):
        acc = node_hash(source.node(level, index), acc)
    return acc


def root_at(source: NodeSource, size: int) -> bytes:
    """The root of the first ``size`` leaves."""
    return fold(source, root_plan(size))


def inclusion_proof(source: NodeSource, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves."""
    return [fold(source, element) for element in inclusion_plan(index, size)]


def consistency_proof(source: NodeSource, first: int, second: int) -> list[bytes]:
    """The proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
    return [fold(source, element) for element in consistency_plan(first, second)]


class MappingSource:
    """A ``NodeSource`` over fetched rows: ``{(level, index): hash}``."""

    def __init__(self, nodes: Mapping[Coord, bytes]) -> None:
        self._nodes = nodes

    def node(self, level: int, index: int) -> bytes:
        return self._nodes[level, index]


def plan_coords(plans: Iterable[Sequence[Coord]]) -> set[Coord]:
    """Every perfect subtree a list of range plans needs (what to fetch, in one query)."""
    return {coord for plan in plans for coord in plan}


# -- the right edge, and the whole tree in memory -------------------------------------------


class Frontier:
    """The right edge of a tree: the perfect subtrees of its size, largest first.

    ``append`` takes the next leaf hash and returns the nodes it completes (the leaf itself
    and one parent per trailing one-bit of its index); ``root`` is the root at the current
    size. Memory is O(log n); this is all a streaming verifier needs.
    """

    __slots__ = ("_hashes", "_levels", "size")

    def __init__(self) -> None:
        self.size = 0
        self._levels: list[int] = []
        self._hashes: list[bytes] = []

    @classmethod
    def restore(cls, size: int, source: NodeSource) -> Frontier:
        """The frontier of the tree of ``size`` leaves, read from a source of its nodes."""
        frontier = cls()
        for level, index in root_plan(size):
            frontier._levels.append(level)
            frontier._hashes.append(source.node(level, index))
        frontier.size = size
        return frontier

    def append(self, leaf: bytes) -> list[Node]:
        """Add the next leaf hash; return every perfect subtree it completes, bottom up."""
        index = self.size
        created = [Node(0, index, leaf)]
        levels, hashes = self._levels, self._hashes
        h, level = leaf, 0
        while levels and levels[-1] == level:
            levels.pop()
            h = node_hash(hashes.pop(), h)
            level += 1
            created.append(Node(level, index >> level, h))
        levels.append(level)
        hashes.append(h)
        self.size = index + 1
        return created

    def add(self, leaf: bytes) -> None:
        """Add the next leaf hash, without the nodes it completes (a streaming verifier)."""
        levels, hashes = self._levels, self._hashes
        h, level = leaf, 0
        while levels and levels[-1] == level:
            levels.pop()
            h = node_hash(hashes.pop(), h)
            level += 1
        levels.append(level)
        hashes.append(h)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add several leaf hashes (a streaming verifier that has no use for the nodes)."""
        levels, hashes = self._levels, self._hashes
        size = self.size
        for leaf in leaves:
            h, level = leaf, 0
            while levels and levels[-1] == level:
                levels.pop()
                h = node_hash(hashes.pop(), h)
                level += 1
            levels.append(level)
            hashes.append(h)
            size += 1
        self.size = size

    def root(self) -> bytes:
        """The root at the current size."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        acc = hashes[-1]
        for h in reversed(hashes[:-1]):
            acc = node_hash(h, acc)
        return acc


class CompactTree:
    """Every perfect subtree's hash, by level, kept in memory and appended incrementally.

    The same layout as the ``audit_tree_nodes`` table (module docstring): ``levels[j][i]`` is
    the subtree ``(j, i)``. About 2n hashes for n leaves; roots and proofs at any size up to
    ``size`` in O(log n).
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        self._frontier = Frontier()
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        return self._frontier.size

    def append(self, leaf: bytes) -> list[Node]:
        """Add the next leaf hash; return the nodes it completes (what a table would insert)."""
        created = self._frontier.append(leaf)
        levels = self.levels
        for node in created:
            if node.level == len(levels):
                levels.append([])
            levels[node.level].append(node.hash)
        return created

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return root_at(self, self._checked(self.size if size is None else size))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(self, index, self._checked(size))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return consistency_proof(self, first, self._checked(second))

    def _checked(self, size: int) -> int:
        if not 0 <= size <= self.size:
            raise ProofError("index_out_of_range", f"the tree has {self.size} leaves, not {size}")
        return size


# -- verification ---------------------------------------------------------------------------


def _check_hashes(what: str, hashes: Iterable[bytes]) -> None:
    for position, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ProofError(
                "hash_length", f"{what} hash {position} has {len(h)} bytes, not {HASH_SIZE}"
            )


def _check_length(proof: Sequence[bytes], expected: int, what: str) -> None:
    if len(proof) != expected:
        raise ProofError(
            "proof_length", f"the proof has {len(proof)} hashes; {what} needs {expected}"
        )


def _check_root(computed: bytes, expected: bytes, what: str) -> None:
    if computed != expected:
        raise ProofError(
            "root_mismatch",
            f"the proof leads to {what} {computed.hex()}, not the given {expected.hex()}",
        )


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that an audit path leads to (RFC 9162 §2.1.3.2, steps 1–5)."""
    if not 0 <= index < size:
        raise ProofError(
            "index_out_of_range", f"leaf index {index} is not in a tree of size {size}"
        )
    _check_hashes("leaf", [leaf])
    _check_hashes("proof", proof)
    _check_length(proof, inclusion_proof_size(index, size), f"leaf {index} of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn:  # not reached after the length check; kept as RFC 9162's own final test
        raise ProofError("proof_length", f"the proof ends below the root of size {size}")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree of ``size`` with
    ``root``; raise ``ProofError`` if not."""
    _check_root(root_from_inclusion_proof(leaf, index, size, proof), root, f"size {size} root")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """Check that the tree of ``first`` leaves with ``first_root`` is a prefix of the tree of
    ``second`` leaves with ``second_root`` (RFC 9162 §2.1.4.2); raise ``ProofError`` if not."""
    if first > second:
        raise ProofError(
            "sizes_out_of_order", f"size {first} is larger than size {second}: not a prefix"
        )
    if first == second:
        if proof:
            raise ProofError("proof_not_empty", f"equal sizes ({first}) need an empty proof")
        if first == 0:
            _check_root(EMPTY_ROOT, first_root, "the empty tree's root")
        _check_root(first_root, second_root, "first root")
        return
    if first == 0:
        raise ProofError(
            "first_size_zero", "the empty tree is a prefix of every tree: no proof to check"
        )
    _check_hashes("proof", proof)
    _check_length(proof, consistency_proof_size(first, second), f"size {first} to {second}")
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first root is the first subtree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn:  # not reached after the length check; kept as RFC 9162's own final test
        raise ProofError("proof_length", f"the proof ends below the root of size {second}")
    _check_root(fr, first_root, f"size {first} root")
    _check_root(sr, second_root, f"size {second} root")
