"""Faults for the use-case tests, injected where the application meets its store.

``make_failing_app(url)`` is a LedgerApp built with a ``FailingEventStore`` (through the
library's ``construct_event_store`` hook): the store writes as usual until a test sets
``app.events.failure``, then refuses every write with that error, as a full disk would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import EventStore, Recording

from ledger.application import LedgerApp
from ledger.settings import Settings


class FailingEventStore(EventStore[UUID]):
    """The library's event store; while ``failure`` is set, every write raises it."""

    failure: Exception | None = None

    def put(self, events: Sequence[Any], **kwargs: Any) -> list[Recording[UUID]]:
        if self.failure is not None:
            raise self.failure
        return super().put(events, **kwargs)


class LedgerAppOnFailingStore(LedgerApp):
    name = "ledger"  # the library would name the application after this class
    events: FailingEventStore

    def construct_event_store(self) -> FailingEventStore:
        return FailingEventStore(mapper=self.mapper, recorder=self.recorder)


@pytest.fixture
def make_failing_app(
    tmp_path: Path, clock: Any
) -> Iterator[Callable[[str], LedgerAppOnFailingStore]]:
    apps: list[LedgerApp] = []

    def make(url: str) -> LedgerAppOnFailingStore:
        settings = Settings(database_url=url, key_dir=tmp_path / "keys", timezone="Asia/Shanghai")
        app = LedgerAppOnFailingStore(settings, clock=clock.now)
        apps.append(app)
        return app

    yield make
    for app in reversed(apps):
        app.close()
