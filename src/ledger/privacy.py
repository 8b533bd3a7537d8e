"""Donor privacy: per-donor data keys, sealed personal data, crypto-shredding.

A donor's name and contact are sealed with AES-256-GCM under a data key of that donor alone,
with the donor id as associated data (a sealed blob moved to another donor does not open).
The data key is stored wrapped (AES key wrap, RFC 3394) by the key-encryption key, a file in
``LEDGER_KEY_DIR`` that never enters the database. Deleting the wrapped key erases the
donor: the events and their Merkle leaves stay byte for byte, the name is unreadable.

Sealed text: ``"v1." + base64url(nonce[12] || ciphertext+tag)``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

KEK_FILE = "kek.key"
SEALED_PREFIX = "v1."


class KeyFileError(Exception):
    """The key-encryption key is missing, unreadable or not the one that wrapped a donor's
    key. A fault of the server's set-up, never of a request: deliberately not a
    ``LedgerError``, so that no handler of ledger errors turns it into an answer ("no donor
    details") or a client's mistake (4xx). The HTTP API answers 500 and logs it."""

    slug = "key-file"
    title = "Key file missing or unreadable"


@dataclass(frozen=True, slots=True)
class PersonalData:
    name: str | None
    contact: str | None

    def is_empty(self) -> bool:
        return not self.name and not self.contact


def write_secret_file(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only; refuse to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_kek(key_dir: Path) -> bytes:
    """Load the key-encryption key, creating it on first use."""
    path = key_dir / KEK_FILE
    if not path.exists():
        # Another process may make it first: then its key is the one.
        with contextlib.suppress(FileExistsError):
            write_secret_file(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
    return load_kek(key_dir)


def load_kek(key_dir: Path) -> bytes:
    path = key_dir / KEK_FILE
    try:
        kek = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (OSError, ValueError) as e:
        raise KeyFileError(f"cannot read the key-encryption key {path}: {e}") from None
    if len(kek) != 32:
        raise KeyFileError(f"{path} does not hold a 256-bit key")
    return kek


class DonorVault:
    """Seals and opens donors' personal data; knows nothing of where keys are stored."""

    def __init__(self, kek: bytes) -> None:
        self._kek = kek

    def new_data_key(self) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapped form (to be stored)."""
        key = AESGCM.generate_key(bit_length=256)
        return key, aes_key_wrap(self._kek, key)

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            return aes_key_unwrap(self._kek, wrapped)
        except InvalidUnwrap:
            raise KeyFileError("a donor key does not unwrap with this key-encryption key") from None

    @staticmethod
    def seal(data_key: bytes, donor_id: str, personal: PersonalData) -> str:
        plain = orjson.dumps({"contact": personal.contact, "name": personal.name})
        nonce = secrets.token_bytes(12)
        sealed = nonce + AESGCM(data_key).encrypt(nonce, plain, donor_id.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(sealed).decode()

    @staticmethod
    def open(data_key: bytes, donor_id: str, sealed: str) -> PersonalData:
        if not sealed.startswith(SEALED_PREFIX):
            raise KeyFileError("unknown sealed-data format")
        raw = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :])
        try:
            plain = AESGCM(data_key).decrypt(raw[:12], raw[12:], donor_id.encode())
        except InvalidTag:
            raise KeyFileError("sealed donor data does not open with its key") from None
        fields = json.loads(plain)
        return PersonalData(name=fields.get("name"), contact=fields.get("contact"))
