"""A witness (c2sp.org/tlog-witness, ``add-checkpoint``): a second party that cosigns a log's
checkpoint only if it is consistent with the last one it cosigned for that log.

A request body is::

    old <size of the witness's last checkpoint for this origin>\\n
    <base64 consistency proof hash>\\n        (zero or more, at most 63)
    \\n
    <the signed checkpoint note>

and the answer is the witness's cosignature line(s) (``checkpoint.cosign``, Ed25519 type
0x04, timestamped). ``Witness.add_checkpoint`` follows the specification's checks, and refuses
with ``WitnessError`` carrying the HTTP status the specification gives:

    404  the origin is not a log this witness follows
    403  not signed by the log's key, or a known key's signature fails
    400  a malformed request, or an old size above the checkpoint's size
    409  the old size is not the witness's last size (``latest_size`` says what it is)
    422  a wrong empty-tree root, a proof for old size 0, a proof that fails, or the same size
         with another root (a split view)

The witness's memory (origin → last cosigned checkpoint) is a mapping the caller provides, so
that it can be persisted; checking and updating it is atomic within one ``Witness``.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Final

from ledger.audit.checkpoint import Checkpoint, CheckpointError, cosign, open_checkpoint
from ledger.audit.merkle import EMPTY_ROOT, HASH_SIZE, ProofError, verify_consistency
from ledger.audit.note import Ed25519Signer, Ed25519Verifier, NoteError, parse_note

PROOF_LINES_MAX: Final = 63
REQUEST_SIZE_MAX: Final = 64 * 1024


class WitnessError(Exception):
    """A checkpoint the witness will not cosign; ``status`` is the specification's HTTP status
    and, for 409, ``latest_size`` the size of the witness's last checkpoint."""

    def __init__(self, status: int, message: str, *, latest_size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.latest_size = latest_size


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """An ``add-checkpoint`` request: the old size, the consistency proof, the note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str

    @property
    def body(self) -> str:
        proof = "".join(f"{base64.b64encode(h).decode()}\n" for h in self.proof)
        return f"old {self.old_size}\n{proof}\n{self.note}"


def parse_add_checkpoint(body: str | bytes) -> AddCheckpoint:
    if isinstance(body, bytes):
        if len(body) > REQUEST_SIZE_MAX:
            raise WitnessError(400, f"a request over {REQUEST_SIZE_MAX} bytes")
        try:
            body = body.decode()
        except UnicodeDecodeError:
            raise WitnessError(400, "the request is not UTF-8") from None
    head, blank, note = body.partition("\n\n")
    if not blank:
        raise WitnessError(400, "no blank line before the checkpoint")
    old_line, *proof_lines = head.split("\n")
    size_text = old_line.removeprefix("old ")
    if old_line == size_text or not (size_text == "0" or size_text[:1] in "123456789"):
        raise WitnessError(400, "the first line is 'old <size>'")
    if not size_text.isdigit() or not size_text.isascii():
        raise WitnessError(400, "the old size is not a decimal")
    if len(proof_lines) > PROOF_LINES_MAX:
        raise WitnessError(400, f"more than {PROOF_LINES_MAX} consistency proof lines")
    proof: list[bytes] = []
    for number, line in enumerate(proof_lines, 2):
        try:
            h = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise WitnessError(400, f"line {number} is not base64") from None
        if len(h) != HASH_SIZE:
            raise WitnessError(400, f"line {number} is not a {HASH_SIZE}-byte hash")
        proof.append(h)
    return AddCheckpoint(int(size_text), tuple(proof), note)


class Witness:
    """One witness key and the logs it follows (origin → the log's verifier key)."""

    def __init__(
        self,
        cosigner: Ed25519Signer,
        logs: Mapping[str, Ed25519Verifier],
        latest: MutableMapping[str, Checkpoint] | None = None,
    ) -> None:
        if cosigner.signature_type != 0x04:
            raise ValueError("a witness cosigns with a cosignature key (type 0x04)")
        self.cosigner = cosigner
        self.logs = dict(logs)
        self.latest: MutableMapping[str, Checkpoint] = {} if latest is None else latest
        self._lock = threading.Lock()

    def add_checkpoint(self, body: str | bytes, *, timestamp: int) -> str:
        """Check a request and return the cosignature line, or raise ``WitnessError``."""
        request = parse_add_checkpoint(body)
        checkpoint = self._open(request.note)
        with self._lock:
            self._check(request, checkpoint)
            line = cosign(request.note, self.cosigner, timestamp=timestamp).line
            self.latest[checkpoint.origin] = checkpoint
        return line

    def _open(self, note: str) -> Checkpoint:
        try:
            origin = parse_note(note).text.split("\n", 1)[0]
        except NoteError as e:
            raise WitnessError(400, str(e)) from None
        log_key = self.logs.get(origin)
        if log_key is None:
            raise WitnessError(404, f"{origin[:100]!r} is not a log this witness follows")
        try:
            return open_checkpoint(note, log_key, origin=origin).checkpoint
        except CheckpointError as e:
            raise WitnessError(400 if e.reason == "malformed" else 403, str(e)) from None

    def _check(self, request: AddCheckpoint, checkpoint: Checkpoint) -> None:
        last = self.latest.get(checkpoint.origin)
        last_size = 0 if last is None else last.size
        if request.old_size > checkpoint.size:
            raise WitnessError(400, f"old size {request.old_size} > size {checkpoint.size}")
        if request.old_size != last_size:
            raise WitnessError(
                409, f"the last checkpoint cosigned has size {last_size}", latest_size=last_size
            )
        if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
            raise WitnessError(422, "a tree of size 0 has the empty tree's root")
        if last is None or last_size == 0:
            if request.proof:
                raise WitnessError(422, "no consistency proof from the empty tree")
            return
        if last_size == checkpoint.size and last.root != checkpoint.root:
            raise WitnessError(
                422, f"another root for size {last_size}: the log shows two histories"
            )
        try:
            verify_consistency(
                last_size, checkpoint.size, request.proof, last.root, checkpoint.root
            )
        except ProofError as e:
            raise WitnessError(422, f"not consistent with size {last_size}: {e}") from None


def cosigned(note: str, lines: Sequence[str]) -> str:
    """The checkpoint note with a witness's answer (its signature lines) added."""
    return note + "".join(lines)
