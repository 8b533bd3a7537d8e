"""Write ``release-0.1/``: an event log (SQLite) and key folder written by release 0.1.0.

Run once, at commit 81e688c (release 0.1.0's code), from the repository root::

    .venv/bin/python tests/data/make_release_log.py

It records the demo fund's history, takes a snapshot of every aggregate (so the
snapshots hold aggregate state in 0.1.0's layout), and writes ``expected.json``: what
every aggregate holds, in plain terms independent of how the state is laid out.
``tests/application/test_release_log.py`` loads the log with today's code and checks it.
Never regenerate it with newer code: its point is to be old.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

from ledger.application import create_app
from ledger.demo import load_demo
from ledger.settings import Settings

HERE = Path(__file__).parent / "release-0.1"
TODAY = date(2026, 11, 20)


def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    HERE.mkdir()
    settings = Settings(
        database_url=f"sqlite:///{HERE / 'ledger.db'}", key_dir=HERE / "ledger-keys"
    )
    app = create_app(settings)
    load_demo(app, today=TODAY)
    funds, grants, donations = {}, {}, {}
    for notification in app.recorder.select_notifications(start=1, limit=1_000_000):
        topic = notification.topic
        oid = notification.originator_id
        if "Fund" in topic:
            funds[oid] = None
        elif "Grant" in topic:
            grants[oid] = None
        elif "Donation" in topic:
            donations[oid] = None
    expected: dict[str, dict[str, object]] = {"funds": {}, "grants": {}, "donations": {}}
    for oid in funds:
        app.take_snapshot(oid)
        fund = app.repository.get(oid)
        expected["funds"][str(oid)] = {
            "slug": fund.slug,
            "figures": {p: dict(f) for p, f in fund.figures.items()},
            "expenses": {
                eid: {"amount_minor": e[0], "purpose": e[1], "category": e[2],
                      "reversed": bool(e[3])}
                for eid, e in fund.expenses.items()
            },
            "version": fund.version,
        }  # fmt: skip
    for oid in grants:
        app.take_snapshot(oid)
        grant = app.repository.get(oid)
        expected["grants"][str(oid)] = {
            "status": grant.status,
            "disbursed_minor": grant.disbursed_minor,
            "released_minor": grant.released_minor,
            "tranches": [
                {"tranche_id": t[0], "amount_minor": t[1], "paid_on": t[2], "method": t[3],
                 "reference": t[4], "evidence_sha256": t[5], "reversed": bool(t[6]),
                 "request_sha256": t[7]}
                for t in grant.tranches
            ],
            "version": grant.version,
        }  # fmt: skip
    for oid in donations:
        app.take_snapshot(oid)
        donation = app.repository.get(oid)
        expected["donations"][str(oid)] = {
            "amount_minor": donation.amount_minor,
            "refunds": {
                rid: {"amount_minor": r[0], "refunded_on": r[1], "request_sha256": r[2]}
                for rid, r in donation.refunds.items()
            },
            "version": donation.version,
        }
    app.close()
    (HERE / "expected.json").write_text(
        json.dumps(expected, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    )


if __name__ == "__main__":
    main()
