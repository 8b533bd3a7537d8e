"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and Ed25519 cosignatures
(c2sp.org/tlog-cosignature, signature type 0x04).

A signed note is a text ending in a newline, a blank line, then signature lines::

    — <key name> base64(4-byte key id || signature)

- key id: ``SHA-256(key name || 0x0A || signature type || 32-byte public key)[:4]``, big-endian
  (type 0x01 for Ed25519 note signatures, 0x04 for timestamped cosignatures);
- an Ed25519 signature (type 0x01) signs the note text (with its final newline);
- a cosignature (type 0x04) is ``u64 timestamp || Ed25519 signature`` over
  ``"cosignature/v1\\ntime <timestamp>\\n" || note text``;
- a verifier key (vkey) is ``<name>+<8 hex digits of the key id>+base64(type || public key)``;
- a signer key (this module's private key file, the same text as Go's
  ``golang.org/x/mod/sumdb/note``): ``PRIVATE+KEY+<name>+<hex key id>+base64(0x01 || seed)``.

Reading a note (``open_note``): signatures by unknown keys are ignored (a key is its name *and*
id); a signature by a known key that fails rejects the whole note; at least one known key must
have signed. Errors are ``NoteError`` with a message that says which line and why.

Exceptions::

    NoteError (ValueError)      malformed note, key string or signature; a failed signature
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519: Final = 0x01
COSIGNATURE_V1: Final = 0x04
COSIGNATURE_HEADER: Final = "cosignature/v1\n"
SIGNATURE_PREFIX: Final = "\u2014 "  # em dash, space
SIGNATURES_MAX: Final = 100  # the spec asks readers to accept at least 16
NOTE_SIZE_MAX: Final = 1024 * 1024
NAME_LEN_MAX: Final = 200
TIMESTAMP_MAX: Final = 2**63 - 1
PRIVATE_KEY_PREFIX: Final = "PRIVATE+KEY+"
_SPACES: Final = re.compile(r"\s")


class NoteError(ValueError):
    """A note, key or signature that is malformed or does not verify."""


# -- keys ---------------------------------------------------------------------------------


def key_id(name: str, signature_type: int, public_key: bytes) -> int:
    """The 32-bit key id of a key: the first four bytes of the SHA-256 of name, newline,
    signature type and public key, big-endian."""
    check_key_name(name)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


def check_key_name(name: str) -> str:
    if not name or len(name) > NAME_LEN_MAX or "+" in name or _SPACES.search(name):
        raise NoteError(
            f"key name {name[:80]!r} must be 1..{NAME_LEN_MAX} characters without spaces or '+'"
        )
    if any(ord(c) < 0x20 for c in name):
        raise NoteError("a key name must not contain control characters")
    return name


class Verifier(Protocol):
    """A key that checks signatures: its name, key id and how it verifies."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> int: ...
    def verify(self, text: str, signature: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class Ed25519Verifier:
    """An Ed25519 note key (type 0x01) or cosigner key (type 0x04)."""

    name: str
    public_key: bytes
    signature_type: int = ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != 32:
            raise NoteError(f"an Ed25519 public key has 32 bytes, not {len(self.public_key)}")
        if self.signature_type not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"signature type {self.signature_type:#04x} is not supported")

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.signature_type, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string ``name+hex id+base64(type || public key)``."""
        material = base64.b64encode(bytes([self.signature_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{material}"

    def verify(self, text: str, signature: bytes) -> bool:
        key = Ed25519PublicKey.from_public_bytes(self.public_key)
        if self.signature_type == COSIGNATURE_V1:
            if len(signature) != 8 + 64:
                return False
            timestamp = struct.unpack(">Q", signature[:8])[0]
            if timestamp > TIMESTAMP_MAX:
                return False
            message, signature = cosigned_message(text, timestamp), signature[8:]
        else:
            if len(signature) != 64:
                return False
            message = text.encode()
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def parse_vkey(vkey: str) -> Ed25519Verifier:
    """A verifier from its key string; refuses a key id that does not match the key."""
    parts = vkey.strip().split("+", 2)  # base64 may hold '+', a key name never does
    if len(parts) != 3:
        raise NoteError("a verifier key is name+hex key id+base64 key")
    name, id_hex, material_b64 = parts
    if not re.fullmatch(r"[0-9a-f]{8}", id_hex):
        raise NoteError(f"key id {id_hex!r} is not 8 lowercase hex digits")
    material = _b64("verifier key", material_b64)
    if len(material) != 33 or material[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("the verifier key is not an Ed25519 key (type 0x01 or 0x04, 32 bytes)")
    verifier = Ed25519Verifier(name, material[1:], material[0])
    if verifier.key_id != int(id_hex, 16):
        raise NoteError(f"key id {id_hex} does not match the key (it is {verifier.key_id:08x})")
    return verifier


@dataclass(frozen=True, slots=True)
class Ed25519Signer:
    """A private Ed25519 key with its name: signs notes (type 0x01) or cosigns (0x04)."""

    name: str
    seed: bytes
    signature_type: int = ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.seed) != 32:
            raise NoteError(f"an Ed25519 private key has 32 bytes, not {len(self.seed)}")

    @classmethod
    def generate(cls, name: str, signature_type: int = ED25519) -> Ed25519Signer:
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(name, seed, signature_type)

    @property
    def verifier(self) -> Ed25519Verifier:
        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()
        return Ed25519Verifier(self.name, public, self.signature_type)

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    @property
    def skey(self) -> str:
        """The private key string, for a key file (``PRIVATE+KEY+name+hex id+base64``)."""
        material = base64.b64encode(bytes([self.signature_type]) + self.seed).decode()
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{self.key_id:08x}+{material}"

    def sign(self, text: str, *, timestamp: int | None = None) -> bytes:
        """The signature bytes (without the key id): Ed25519 over the text, or for a cosigner
        the timestamp and Ed25519 over the cosigned message."""
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        if self.signature_type == COSIGNATURE_V1:
            if timestamp is None or not 0 <= timestamp <= TIMESTAMP_MAX:
                raise NoteError("a cosignature needs a timestamp in 0..2**63-1")
            return struct.pack(">Q", timestamp) + key.sign(cosigned_message(text, timestamp))
        if timestamp is not None:
            raise NoteError("a note signature has no timestamp")
        return key.sign(text.encode())


def parse_skey(skey: str) -> Ed25519Signer:
    """A signer from its private key string; refuses one whose key id does not match."""
    text = skey.strip()
    if not text.startswith(PRIVATE_KEY_PREFIX):
        raise NoteError(f"a private key string starts with {PRIVATE_KEY_PREFIX!r}")
    parts = text[len(PRIVATE_KEY_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise NoteError("a private key is PRIVATE+KEY+name+hex key id+base64 key")
    name, id_hex, material_b64 = parts
    material = _b64("private key", material_b64)
    if len(material) != 33 or material[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("the private key is not an Ed25519 key (type 0x01 or 0x04, 32 bytes)")
    signer = Ed25519Signer(name, material[1:], material[0])
    if f"{signer.key_id:08x}" != id_hex:
        raise NoteError(f"key id {id_hex} does not match the key (it is {signer.key_id:08x})")
    return signer


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosigner signs: the header line, the time line, the note text."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


# -- notes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line: the key name, the key id and the signature bytes after it."""

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> str:
        payload = base64.b64encode(self.key_id.to_bytes(4, "big") + self.signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {payload}\n"

    @property
    def timestamp(self) -> int | None:
        """A cosignature's time (its first 8 bytes), if the signature has the length of one."""
        if len(self.signature) != 8 + 64:
            return None
        value: int = struct.unpack(">Q", self.signature[:8])[0]
        return value


@dataclass(frozen=True, slots=True)
class Note:
    """A note's text (with its final newline) and its signatures, in order."""

    text: str
    signatures: tuple[Signature, ...]

    def __str__(self) -> str:
        return self.text + "\n" + "".join(s.line for s in self.signatures)


def check_text(text: str) -> str:
    """A note text: non-empty, ending in a newline, no control characters but newlines."""
    if not text.endswith("\n"):
        raise NoteError("a note text must end with a newline")
    for number, line in enumerate(text.split("\n")[:-1], 1):
        if any(ord(c) < 0x20 or c == "\x7f" for c in line):
            raise NoteError(f"line {number} of the note has a control character")
    return text


def parse_note(data: str | bytes) -> Note:
    """Split a signed note into text and signature lines; nothing is verified here."""
    if isinstance(data, bytes):
        if len(data) > NOTE_SIZE_MAX:
            raise NoteError(f"a note of {len(data)} bytes is over {NOTE_SIZE_MAX}")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("a note must be UTF-8") from None
    if len(data.encode()) > NOTE_SIZE_MAX:
        raise NoteError(f"a note is at most {NOTE_SIZE_MAX} bytes")
    if not data.endswith("\n"):
        raise NoteError("a signed note must end with a newline")
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("no blank line before the signatures")
    text, block = check_text(data[: split + 1]), data[split + 2 :]
    lines = block.split("\n")[:-1]
    if not lines:
        raise NoteError("a signed note needs at least one signature line")
    if len(lines) > SIGNATURES_MAX:
        raise NoteError(f"{len(lines)} signatures: at most {SIGNATURES_MAX} are read")
    text_lines = text.count("\n")
    return Note(text, tuple(_signature(line, text_lines + 2 + n) for n, line in enumerate(lines)))


def _signature(line: str, number: int) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError(f"line {number} is not a signature line ('— name signature')")
    name, space, payload = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or " " in payload:
        raise NoteError(f"line {number}: a signature line is '— <name> <base64>'")
    try:
        check_key_name(name)
    except NoteError as e:
        raise NoteError(f"line {number}: {e}") from None
    raw = _b64(f"line {number}: the signature", payload)
    if len(raw) < 5:
        raise NoteError(f"line {number}: a signature has a key id and at least one byte")
    return Signature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def _b64(what: str, text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{what} is not standard base64") from None
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def sign_note(text: str, signers: Sequence[Ed25519Signer], *, timestamp: int | None = None) -> str:
    """The signed note of ``text`` (ending in a newline) by each signer, in order."""
    check_text(text)
    signatures = tuple(
        Signature(
            s.name,
            s.key_id,
            s.sign(text, timestamp=timestamp if s.signature_type == COSIGNATURE_V1 else None),
        )
        for s in signers
    )
    return str(Note(text, signatures))


def add_signatures(note: Note, signatures: Iterable[Signature]) -> Note:
    """The note with more signature lines (a cosignature beside the log's signature)."""
    return Note(note.text, (*note.signatures, *signatures))


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """A note with at least one good signature by a known key."""

    text: str
    verified_by: tuple[Verifier, ...]
    note: Note


def open_note(data: str | bytes | Note, verifiers: Sequence[Verifier]) -> VerifiedNote:
    """Parse a note and check its signatures against the known keys (c2sp rules: unknown keys
    ignored, a failing known key rejects the note, at least one known key must verify)."""
    note = data if isinstance(data, Note) else parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[Verifier] = []
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if not verifier.verify(note.text, signature.signature):
            raise NoteError(
                f"the signature of {signature.name} (key {signature.key_id:08x}) does not "
                "verify: the note was changed or not signed by this key"
            )
        if verifier not in verified:
            verified.append(verifier)
    if not verified:
        names = ", ".join(f"{v.name}+{v.key_id:08x}" for v in verifiers) or "none given"
        raise NoteError(f"no signature by a known key ({names})")
    return VerifiedNote(note.text, tuple(verified), note)
