"""The Merkle log: a read model of the whole event log as stored (docs/audit.md).

Every notification of the log, in log order, is a leaf (``ledger.audit.leaf``: its stored
state bytes as stored); leaf indexes are 0, 1, 2, … whatever the store's ids. The
projection keeps the hash of every perfect subtree (``rm_audit_nodes``, the layout of
``ledger.audit.merkle``) and each leaf's event (``rm_audit_leaves``), so a root or a proof at
any tree size takes O(log n) rows. Like every read model it is rebuilt from the log.

Signed checkpoints are not a read model: they are kept for good in ``audit_checkpoints``
(with the witnesses' cosignatures in ``audit_cosignatures``), made by ``sign_due`` for every
100 leaves (the runner calls it after each batch when the ledger's signing key is at hand)
and by ``sign_now`` on demand. A root once signed never changes: a rebuilt tree whose root
at a signed size differs is refused (``check_signed_roots``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from eventsourcing.persistence import Notification
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    or_,
    select,
)

from ledger.audit.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from ledger.audit.leaf import StoredRecord, leaf_hash_of, read_records, record_of
from ledger.audit.merkle import (
    Coord,
    Frontier,
    MappingSource,
    consistency_plan,
    consistency_proof,
    inclusion_plan,
    inclusion_proof,
    plan_coords,
    root_at,
    root_plan,
)
from ledger.audit.note import Ed25519Signer, NoteError, Signature, parse_note, parse_skey
from projections.columns import NAMING_CONVENTION, UtcDateTime
from projections.errors import InvariantBroken
from projections.projection import Projection
from projections.tables import LIVE, Tables

CHECKPOINT_EVERY = 100  # leaves between two checkpoints, at most
SIGNING_KEY_FILE = "audit-signing.key"
PUBLIC_KEY_FILE = "audit-signing.vkey"


class AuditProjection(Projection[Tables]):
    """Appends one leaf per notification, in log order; persists the nodes each completes."""

    name = "audit"
    version = 1
    table_names = ("rm_audit_nodes", "rm_audit_leaves")
    handles: ClassVar[dict[str, str]] = {}
    follows_log = True

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self.nodes = self.appends(tables.audit_nodes, ("level", "idx", "hash"))
        self.leaves = self.appends(
            tables.audit_leaves,
            ("leaf_index", "notification_id", "originator_id", "originator_version"),
        )
        self.frontier: Frontier | None = None

    def record(self, notification: Notification) -> None:
        frontier = self.frontier
        if frontier is None:
            frontier = self.frontier = restore_frontier(self.conn, self.tables)
        index = frontier.size
        record = record_of(notification)
        nodes = self.nodes.rows
        for node in frontier.append(leaf_hash_of(index, record)):
            nodes.append((node.level, node.index, node.hash))
        self.leaves.rows.append(
            (index, record.notification_id, record.originator_id, record.originator_version)
        )

    def after_reset(self) -> None:
        self.frontier = None


# -- reading the tree ---------------------------------------------------------------------------


def tree_size(conn: Connection, tables: Tables = LIVE) -> int:
    """The number of leaves (the tables' committed state)."""
    last = conn.execute(select(func.max(tables.audit_leaves.c.leaf_index))).scalar()
    return 0 if last is None else int(last) + 1


def fetch_nodes(
    conn: Connection, coords: set[Coord] | Sequence[Coord], tables: Tables = LIVE
) -> MappingSource:
    """The hashes of these perfect subtrees, in one query (a missing one fails on use)."""
    nodes = tables.audit_nodes
    wanted = sorted(set(coords))
    found: dict[Coord, bytes] = {}
    for start in range(0, len(wanted), 400):
        chunk = wanted[start : start + 400]
        rows = conn.execute(
            select(nodes.c.level, nodes.c.idx, nodes.c.hash).where(
                or_(*(and_(nodes.c.level == lv, nodes.c.idx == ix) for lv, ix in chunk))
            )
        )
        for level, idx, hash_ in rows:
            found[(int(level), int(idx))] = bytes(hash_)
    return MappingSource(found)


def restore_frontier(conn: Connection, tables: Tables = LIVE) -> Frontier:
    size = tree_size(conn, tables)
    return Frontier.restore(size, fetch_nodes(conn, root_plan(size), tables))


def root_of_size(conn: Connection, size: int, tables: Tables = LIVE) -> bytes:
    return root_at(fetch_nodes(conn, root_plan(size), tables), size)


def inclusion(conn: Connection, index: int, size: int) -> list[bytes]:
    plan = inclusion_plan(index, size)
    return inclusion_proof(fetch_nodes(conn, plan_coords(plan)), index, size)


def consistency(conn: Connection, first: int, second: int) -> list[bytes]:
    plan = consistency_plan(first, second)
    return consistency_proof(fetch_nodes(conn, plan_coords(plan)), first, second)


def leaf_hashes(conn: Connection, *, page: int = 20_000) -> Iterator[bytes]:
    """The recorded leaf hashes (level 0), in leaf order, read page by page."""
    nodes = LIVE.audit_nodes
    after = -1
    while True:
        rows = conn.execute(
            select(nodes.c.idx, nodes.c.hash)
            .where(nodes.c.level == 0, nodes.c.idx > after)
            .order_by(nodes.c.idx)
            .limit(page)
        ).all()
        for _, hash_ in rows:
            yield bytes(hash_)
        if len(rows) < page:
            return
        after = int(rows[-1][0])


@dataclass(frozen=True, slots=True)
class LeafRow:
    leaf_index: int
    notification_id: int
    originator_id: str
    originator_version: int


def leaves_after(conn: Connection, after: int, limit: int) -> list[LeafRow]:
    """The leaves with indexes above ``after`` (-1: from the first), at most ``limit``."""
    leaves = LIVE.audit_leaves
    rows = conn.execute(
        select(leaves).where(leaves.c.leaf_index > after).order_by(leaves.c.leaf_index).limit(limit)
    ).all()
    return [LeafRow(int(r[0]), int(r[1]), str(r[2]), int(r[3])) for r in rows]


def leaf_of_event(conn: Connection, originator_id: str, version: int) -> LeafRow | None:
    leaves = LIVE.audit_leaves
    row = conn.execute(
        select(leaves).where(
            leaves.c.originator_id == originator_id, leaves.c.originator_version == version
        )
    ).first()
    return None if row is None else LeafRow(int(row[0]), int(row[1]), str(row[2]), int(row[3]))


# -- checkpoints ---------------------------------------------------------------------------------

CHECKPOINT_METADATA = MetaData(naming_convention=NAMING_CONVENTION)

audit_checkpoints = Table(
    "audit_checkpoints",
    CHECKPOINT_METADATA,
    Column("tree_size", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),  # the signed note, the log's signature only
    Column("signed_at", UtcDateTime, nullable=False),
)
audit_cosignatures = Table(
    "audit_cosignatures",
    CHECKPOINT_METADATA,
    Column("tree_size", BigInteger, primary_key=True),
    Column("witness", String(200), primary_key=True),  # key name
    Column("key_id", BigInteger, primary_key=True),
    Column("line", Text, nullable=False),  # the signature line
    Column("received_at", UtcDateTime, nullable=False),
)


def ensure_checkpoint_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        CHECKPOINT_METADATA.create_all(conn)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    signed_at: datetime

    @property
    def checkpoint(self) -> Checkpoint:
        return parse_checkpoint(parse_note(self.note).text)


def _stored(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]), row[3])


def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    c = audit_checkpoints.c
    row = conn.execute(select(audit_checkpoints).order_by(c.tree_size.desc()).limit(1)).first()
    return None if row is None else _stored(row)


def checkpoint_of_size(conn: Connection, size: int) -> StoredCheckpoint | None:
    c = audit_checkpoints.c
    row = conn.execute(select(audit_checkpoints).where(c.tree_size == size)).first()
    return None if row is None else _stored(row)


def all_checkpoints(conn: Connection) -> list[StoredCheckpoint]:
    c = audit_checkpoints.c
    return [_stored(r) for r in conn.execute(select(audit_checkpoints).order_by(c.tree_size))]


def cosignature_lines(conn: Connection, size: int) -> list[str]:
    """The witnesses' signature lines of a checkpoint, each ending in a newline."""
    c = audit_cosignatures.c
    rows = conn.execute(
        select(c.line).where(c.tree_size == size).order_by(c.witness, c.key_id)
    ).all()
    return [f"{r[0]}\n" for r in rows]


def served_note(conn: Connection, stored: StoredCheckpoint) -> str:
    """The signed note as served: the log's signature, then every stored cosignature."""
    lines = cosignature_lines(conn, stored.size)
    if not lines:
        return stored.note
    return stored.note + "".join(lines)


def add_cosignature(conn: Connection, size: int, signature: Signature) -> None:
    c = audit_cosignatures.c
    conn.execute(
        audit_cosignatures.delete().where(
            c.tree_size == size, c.witness == signature.name, c.key_id == signature.key_id
        )
    )
    conn.execute(
        insert(audit_cosignatures).values(
            tree_size=size,
            witness=signature.name,
            key_id=signature.key_id,
            line=signature.line.rstrip("\n"),
            received_at=datetime.now(UTC),
        )
    )


def _sign(conn: Connection, signer: Ed25519Signer, size: int) -> StoredCheckpoint:
    root = root_of_size(conn, size)
    note = sign_checkpoint(Checkpoint(signer.name, size, root), signer)
    stored = StoredCheckpoint(size, root, note, datetime.now(UTC))
    conn.execute(
        insert(audit_checkpoints).values(
            tree_size=size, root=root, note=note, signed_at=stored.signed_at
        )
    )
    return stored


def sign_due(engine: Engine, signer: Ed25519Signer) -> list[StoredCheckpoint]:
    """Sign a checkpoint at every multiple of ``CHECKPOINT_EVERY`` the tree has reached and
    no checkpoint covers yet; returns those made."""
    made: list[StoredCheckpoint] = []
    with engine.begin() as conn:
        size = tree_size(conn)
        last = latest_checkpoint(conn)
        start = 0 if last is None else last.size
        first = (start // CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY
        for due in range(first, size + 1, CHECKPOINT_EVERY):
            made.append(_sign(conn, signer, due))
    return made


def sign_now(engine: Engine, signer: Ed25519Signer) -> StoredCheckpoint:
    """A checkpoint at the tree's current size (the stored one if there is one already)."""
    sign_due(engine, signer)
    with engine.begin() as conn:
        size = tree_size(conn)
        existing = checkpoint_of_size(conn, size)
        if existing is not None:
            return existing
        return _sign(conn, signer, size)


def check_signed_roots(engine: Engine) -> None:
    """Every signed root is the tree's root at that size (the tree was rebuilt from a log
    that is still the one signed)."""
    with engine.connect() as conn:
        size = tree_size(conn)
        for stored in all_checkpoints(conn):
            if stored.size > size:
                continue
            if root_of_size(conn, stored.size) != stored.root:
                raise InvariantBroken(
                    f"the log's root at size {stored.size} is not the one signed: "
                    "the stored events changed after they were signed"
                )


# -- reading the log with its leaves ---------------------------------------------------------


def export_records(
    recorder: Any, engine: Engine
) -> tuple[Iterator[StoredRecord], Iterator[bytes], Callable[[], None]]:
    """The stored records in log order (read from the store itself, page by page) and the
    leaf hashes the log recorded (level 0 of the tree); the third is a closer."""
    conn = engine.connect()
    return read_records(recorder), leaf_hashes(conn), conn.close


def stored_records(recorder: Any, leaves: Sequence[LeafRow]) -> list[tuple[int, StoredRecord]]:
    """The stored records of these leaves (consecutive, in order) as the store holds them."""
    if not leaves:
        return []
    by_id = {leaf.notification_id: leaf.leaf_index for leaf in leaves}
    out: list[tuple[int, StoredRecord]] = []
    start = leaves[0].notification_id
    stop = leaves[-1].notification_id
    while start <= stop:
        page = recorder.select_notifications(start=start, limit=len(leaves) + 10)
        if not page:
            break
        for notification in page:
            if notification.id > stop:
                break
            if notification.id in by_id:
                out.append((by_id[notification.id], record_of(notification)))
        start = page[-1].id + 1
    return out


# -- the signing key -----------------------------------------------------------------------------


def ensure_signing_key(key_dir: Path, origin: str) -> Ed25519Signer:
    """The log's signing key from the key directory, made (mode 0600) if there is none."""
    from ledger.privacy import write_secret_file

    path = Path(key_dir) / SIGNING_KEY_FILE
    if not path.exists():
        signer = Ed25519Signer.generate(origin)
        write_secret_file(path, signer.skey.encode() + b"\n")
    return load_signing_key(key_dir)


def load_signing_key(key_dir: Path) -> Ed25519Signer:
    path = Path(key_dir) / SIGNING_KEY_FILE
    try:
        return parse_skey(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no signing key at {path}: run `ledger init` to make one"
        ) from None
    except NoteError as e:
        raise ValueError(f"{path}: {e}") from None


def signing_key_or_none(key_dir: Path) -> Ed25519Signer | None:
    try:
        return load_signing_key(key_dir)
    except (FileNotFoundError, ValueError):
        return None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unix_now() -> int:
    return int(time.time())


__all__ = [
    "CHECKPOINT_EVERY",
    "AuditProjection",
    "StoredCheckpoint",
    "add_cosignature",
    "audit_checkpoints",
    "audit_cosignatures",
    "check_signed_roots",
    "consistency",
    "ensure_checkpoint_schema",
    "ensure_signing_key",
    "inclusion",
    "latest_checkpoint",
    "leaf_hashes",
    "leaf_of_event",
    "leaves_after",
    "root_of_size",
    "sign_due",
    "sign_now",
    "tree_size",
]
