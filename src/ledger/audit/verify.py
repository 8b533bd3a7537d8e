"""The offline verifier: an export and signed checkpoints in, every fund's figures out.

``verify_export`` reads an export (``export.py``) once, front to back, in O(log n) memory:

1. every checkpoint: its note, the log's Ed25519 signature, its origin (the log key's name
   unless told otherwise) and an optional witness quorum; two checkpoints of one size must have
   one root (otherwise the log showed two histories: a split view);
2. the header (format, version, origin);
3. each event line: canonical, its leaf index the next one (nothing dropped, inserted or
   moved), the store's ids increasing, its leaf hash recomputed from the leaf data and equal to
   the one the log recorded;
4. the Merkle root at each checkpoint's size, recomputed from the leaves, equal to the signed
   root. Recomputing every checkpoint's root from one sequence of leaves is the consistency
   check between them: each smaller tree is, by construction, a prefix of each larger one
   (``check_consistency`` checks a log's consistency *proof* between two checkpoints, for
   checkpoints beyond an export, and ``check_inclusion`` one event's inclusion proof, for a
   receipt);
5. a replay of the Fund's money events (``ledger.domain.figures``: the effect of each event by
   name), re-checking that no purpose's available money goes below zero; the figures are those
   at the largest checkpoint (events after it are counted, not trusted);
6. the trailer: the export was not cut short, and reaches the largest checkpoint.

The first thing that does not hold raises ``VerificationError`` with the first bad leaf index
(``None`` when no leaf is to blame, e.g. a forged checkpoint) and a ``reason``.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from ledger.audit.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from ledger.audit.export import (
    FORMAT,
    FORMAT_VERSION,
    HASH_B64_LEN,
    HASH_PREFIX,
    LINE_PREFIX,
    LINE_SUFFIX,
    PROGRESS_EVERY,
)
from ledger.audit.leaf import LeafError, StoredRecord, parse_leaf
from ledger.audit.merkle import (
    Frontier,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.audit.note import Ed25519Verifier, NoteError, parse_vkey
from ledger.domain.figures import (
    EFFECTS,
    UNRESTRICTED,
    apply_effect,
    available_of,
    total_of,
    with_derived,
    zero_figures,
)

LINE_LEN_MAX: Final = 32 * 1024 * 1024
TOPICS_MAX: Final = 10_000  # distinct topics remembered by the replay
FUND_CLASS: Final = "Fund"  # money events are ``<module>:Fund.<EventName>``
OPENED: Final = "Opened"
PURPOSE_ADDED: Final = "PurposeAdded"
_SUFFIX_LEN: Final = len(HASH_PREFIX) + HASH_B64_LEN + len(LINE_SUFFIX)
_LOWERS_AVAILABLE: Final = frozenset(n for n, e in EFFECTS.items() if e.available_sign < 0)


class VerificationError(Exception):
    """The export does not verify. ``index`` is the first bad leaf index (``None`` if no leaf
    is to blame); ``reason`` is one of ``REASONS``."""

    REASONS: ClassVar[frozenset[str]] = frozenset(
        {
            "public_key",  # the verifier key string is malformed
            "checkpoint",  # a checkpoint is malformed, forged or of another log
            "split_view",  # two checkpoints of one size with different roots
            "header",  # not an export, another version or another log's
            "line",  # a line that is not an export line
            "leaf",  # leaf data that is malformed or not canonical
            "index",  # an event out of its place: dropped, inserted or moved
            "order",  # the store's notification ids do not increase
            "leaf_hash",  # the event is not the one the log recorded
            "root",  # the root at a checkpoint's size is not the signed one
            "consistency",  # a consistency proof between checkpoints does not hold
            "inclusion",  # an inclusion proof of one event does not hold
            "event",  # an event the replay cannot read
            "rule",  # the replay breaks the money rule (available below zero)
            "truncated",  # the export ends before its trailer or before a checkpoint
        }
    )

    def __init__(self, index: int | None, reason: str, message: str) -> None:
        assert reason in self.REASONS, reason
        where = "" if index is None else f"leaf {index}: "
        super().__init__(f"{where}{message}")
        self.index = index
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FundFigures:
    """One fund's figures after the replay: by purpose (``""`` is unrestricted money) and in
    total, each with the six figures and ``on_hand`` and ``available``."""

    fund_id: str
    slug: str
    currency: str
    by_purpose: Mapping[str, Mapping[str, int]]
    total: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Report:
    """What held: the log's origin, the number of events, the checkpoints that verified, every
    fund's figures at the largest checkpoint, and the events after it (not vouched for)."""

    origin: str
    size: int
    checkpoints: tuple[Checkpoint, ...]
    funds: Mapping[str, FundFigures]
    events_after_last_checkpoint: int


@dataclass(slots=True)
class _Fund:
    fund_id: str
    slug: str
    currency: str
    figures: dict[str, dict[str, int]] = field(default_factory=dict)


class _Replay:
    """The Fund's money events applied with the domain's one money rule."""

    def __init__(self) -> None:
        self.funds: dict[str, _Fund] = {}
        self._names: dict[str, str] = {}  # topic -> the Fund event's name, "" if none

    def _fund_event(self, topic: str) -> str:
        name = self._names.get(topic)
        if name is None:
            _module, _colon, qualname = topic.partition(":")
            owner, _dot, name = qualname.rpartition(".")
            known = name in EFFECTS or name in (OPENED, PURPOSE_ADDED)
            name = name if owner == FUND_CLASS and known else ""
            if len(self._names) < TOPICS_MAX:
                self._names[topic] = name
        return name

    def apply(self, index: int, record: StoredRecord) -> None:
        name = self._fund_event(record.topic)
        if not name:
            return
        state = self._state(index, record)
        fund = self.funds.get(record.originator_id)
        try:
            if name == OPENED:
                fund = _Fund(record.originator_id, str(state["slug"]), str(state["currency"]))
                fund.figures[UNRESTRICTED] = zero_figures()
                for purpose in state["purposes"]:
                    fund.figures[str(purpose["code"])] = zero_figures()
                self.funds[record.originator_id] = fund
                return
            if fund is None:
                raise VerificationError(index, "event", f"{name} of a fund never opened")
            if name == PURPOSE_ADDED:
                fund.figures.setdefault(str(state["code"]), zero_figures())
                return
            purpose, amount_minor = state["purpose"], state["amount_minor"]
        except (KeyError, TypeError) as e:
            raise VerificationError(index, "event", f"{name} lacks {e}") from None
        if type(amount_minor) is not int or amount_minor < 0:
            raise VerificationError(index, "event", f"{name}: amount {amount_minor!r}")
        figures = fund.figures.get(purpose) if isinstance(purpose, str) else None
        if figures is None:
            raise VerificationError(index, "event", f"{name}: {fund.slug} has no {purpose!r}")
        apply_effect(figures, name, amount_minor)
        if name in _LOWERS_AVAILABLE and available_of(figures) < 0:
            where = f"purpose {purpose!r}" if purpose else "unrestricted money"
            raise VerificationError(
                index, "rule", f"{name} leaves {fund.slug}'s {where} below zero available"
            )

    @staticmethod
    def _state(index: int, record: StoredRecord) -> dict[str, Any]:
        try:
            state = json.loads(record.state.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise VerificationError(index, "event", "the stored state is not JSON") from None
        if not isinstance(state, dict):
            raise VerificationError(index, "event", "the stored state is not a JSON object")
        return state

    def figures(self) -> dict[str, FundFigures]:
        return {
            fund.slug: FundFigures(
                fund_id=fund.fund_id,
                slug=fund.slug,
                currency=fund.currency,
                by_purpose={code: with_derived(f) for code, f in fund.figures.items()},
                total=with_derived(total_of(fund.figures.values())),
            )
            for fund in self.funds.values()
        }


def _public_key(key: str | Ed25519Verifier) -> Ed25519Verifier:
    if isinstance(key, Ed25519Verifier):
        return key
    try:
        return parse_vkey(key)
    except NoteError as e:
        raise VerificationError(None, "public_key", f"the public key: {e}") from None


def open_checkpoints(
    checkpoints: Sequence[str | bytes],
    public_key: str | Ed25519Verifier,
    *,
    origin: str | None = None,
    witnesses: Sequence[str | Ed25519Verifier] = (),
    quorum: int = 0,
) -> list[Checkpoint]:
    """Every checkpoint verified, by size; refuse two of one size with different roots."""
    log_key = _public_key(public_key)
    witness_keys = [_public_key(w) for w in witnesses]
    opened: dict[int, Checkpoint] = {}
    for number, data in enumerate(checkpoints, 1):
        try:
            checkpoint = open_checkpoint(
                data, log_key, origin=origin, witnesses=witness_keys, quorum=quorum
            ).checkpoint
        except CheckpointError as e:
            raise VerificationError(None, "checkpoint", f"checkpoint {number}: {e}") from None
        same_size = opened.get(checkpoint.size)
        if same_size is not None and same_size.root != checkpoint.root:
            raise VerificationError(
                None,
                "split_view",
                f"two checkpoints of size {checkpoint.size} with different roots: the log "
                "signed two histories",
            )
        opened[checkpoint.size] = checkpoint
    return [opened[size] for size in sorted(opened)]


def check_consistency(older: Checkpoint, newer: Checkpoint, proof: Sequence[bytes]) -> None:
    """A log's consistency proof between two verified checkpoints of one log."""
    if older.origin != newer.origin:
        raise VerificationError(None, "consistency", "checkpoints of two logs")
    try:
        verify_consistency(older.size, newer.size, proof, older.root, newer.root)
    except ProofError as e:
        raise VerificationError(None, "consistency", str(e)) from None


def check_inclusion(
    checkpoint: Checkpoint, data: bytes, index: int, proof: Sequence[bytes]
) -> StoredRecord:
    """One event's leaf data proven to be leaf ``index`` of a verified checkpoint (a donor's
    receipt); return its stored record."""
    try:
        leaf_index, record = parse_leaf(data)
    except LeafError as e:
        raise VerificationError(index, "leaf", str(e)) from None
    if leaf_index != index:
        raise VerificationError(index, "index", f"the leaf data says leaf {leaf_index}")
    try:
        verify_inclusion(leaf_hash(data), index, checkpoint.size, proof, checkpoint.root)
    except ProofError as e:
        raise VerificationError(index, "inclusion", str(e)) from None
    return record


def _event(line: bytes, index: int) -> tuple[bytes, bytes]:
    """The leaf data and the recorded leaf hash (base64) of an event line (without its
    newline)."""
    if (
        not line.startswith(LINE_PREFIX)
        or not line.endswith(LINE_SUFFIX)
        or len(line) < len(LINE_PREFIX) + _SUFFIX_LEN
        or line[-_SUFFIX_LEN : -_SUFFIX_LEN + len(HASH_PREFIX)] != HASH_PREFIX
    ):
        raise VerificationError(index, "line", 'not an event line {"leaf":…,"leaf_hash":"…"}')
    recorded_b64 = line[-HASH_B64_LEN - len(LINE_SUFFIX) : -len(LINE_SUFFIX)]
    return line[len(LINE_PREFIX) : -_SUFFIX_LEN], recorded_b64


def _header(line: bytes | None, origin: str) -> None:
    if line is None:
        raise VerificationError(None, "truncated", "the export is empty")
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise VerificationError(None, "header", "the first line is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise VerificationError(None, "header", f"not a {FORMAT} file")
    if header.get("v") != FORMAT_VERSION:
        raise VerificationError(None, "header", f"export version {header.get('v')!r}")
    if header.get("origin") != origin:
        raise VerificationError(
            None, "header", f"an export of {header.get('origin')!r}, not of {origin!r}"
        )


def _trailer(line: bytes, size: int) -> bool:
    """Whether ``line`` is the trailer (and says ``size``); an event line is not."""
    if line.startswith(LINE_PREFIX):
        return False
    try:
        trailer = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise VerificationError(size, "line", "neither an event line nor the trailer") from None
    if not isinstance(trailer, dict) or set(trailer) != {"size"}:
        raise VerificationError(size, "line", "neither an event line nor the trailer")
    if trailer["size"] != size:
        raise VerificationError(
            min(size, trailer["size"]) if isinstance(trailer["size"], int) else size,
            "truncated",
            f"the trailer says {trailer['size']!r} events, the export has {size}",
        )
    return True


class _Verification:
    """The state of one pass over an export: the tree's right edge, the replay, the
    checkpoints not reached yet (smallest last) and how far the signed roots vouch."""

    def __init__(self, checkpoints: Sequence[Checkpoint]) -> None:
        self.pending = list(reversed(checkpoints))
        self.frontier = Frontier()
        self.replay = _Replay()
        self.vouched_size = 0
        self.funds: dict[str, FundFigures] = {}
        self.previous_id = -1
        self.reach_checkpoints()

    @property
    def size(self) -> int:
        return self.frontier.size

    def event(self, line: bytes) -> None:
        """Check one event line (without its newline) and take it into the tree and replay."""
        index = self.frontier.size
        data, recorded = _event(line, index)
        try:
            leaf_index, record = parse_leaf(data)
        except LeafError as e:
            raise VerificationError(index, "leaf", str(e)) from None
        if leaf_index != index:
            raise VerificationError(
                index,
                "index",
                f"the event in place {index} is leaf {leaf_index}: an event was dropped, "
                "inserted or moved",
            )
        if record.notification_id <= self.previous_id:
            raise VerificationError(
                index,
                "order",
                f"notification id {record.notification_id} does not follow {self.previous_id}",
            )
        self.previous_id = record.notification_id
        computed = leaf_hash(data)
        if binascii.b2a_base64(computed, newline=False) != recorded:
            raise VerificationError(
                index, "leaf_hash", "the event is not the one the log recorded at this leaf"
            )
        self.frontier.add(computed)
        self.replay.apply(index, record)
        if self.pending and self.pending[-1].size == index + 1:
            self.reach_checkpoints()

    def reach_checkpoints(self) -> None:
        """Compare the root with every checkpoint of the current size."""
        while self.pending and self.pending[-1].size == self.frontier.size:
            checkpoint = self.pending.pop()
            if self.frontier.root() != checkpoint.root:
                raise VerificationError(
                    self.vouched_size,
                    "root",
                    f"the root of the first {checkpoint.size} leaves is not the signed one: "
                    f"a leaf from {self.vouched_size} to {checkpoint.size - 1} is not the log's",
                )
            self.vouched_size = checkpoint.size
            self.funds = self.replay.figures()

    def finish(self, *, ended: bool) -> None:
        if self.pending:
            raise VerificationError(
                self.size,
                "truncated",
                f"the export ends after {self.size} events; a checkpoint has "
                f"{self.pending[-1].size}",
            )
        if not ended:
            raise VerificationError(self.size, "truncated", "the export ends without its trailer")


def verify_export(
    lines: Iterable[bytes],
    *,
    checkpoints: Sequence[str | bytes],
    public_key: str | Ed25519Verifier,
    origin: str | None = None,
    witnesses: Sequence[str | Ed25519Verifier] = (),
    quorum: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify an export against signed checkpoints (see the module docstring); return what
    held, or raise ``VerificationError`` at the first thing that does not.
    ``progress(events_read)`` is called every ``PROGRESS_EVERY`` events."""
    log_key = _public_key(public_key)
    expected_origin = log_key.name if origin is None else origin
    verified = open_checkpoints(
        checkpoints, log_key, origin=expected_origin, witnesses=witnesses, quorum=quorum
    )
    if not verified:
        raise VerificationError(None, "checkpoint", "no checkpoint to verify against")
    lines = iter(lines)
    _header(next(lines, None), expected_origin)
    state = _Verification(verified)
    ended = False
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if len(line) > LINE_LEN_MAX:
            raise VerificationError(state.size, "line", f"a line over {LINE_LEN_MAX} bytes")
        if _trailer(line, state.size):
            if next(lines, None) is not None:
                raise VerificationError(state.size, "line", "lines after the trailer")
            ended = True
            break
        state.event(line)
        if progress is not None and state.size % PROGRESS_EVERY == 0:
            progress(state.size)
    state.finish(ended=ended)
    return Report(
        origin=expected_origin,
        size=state.size,
        checkpoints=tuple(verified),
        funds=state.funds,
        events_after_last_checkpoint=state.size - state.vouched_size,
    )


def verify_export_file(
    path: str | Path,
    *,
    checkpoints: Sequence[str | bytes],
    public_key: str | Ed25519Verifier,
    origin: str | None = None,
    witnesses: Sequence[str | Ed25519Verifier] = (),
    quorum: int = 0,
) -> Report:
    """``verify_export`` over a file, read line by line."""
    with open(path, "rb") as lines:
        return verify_export(
            lines,
            checkpoints=checkpoints,
            public_key=public_key,
            origin=origin,
            witnesses=witnesses,
            quorum=quorum,
        )
