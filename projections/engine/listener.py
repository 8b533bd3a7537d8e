"""PostgreSQL: a connection that LISTENs for new events and holds the projector's lock.

The library NOTIFYs on a channel named after the events table whenever it records; a
runner waits on it instead of polling. The same connection holds a session advisory lock,
so that one runner per schema works while the others stand by.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
APPLICATION_NAME = "ledger-projections"


class Listener:
    """A psycopg connection that LISTENs on a channel and may hold an advisory lock."""

    def __init__(self, conn: psycopg.Connection[Any], lock_key: str) -> None:
        self.conn = conn
        self.lock_key = lock_key
        self.locked = False

    @classmethod
    def connect(cls, conninfo: str, *, channel: str, lock_key: str) -> Listener | None:
        """A listener, or None if the server cannot be reached (logged: poll instead)."""
        try:
            conn = psycopg.connect(
                conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                # Which process holds the projector's lock (pg_stat_activity, pg_locks).
                application_name=f"{APPLICATION_NAME} {os.getpid()}",
            )
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except psycopg.Error as e:
            log.error("cannot LISTEN for new events (polling instead): %r", e)
            return None
        return cls(conn, lock_key)

    def try_lock(self) -> bool:
        if not self.locked:
            row = self.conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (self.lock_key,)
            ).fetchone()
            self.locked = bool(row and row[0])
        return self.locked

    def wait(self, timeout_s: float) -> bool:
        """True if a notification came within ``timeout_s``; raises ``psycopg.Error`` if
        the connection failed (the lock is then gone too)."""
        for _ in self.conn.notifies(timeout=timeout_s, stop_after=1):
            return True
        return False

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()
