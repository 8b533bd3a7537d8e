"""Signed list cursors: a client can pass back only a cursor this API gave out, for the same
list of the same fund.

A cursor is ``base64url(json [version, values...]) "." base64url(tag)`` where the tag is
HMAC-SHA256 over the list's name, its scope (the fund's id; "" for the list of funds) and
the payload, truncated to ``CURSOR_TAG_BYTES``. The key is a file of its own in the key
folder (``cursor.key``, created 0600 beside ``kek.key``, never in the database). An edited
cursor, one of another list or fund, or one made with another key: 422 ``invalid-cursor``.
Rotating the key (deleting the file) only invalidates the cursors in flight.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

from api.errors import InvalidCursor
from ledger.privacy import write_secret_file

CURSOR_KEY_FILE = "cursor.key"
CURSOR_VERSION = "c2"
CURSOR_TAG_BYTES = 16
CURSOR_KEY_BYTES = 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


def ensure_cursor_key(key_dir: Path) -> bytes:
    """The cursors' HMAC key, created on first use (readable by the owner only)."""
    path = key_dir / CURSOR_KEY_FILE
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            write_secret_file(path, _b64(secrets.token_bytes(CURSOR_KEY_BYTES)).encode() + b"\n")
    key = _unb64(path.read_bytes().decode("ascii").strip())
    if len(key) != CURSOR_KEY_BYTES:
        raise ValueError(f"{path} does not hold a {CURSOR_KEY_BYTES * 8}-bit key")
    return key


class CursorSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_key_dir(cls, key_dir: Path) -> CursorSigner:
        return cls(ensure_cursor_key(key_dir))

    def _tag(self, list_name: str, scope: str, payload: bytes) -> bytes:
        message = b"\x00".join([list_name.encode(), scope.encode(), payload])
        return hmac.new(self._key, message, hashlib.sha256).digest()[:CURSOR_TAG_BYTES]

    def encode(self, list_name: str, scope: str, *values: Any) -> str:
        payload = json.dumps(
            [CURSOR_VERSION, *values], separators=(",", ":"), ensure_ascii=False
        ).encode()
        return f"{_b64(payload)}.{_b64(self._tag(list_name, scope, payload))}"

    def decode(self, cursor: str | None, list_name: str, scope: str, *types: type) -> list[Any]:
        """The values of a cursor given out for ``list_name`` in ``scope``, or 422."""
        if cursor is None:
            return []
        invalid = InvalidCursor("the cursor is not one this API gave out", field="cursor")
        body, dot, tag = cursor.partition(".")
        try:
            payload, given = _unb64(body), _unb64(tag)
        except (ValueError, binascii.Error, UnicodeError):
            raise invalid from None
        if not dot or not hmac.compare_digest(given, self._tag(list_name, scope, payload)):
            raise invalid
        try:
            values = json.loads(payload)
        except ValueError:
            raise invalid from None
        if (
            not isinstance(values, list)
            or len(values) != len(types) + 1
            or values[0] != CURSOR_VERSION
            or not all(isinstance(v, t) for v, t in zip(values[1:], types, strict=True))
        ):
            raise invalid
        return values[1:]
