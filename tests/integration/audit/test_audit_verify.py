"""A real ledger's log, exported and verified offline; every kind of tampering with the export
and with the SQLite store caught at the right leaf, for the right reason."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.application import LedgerApp
from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.export import PROGRESS_EVERY, export_lines, write_export
from ledger.audit.leaf import StoredRecord, leaf_data, leaf_hash_of, read_records
from ledger.audit.merkle import CompactTree
from ledger.audit.note import Ed25519Signer
from ledger.audit.verify import (
    Report,
    VerificationError,
    check_consistency,
    check_inclusion,
    verify_export,
    verify_export_file,
)
from ledger.domain.figures import FIGURE_NAMES

ORIGIN = "ledger.example.org/tea-village"
KEY = Ed25519Signer.generate(ORIGIN)
VKEY = KEY.verifier.vkey
CHECKPOINT_EVERY = 5


class Log:
    """What the log keeps beside the store: its tree (recorded as events came) and the
    checkpoints it signed."""

    def __init__(self, records: list[StoredRecord], key: Ed25519Signer = KEY) -> None:
        self.tree = CompactTree(leaf_hash_of(i, r) for i, r in enumerate(records))
        sizes = [*range(CHECKPOINT_EVERY, self.tree.size, CHECKPOINT_EVERY), self.tree.size]
        self.checkpoints = [self.sign(size, key) for size in sizes]

    def sign(self, size: int, key: Ed25519Signer = KEY, origin: str = ORIGIN) -> str:
        return sign_checkpoint(Checkpoint(origin, size, self.tree.root(size)), key)

    def export(self, records: list[StoredRecord]) -> list[bytes]:
        return list(export_lines(records, origin=ORIGIN, leaf_hashes=self.tree.levels[0]))


@pytest.fixture
def records(busy_app: LedgerApp) -> list[StoredRecord]:
    return list(read_records(busy_app.recorder))


@pytest.fixture
def log(records: list[StoredRecord]) -> Log:
    return Log(records)


def verify(lines: list[bytes], log: Log, **kwargs: Any) -> Report:
    kwargs.setdefault("checkpoints", log.checkpoints)
    kwargs.setdefault("public_key", VKEY)
    return verify_export(lines, **kwargs)


def fails(lines: list[bytes], log: Log, **kwargs: Any) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(lines, log, **kwargs)
    return caught.value


def aggregate_figures(app: LedgerApp, slug: str) -> dict[str, dict[str, int]]:
    fund = app.get_fund(slug)
    return {
        purpose: {
            **{name: figures[name] for name in FIGURE_NAMES},
            "on_hand": fund.on_hand_minor(purpose),
            "available": fund.available_minor(purpose),
        }
        for purpose, figures in fund.figures.items()
    }


# -- a real log verifies -------------------------------------------------------------------------


def test_a_real_exported_log_verifies_and_replays_to_the_ledgers_figures(
    busy_app: LedgerApp, records: list[StoredRecord], log: Log, tmp_path: Path
) -> None:
    path = tmp_path / "export.jsonl"
    seen: list[int] = []
    with path.open("wb") as out:
        count = write_export(
            out, records, origin=ORIGIN, leaf_hashes=log.tree.levels[0], progress=seen.append
        )
    assert count == len(records) == seen[-1]

    report = verify_export_file(path, checkpoints=log.checkpoints, public_key=VKEY)

    assert (report.origin, report.size, report.events_after_last_checkpoint) == (
        ORIGIN,
        len(records),
        0,
    )
    assert [c.size for c in report.checkpoints] == [5, 10, 15, 20, 25, len(records)]
    assert set(report.funds) == {"tea-village", "river"}
    for slug, fund in report.funds.items():
        assert fund.by_purpose == aggregate_figures(busy_app, slug), slug
        assert fund.currency == "CNY"
    tea = report.funds["tea-village"]
    assert tea.by_purpose["education"]["refunded"] == 5_000
    assert tea.total["received"] == 157_000
    assert tea.total["expenses"] == 0  # one expense recorded, then reversed


def test_the_export_file_is_json_lines_with_the_leaf_data_verbatim(
    records: list[StoredRecord], log: Log
) -> None:
    out = io.BytesIO()
    write_export(out, records, origin=ORIGIN)
    lines = out.getvalue().split(b"\n")
    assert lines[-1] == b""
    header, *events, trailer = (json.loads(line) for line in lines[:-1])
    assert header == {"format": "ledger-audit-export", "origin": ORIGIN, "v": 1}
    assert trailer == {"size": len(records)}
    for i, event in enumerate(events):
        assert event["leaf"]["index"] == i
        assert base64.b64decode(event["leaf"]["state_b64"]) == records[i].state
        assert base64.b64decode(event["leaf_hash"]) == log.tree.node(0, i)
    # Written without the log's tree, the hashes are computed: the same ones.
    assert out.getvalue().split(b"\n")[:-1] == [x[:-1] for x in log.export(records)]


def test_events_after_the_last_checkpoint_are_counted_not_vouched_for(
    busy_app: LedgerApp, records: list[StoredRecord], log: Log
) -> None:
    report = verify(log.export(records), log, checkpoints=log.checkpoints[:1])
    assert report.events_after_last_checkpoint == len(records) - 5
    tea = report.funds["tea-village"]
    credited_by_5 = sum(
        json.loads(r.state)["amount_minor"]
        for r in records[:5]
        if r.topic.endswith(":Fund.DonationCredited") and r.originator_id == tea.fund_id
    )
    assert credited_by_5 != 157_000
    assert tea.total["received"] == credited_by_5  # the figures at size 5


# -- tampering with the export -------------------------------------------------------------------


def edit_state(line: bytes, position: int = 20) -> bytes:
    """The line with one base64 character of its state changed (still valid base64)."""
    at = line.index(b'"state_b64":"') + len(b'"state_b64":"') + position
    return line[:at] + (b"B" if line[at : at + 1] != b"B" else b"C") + line[at + 1 :]


def test_one_changed_byte_of_one_event_names_that_leaf(
    records: list[StoredRecord], log: Log
) -> None:
    lines = log.export(records)
    lines[8] = edit_state(lines[8])  # line 8 is leaf 7 (line 0 is the header)
    error = fails(lines, log)
    assert (error.index, error.reason) == (7, "leaf_hash")


def test_a_changed_event_with_its_hash_recomputed_fails_at_the_checkpoint(
    records: list[StoredRecord], log: Log
) -> None:
    lines = log.export(records)
    event = json.loads(lines[8])
    forged = dict(event["leaf"], state_b64=base64.b64encode(b'{"x":1}').decode())
    forged_record = StoredRecord(
        notification_id=forged["notification_id"],
        originator_id=forged["originator_id"],
        originator_version=forged["originator_version"],
        topic=forged["topic"],
        state=b'{"x":1}',
    )
    lines[8] = next(
        line
        for line in export_lines([*records[:7], forged_record], origin=ORIGIN)
        if b'"index":7' in line
    )
    error = fails(lines, log)
    # The leaf hash matches its line, but not the signed root: the leaf is between the last
    # checkpoint that held (size 5) and the first that does not (size 10).
    assert (error.index, error.reason) == (5, "root")
    assert "from 5 to 9" in str(error)


def test_a_dropped_event_names_its_leaf(records: list[StoredRecord], log: Log) -> None:
    lines = log.export(records)
    del lines[4]
    error = fails(lines, log)
    assert (error.index, error.reason) == (3, "index")


def test_two_events_swapped_name_the_first(records: list[StoredRecord], log: Log) -> None:
    lines = log.export(records)
    lines[12], lines[13] = lines[13], lines[12]
    error = fails(lines, log)
    assert (error.index, error.reason) == (11, "index")


def test_a_cut_export_is_truncated(records: list[StoredRecord], log: Log) -> None:
    lines = log.export(records)
    error = fails(lines[:-1], log)
    assert (error.index, error.reason) == (len(records), "truncated")
    error = fails(lines[:12], log)
    assert (error.index, error.reason) == (11, "truncated")
    error = fails([*lines[:12], lines[-1]], log)
    assert (error.index, error.reason) == (11, "truncated")


def test_a_forged_checkpoint_fails(records: list[StoredRecord], log: Log) -> None:
    forged = log.sign(10, Ed25519Signer.generate(ORIGIN))
    error = fails(log.export(records), log, checkpoints=[*log.checkpoints, forged])
    assert (error.index, error.reason) == (None, "checkpoint")
    assert "checkpoint 7: no signature by a known key" in str(error)
    changed = log.checkpoints[1].replace("\n10\n", "\n11\n")
    error = fails(log.export(records), log, checkpoints=[changed])
    assert (error.index, error.reason) == (None, "checkpoint")
    assert "does not verify" in str(error)


def test_a_checkpoint_of_another_log_fails(
    make_app: Any,
    tmp_path: Path,
    open_tea: Callable[..., Any],
    records: list[StoredRecord],
    log: Log,
) -> None:
    other_app = make_app(f"sqlite:///{tmp_path / 'other.db'}")
    open_tea(other_app)
    other_key = Ed25519Signer.generate("ledger.example.org/other")
    other = Log(list(read_records(other_app.recorder)), other_key)
    error = fails(log.export(records), log, checkpoints=[*log.checkpoints, *other.checkpoints])
    assert (error.index, error.reason) == (None, "checkpoint")
    # Signed by this log's key but naming another origin:
    error = fails(
        log.export(records), log, checkpoints=[log.sign(5, origin="ledger.example.org/other")]
    )
    assert (error.index, error.reason) == (None, "checkpoint")
    assert "not of 'ledger.example.org/tea-village'" in str(error)
    # The other log's export with this log's checkpoints:
    error = fails(other.export(list(read_records(other_app.recorder))), log)
    assert error.reason in {"root", "truncated"}


def test_two_checkpoints_of_one_size_with_two_roots_are_a_split_view(
    records: list[StoredRecord], log: Log
) -> None:
    other = Log([*records[:9], records[10]])
    error = fails(log.export(records), log, checkpoints=[log.checkpoints[1], other.sign(10)])
    assert (error.index, error.reason) == (None, "split_view")


def test_an_export_of_another_origin_fails(records: list[StoredRecord], log: Log) -> None:
    lines = list(export_lines(records, origin="ledger.example.org/other"))
    error = fails(lines, log)
    assert (error.index, error.reason) == (None, "header")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"garbage", "line"),
        (b'{"leaf":{"v":1},"leaf_hash":"' + b"A" * 43 + b'="}', "leaf"),
        (b'{"leaf":{},"leaf_hash":"!!"}', "line"),
    ],
)
def test_a_malformed_event_line_names_its_place(
    records: list[StoredRecord], log: Log, line: bytes, reason: str
) -> None:
    lines = log.export(records)
    lines[3] = line + b"\n"
    error = fails(lines, log)
    assert (error.index, error.reason) == (2, reason)


def test_a_malformed_public_key_fails(records: list[StoredRecord], log: Log) -> None:
    error = fails(log.export(records), log, public_key="nonsense")
    assert (error.index, error.reason) == (None, "public_key")


def test_an_inclusion_proof_of_one_event_is_checked(records: list[StoredRecord], log: Log) -> None:
    checkpoint = Checkpoint(ORIGIN, 20, log.tree.root(20))
    data = leaf_data(13, records[13])
    proof = log.tree.inclusion_proof(13, 20)
    assert check_inclusion(checkpoint, data, 13, proof) == records[13]
    with pytest.raises(VerificationError, match="leads to") as caught:
        check_inclusion(checkpoint, leaf_data(13, records[12]), 13, proof)
    assert caught.value.reason == "inclusion"
    with pytest.raises(VerificationError, match="says leaf 13") as caught:
        check_inclusion(checkpoint, data, 12, log.tree.inclusion_proof(12, 20))
    assert caught.value.reason == "index"


def test_a_consistency_proof_between_checkpoints_is_checked(log: Log) -> None:
    small = Checkpoint(ORIGIN, 5, log.tree.root(5))
    big = Checkpoint(ORIGIN, 20, log.tree.root(20))
    check_consistency(small, big, log.tree.consistency_proof(5, 20))
    proof = log.tree.consistency_proof(5, 20)
    with pytest.raises(VerificationError, match="leads to") as caught:
        check_consistency(small, big, [proof[0], bytes(32), *proof[2:]])
    assert caught.value.reason == "consistency"


# -- the replay re-checks the money rule ---------------------------------------------------------

FUND_ID = "d28ebf31-1bcb-5711-a853-6e7d6b1f8842"
OPENED = b'{"slug":"f","currency":"CNY","purposes":[{"code":"edu","name":"E"}]}'


def event(n: int, name: str, state: bytes, originator_id: str = FUND_ID) -> StoredRecord:
    topic = f"ledger.domain.fund:Fund.{name}"
    return StoredRecord(n, originator_id, n, topic, state)


@pytest.mark.parametrize(
    ("events", "index", "reason", "message"),
    [
        (
            [
                event(1, "Opened", OPENED),
                event(2, "DonationRefundDebited", b'{"purpose":"","amount_minor":1}'),
            ],
            1,
            "rule",
            "below zero available",
        ),
        (
            [
                event(1, "Opened", OPENED),
                event(2, "GrantCommitted", b'{"purpose":"x","amount_minor":1}'),
            ],
            1,
            "event",
            "has no 'x'",
        ),
        (
            [event(1, "DonationCredited", b'{"purpose":"","amount_minor":1}')],
            0,
            "event",
            "never opened",
        ),
        ([event(1, "Opened", b"not json")], 0, "event", "not JSON"),
        ([event(1, "Opened", b'{"slug":"f"}')], 0, "event", "lacks 'currency'"),
        (
            [
                event(1, "Opened", OPENED),
                event(2, "DonationCredited", b'{"purpose":"","amount_minor":-5}'),
            ],
            1,
            "event",
            "amount -5",
        ),
    ],
)
def test_a_signed_log_that_breaks_the_money_rule_fails(
    events: list[StoredRecord], index: int, reason: str, message: str
) -> None:
    log = Log(events)
    error = fails(log.export(events), log)
    assert (error.index, error.reason) == (index, reason)
    assert message in str(error)


def test_money_events_move_the_figures_the_domain_says() -> None:
    events = [
        event(1, "Opened", OPENED),
        event(2, "PurposeAdded", b'{"code":"old","name":"O"}'),
        event(3, "DonationCredited", b'{"purpose":"edu","amount_minor":900}'),
        event(4, "GrantCommitted", b'{"purpose":"edu","amount_minor":500}'),
        event(5, "DisbursementDebited", b'{"purpose":"edu","amount_minor":300}'),
        event(6, "DisbursementReversalCredited", b'{"purpose":"edu","amount_minor":100}'),
        event(7, "GrantReleased", b'{"purpose":"edu","amount_minor":50}'),
        event(8, "ExpenseRecorded", b'{"purpose":"edu","amount_minor":40}'),
        event(9, "DonationCredited", b'{"purpose":"old","amount_minor":7}'),
        event(10, "Closed", b'{"purpose":"edu","amount_minor":999}'),  # not a money event
    ]
    log = Log(events)
    fund = verify(log.export(events), log).funds["f"]
    assert fund.by_purpose["edu"] == {
        "received": 900, "refunded": 0, "committed": 500, "released": 50, "disbursed": 200,
        "expenses": 40, "on_hand": 660, "available": 410,
    }  # fmt: skip
    assert fund.total["received"] == 907
    assert fund.by_purpose[""]["received"] == 0


# -- tampering with the SQLite store ----------------------------------------------------------


def tamper(path: Path, sql: str, *args: Any) -> None:
    with sqlite3.connect(path) as db:
        db.execute(sql, args)


def re_export(app: LedgerApp, log: Log) -> list[bytes]:
    return log.export(list(read_records(app.recorder)))


def rowid_of_leaf(path: Path, index: int) -> int:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT rowid FROM stored_events ORDER BY rowid").fetchall()
    return int(rows[index][0])


def test_a_flipped_byte_of_a_stored_state_is_caught(
    busy_app: LedgerApp, sqlite_path: Path, log: Log
) -> None:
    rowid = rowid_of_leaf(sqlite_path, 9)
    tamper(
        sqlite_path,
        'UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), \'"actor":"t"\','
        ' \'"actor":"u"\') AS BLOB) WHERE rowid = ?',
        rowid,
    )
    error = fails(re_export(busy_app, log), log)
    assert (error.index, error.reason) == (9, "leaf_hash")


def test_a_deleted_row_is_caught(busy_app: LedgerApp, sqlite_path: Path, log: Log) -> None:
    tamper(sqlite_path, "DELETE FROM stored_events WHERE rowid = ?", rowid_of_leaf(sqlite_path, 6))
    error = fails(re_export(busy_app, log), log)
    assert (error.index, error.reason) == (6, "leaf_hash")


def test_an_inserted_row_is_caught(
    busy_app: LedgerApp, sqlite_path: Path, records: list[StoredRecord], log: Log
) -> None:
    with sqlite3.connect(sqlite_path) as db:
        db.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state)"
            " SELECT originator_id, originator_version + 1000, topic, state FROM stored_events"
            " ORDER BY rowid DESC LIMIT 1"
        )
    # Appended after everything the log signed: counted, not vouched for, not in the figures.
    report = verify(re_export(busy_app, log), log)
    assert (report.size, report.events_after_last_checkpoint) == (len(records) + 1, 1)


def test_an_inserted_event_names_its_leaf(records: list[StoredRecord], log: Log) -> None:
    lines = log.export(records)
    lines.insert(9, lines[8])
    error = fails(lines, log)
    assert (error.index, error.reason) == (8, "index")


def test_two_rows_swapped_are_caught(busy_app: LedgerApp, sqlite_path: Path, log: Log) -> None:
    a, b = rowid_of_leaf(sqlite_path, 14), rowid_of_leaf(sqlite_path, 15)
    with sqlite3.connect(sqlite_path) as db:
        rows = {
            r[0]: r[1:]
            for r in db.execute(
                "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events"
                " WHERE rowid IN (?, ?)",
                (a, b),
            )
        }
        db.execute("DELETE FROM stored_events WHERE rowid IN (?, ?)", (a, b))
        for rowid, other in ((a, b), (b, a)):
            db.execute(
                "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state)"
                " VALUES (?, ?, ?, ?, ?)",
                (rowid, *rows[other]),
            )
    error = fails(re_export(busy_app, log), log)
    assert (error.index, error.reason) == (14, "leaf_hash")


def test_a_truncated_tail_is_caught(busy_app: LedgerApp, sqlite_path: Path, log: Log) -> None:
    tamper(
        sqlite_path, "DELETE FROM stored_events WHERE rowid >= ?", rowid_of_leaf(sqlite_path, 17)
    )
    error = fails(re_export(busy_app, log), log)
    assert (error.index, error.reason) == (17, "truncated")


def test_store_ids_out_of_order_name_the_leaf(records: list[StoredRecord]) -> None:
    # Even a log that signed them: leaf order must be the store's order.
    shuffled = [*records[:3], records[4], records[3], *records[5:]]
    log = Log(shuffled)
    error = fails(log.export(shuffled), log)
    assert (error.index, error.reason) == (4, "order")


def test_progress_is_reported_every_ten_thousand_events() -> None:
    many = [event(n + 1, "Other", b"{}", str(UUID(int=n))) for n in range(PROGRESS_EVERY + 5)]
    tree = CompactTree(leaf_hash_of(i, r) for i, r in enumerate(many))
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), KEY)
    read: list[int] = []
    lines = export_lines(many, origin=ORIGIN, leaf_hashes=tree.levels[0])
    report = verify_export(lines, checkpoints=[checkpoint], public_key=VKEY, progress=read.append)
    assert (report.size, read) == (PROGRESS_EVERY + 5, [PROGRESS_EVERY])
