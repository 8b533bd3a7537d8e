"""Reading the event log for the read models (``projections.engine.log``) and the fast
decoder: the same events as the application's mapper and recorder give, live and in a
rebuild, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest
from read_models_support import (  # type: ignore[import-not-found]
    db_url,
    engine,
    new_history,
)
from sqlalchemy import Engine

from projections.db import make_engine
from projections.donations import DonationsProjection
from projections.engine.decoder import FastDecoder
from projections.engine.loader import Loader
from projections.engine.log import converted_id
from projections.engine.projector import Projector
from projections.registry import PROJECTIONS
from projections.tables import LIVE, make_tables

__all__ = ["db_url", "engine"]  # fixtures, re-exported for pytest


def test_the_fast_decoder_gives_what_the_mapper_gives(make_app: Any, sqlite_url: str) -> None:
    app = make_app(sqlite_url)
    history = new_history(app, seed=4).run(80)
    app.erase_donor(donation_id=history.donations[0][1], actor="auditor")
    decoder = FastDecoder(app.mapper)
    notifications = app.recorder.select_notifications(1, 10_000)
    assert decoder.enabled
    for n in notifications:
        fast, slow = decoder(n), app.mapper.to_domain_event(n)
        assert type(fast) is type(slow)
        assert vars(fast) == vars(slow)


def test_reading_the_log_directly_gives_what_the_recorder_gives(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=5).run(80)
    projector = Projector(app, engine, [cls(LIVE) for cls in PROJECTIONS])
    direct = projector.read_decoded(3, 10_000) + projector.read_decoded(0, 3)
    assert len(direct) == app.recorder.max_notification_id()
    expected = projector.decode(app.recorder.select_notifications(1, 10_000))

    def comparable(d: Any) -> tuple[Any, ...]:
        event = d[2]
        return d[0], d[1], d[3], type(event), None if event is None else vars(event)

    direct.sort(key=lambda d: d[0])
    assert [comparable(d) for d in direct] == [comparable(d) for d in expected]
    assert any(d[2] is not None for d in direct)


def test_a_rebuild_on_sqlite_gives_the_handlers_the_events_the_mapper_gives(
    make_app: Any, sqlite_url: str
) -> None:
    # One handler contract: a rebuild's events on SQLite are the live ones (a datetime
    # timestamp, the recorder's originator id), however its writer then stores them.
    app = make_app(sqlite_url)
    new_history(app, seed=6).run(60)
    engine = make_engine(sqlite_url)
    live = Projector(app, engine, [cls(LIVE) for cls in PROJECTIONS]).read_decoded(0, 10_000)
    shadow = make_tables("__t")
    loader = Loader(app, engine, [cls(shadow) for cls in PROJECTIONS], generation=1)

    rows = loader.read_decoded(0, 10_000)

    assert [d[:2] + d[3:] for d in rows] == [d[:2] + d[3:] for d in live]
    decoded = [(d[2], e[2]) for d, e in zip(rows, live, strict=True) if d[2] is not None]
    assert decoded
    for event, expected in decoded:
        assert type(event) is type(expected)
        assert vars(event) == vars(expected)
        assert type(event.timestamp) is datetime
        assert event.timestamp.tzinfo is not None
        assert isinstance(event.originator_id, UUID)
    engine.dispose()


def test_a_projector_reads_only_the_topics_it_follows_when_asked(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=41).run(60)
    head = app.recorder.max_notification_id()
    projector = Projector(app, engine, [DonationsProjection(make_tables("__t"))])
    every = projector.read_decoded(0, 10_000)
    followed = projector.read_decoded(0, 10_000, followed_only=True)
    assert len(every) == head
    assert followed == [e for e in every if e[1] in projector.topics]
    assert 0 < len(followed) < len(every)
    stop = followed[len(followed) // 2][0]
    assert projector.read_decoded(0, 10_000, stop=stop, followed_only=True) == [
        e for e in followed if e[0] <= stop
    ]
    assert projector.read_decoded(0, 3, followed_only=True) == followed[:3]


@pytest.mark.parametrize(
    "stored", ["f9e91de773945da0b783876c328b24c2", "F9E91DE773945DA0B783876C328B24C2"]
)
def test_a_stored_id_is_converted_as_the_recorder_converts_it(stored: str) -> None:
    class Recorder:
        datastore = SimpleNamespace(originator_id_type="uuid")

        def convert_originator_id(self, originator_id: str) -> UUID:
            return UUID(originator_id)

    recorder: Any = Recorder()
    oid, text = converted_id(recorder, stored)
    assert oid == UUID(stored)
    assert type(oid) is UUID
    assert (oid.int, oid.is_safe, hash(oid)) == (
        UUID(stored).int,
        UUID(stored).is_safe,
        hash(UUID(stored)),
    )
    assert text == str(UUID(stored))
    with pytest.raises(ValueError, match="hexadecimal"):
        converted_id(recorder, "not-hex-at-all-but-32-characters")
