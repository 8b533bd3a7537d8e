"""C2SP checkpoints (c2sp.org/tlog-checkpoint): the signed tree head of the log.

A checkpoint is a signed note (``note.py``) whose text is::

    <origin>\\n<tree size>\\n<base64 of the 32-byte root hash>\\n[<extension line>\\n ...]

The origin names the log (``ledger.example.org/tea-village``); the log's key name is the
origin too. The tree size is decimal without leading zeros; extension lines are opaque and
non-empty (the ledger writes none: a checkpoint's time is kept beside it, and witnesses'
cosignatures carry a signed time of their own).

``open_checkpoint`` checks, in this order, the note, the log's signature, the origin and then
any witness policy ("at least K of these cosigner keys"), and raises ``CheckpointError`` whose
``reason`` says which failed: ``malformed``, ``signature``, ``origin`` or ``witnesses``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from ledger.audit.merkle import HASH_SIZE
from ledger.audit.note import (
    COSIGNATURE_V1,
    Ed25519Signer,
    Ed25519Verifier,
    Note,
    NoteError,
    Signature,
    Verifier,
    add_signatures,
    check_text,
    open_note,
    parse_note,
)

ORIGIN_LEN_MAX: Final = 200
EXTENSIONS_MAX: Final = 16
_SIZE_RE: Final = re.compile(r"0|[1-9][0-9]{0,19}")


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted; ``reason`` is one of ``REASONS``."""

    REASONS: ClassVar[frozenset[str]] = frozenset({"malformed", "signature", "origin", "witnesses"})

    def __init__(self, reason: str, message: str) -> None:
        assert reason in self.REASONS, reason
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The log at a size: its origin, tree size, root hash and any extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or len(self.origin) > ORIGIN_LEN_MAX or "\n" in self.origin:
            raise CheckpointError("malformed", f"origin must be one line of 1..{ORIGIN_LEN_MAX}")
        if not 0 <= self.size < 2**64:
            raise CheckpointError("malformed", f"tree size {self.size} is out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError("malformed", f"a root hash has {HASH_SIZE} bytes")
        if len(self.extensions) > EXTENSIONS_MAX:
            raise CheckpointError("malformed", f"at most {EXTENSIONS_MAX} extension lines")
        if any(not line or "\n" in line for line in self.extensions):
            raise CheckpointError("malformed", "an extension line must be one non-empty line")

    @property
    def text(self) -> str:
        """The note text: origin, size, base64 root and extension lines, each ending in \\n."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint in a note text (not a signed note: see ``open_checkpoint``)."""
    try:
        check_text(text)
    except NoteError as e:
        raise CheckpointError("malformed", str(e)) from None
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointError("malformed", "a checkpoint has an origin, a size and a root line")
    origin, size_text, root_b64, *extensions = lines
    if not _SIZE_RE.fullmatch(size_text):
        raise CheckpointError("malformed", f"tree size {size_text[:40]!r} is not a decimal")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError("malformed", "the root line is not base64") from None
    if base64.b64encode(root).decode() != root_b64:
        raise CheckpointError("malformed", "the root line is not canonical base64")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Ed25519Signer) -> str:
    """The signed note of a checkpoint, by the log's key."""
    if signer.signature_type == COSIGNATURE_V1:
        raise CheckpointError("signature", "a log signs with a note key (type 0x01)")
    text = checkpoint.text
    signature = Signature(signer.name, signer.key_id, signer.sign(text))
    return str(Note(text, (signature,)))


def cosign(note_text: str, cosigner: Ed25519Signer, *, timestamp: int) -> Signature:
    """A witness's cosignature line of a checkpoint note (c2sp.org/tlog-cosignature)."""
    if cosigner.signature_type != COSIGNATURE_V1:
        raise CheckpointError("signature", "a cosigner signs with a cosignature key (0x04)")
    checkpoint_text = parse_note(note_text).text
    parse_checkpoint(checkpoint_text)
    return Signature(
        cosigner.name,
        cosigner.key_id,
        cosigner.sign(checkpoint_text, timestamp=timestamp),
    )


def with_cosignatures(note_text: str, signatures: Sequence[Signature]) -> str:
    """The checkpoint note with cosignature lines added after the log's."""
    return str(add_signatures(parse_note(note_text), signatures))


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, and the witnesses whose cosignature did."""

    checkpoint: Checkpoint
    note: Note
    witnesses: tuple[Verifier, ...]


def open_checkpoint(
    data: str | bytes,
    log_key: Ed25519Verifier,
    *,
    origin: str | None = None,
    witnesses: Sequence[Ed25519Verifier] = (),
    quorum: int = 0,
) -> SignedCheckpoint:
    """A checkpoint note checked against the log's key, the expected origin (default: the
    log key's name) and a witness policy (at least ``quorum`` of ``witnesses`` cosigned)."""
    if quorum > len(witnesses):
        raise ValueError(f"a quorum of {quorum} out of {len(witnesses)} witnesses")
    try:
        note = parse_note(data)
    except NoteError as e:
        raise CheckpointError("malformed", str(e)) from None
    try:
        verified = open_note(note, [log_key, *witnesses])
    except NoteError as e:
        raise CheckpointError("signature", str(e)) from None
    if log_key not in verified.verified_by:
        raise CheckpointError(
            "signature", f"not signed by the log's key {log_key.name}+{log_key.key_id:08x}"
        )
    checkpoint = parse_checkpoint(note.text)
    expected = log_key.name if origin is None else origin
    if checkpoint.origin != expected:
        raise CheckpointError(
            "origin", f"a checkpoint of {checkpoint.origin!r}, not of {expected!r}"
        )
    cosigned = tuple(v for v in verified.verified_by if v in witnesses)
    if len(cosigned) < quorum:
        raise CheckpointError(
            "witnesses", f"{len(cosigned)} of the required {quorum} witnesses cosigned"
        )
    return SignedCheckpoint(checkpoint, note, cosigned)
