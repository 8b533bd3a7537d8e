"""The verifiable log at the edges, end to end: checkpoints, proofs, the raw log and receipts
over HTTP; ``ledger audit`` export, verify, check-receipt and a witness's cosign; a donor's
erasure through the API that leaves every checkpoint verifying."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from test_api_support import FUND, World, problem, serve
from typer.testing import CliRunner, Result

import api.cli.audit as audit_cli
from api.cli import app as cli_app
from ledger.audit.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint, sign_checkpoint
from ledger.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.audit.note import parse_vkey
from ledger.settings import Settings, get_settings
from projections.audit import ensure_signing_key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
DONOR = "欧阳修远"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ensure_signing_key(tmp_path / "keys", Settings().audit_origin)
    monkeypatch.setenv("LEDGER_DATABASE_URL", url)
    monkeypatch.setenv("LEDGER_KEY_DIR", str(tmp_path / "keys"))
    get_settings.cache_clear()
    with serve(url, tmp_path, lambda: NOW) as w:
        w.open_fund()
        # The CLI's HTTP goes to this app.
        monkeypatch.setattr(audit_cli, "http_get", lambda u: _get(w, u))
        monkeypatch.setattr(audit_cli, "http_post_json", lambda u, b, t: _post(w, u, b, t))
        yield w
    get_settings.cache_clear()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _get(w: World, url: str) -> bytes:
    response = w.client.get(_path(url))
    assert response.status_code == 200, response.text
    return response.content


def _post(w: World, url: str, body: Any, token: str) -> bytes:
    response = w.client.post(_path(url), json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    return response.content


def cli(*args: str) -> Result:
    return CliRunner().invoke(cli_app, list(args))


def cli_ok(*args: str) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def _vkey() -> str:
    return cli_ok("audit", "public-key").stdout.strip()


def _donate(w: World, amount: str = "100.00", name: str | None = None) -> Any:
    donor = {"anonymous": False, "name": name} if name else {"anonymous": True}
    return w.donate(amount, donor=donor)


def test_checkpoints_proofs_and_a_receipt_over_http(world: World, tmp_path: Path) -> None:
    w = world
    problem(w.client.get("/api/audit/checkpoint"), 404, "no-checkpoint")
    gifts = [_donate(w, f"{n}.00") for n in range(1, 6)]
    vkey = _vkey()
    key = parse_vkey(vkey)

    answer = w.client.get(f"/api/receipts/{gifts[2]['receipt_no']}")
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert receipt["donation"]["amount"] == "3.00"
    assert receipt["leaf"] is None  # the stored state holds what the public may not see
    checkpoint = audit_cli.check_receipt_document(receipt, vkey)
    assert receipt["verify_script"] == "/static/audit/verify-receipt.js"
    auditor = w.client.get(f"/api/receipts/{gifts[2]['receipt_no']}", headers=w.auth("auditor"))
    leaf = auditor.json()["leaf"]
    assert base64.b64encode(leaf_hash(leaf.encode())).decode() == receipt["leaf_hash"]
    assert json.loads(leaf)["index"] == receipt["leaf_index"]

    latest = w.client.get("/api/audit/checkpoint")
    assert latest.headers["content-type"].startswith("text/plain")
    assert open_checkpoint(latest.text, key).checkpoint == checkpoint
    assert w.client.get(f"/api/audit/checkpoints/{checkpoint.size}").text == latest.text
    problem(w.client.get("/api/audit/checkpoints/3"), 404, "no-checkpoint")

    size = checkpoint.size
    proof = w.client.get(f"/api/audit/proofs/inclusion?index=1&size={size}").json()
    verify_inclusion(
        base64.b64decode(proof["leaf_hash"]), 1, size,
        [base64.b64decode(h) for h in proof["proof"]], checkpoint.root,
    )  # fmt: skip
    consistency = w.client.get(f"/api/audit/proofs/consistency?first=2&second={size}").json()
    verify_consistency(
        2, size, [base64.b64decode(h) for h in consistency["proof"]],
        base64.b64decode(consistency["first_root"]), checkpoint.root,
    )  # fmt: skip
    problem(w.client.get(f"/api/audit/proofs/inclusion?index=0&size={size + 99}"), 422,
            "tree-size-out-of-range")  # fmt: skip

    problem(w.client.get("/api/audit/events"), 401, "unauthorized")
    page = w.client.get("/api/audit/events?limit=3", headers=w.auth("auditor")).json()
    assert [e["index"] for e in page["items"]] == [0, 1, 2]
    for event in page["items"]:
        assert base64.b64encode(leaf_hash(event["leaf"].encode())).decode() == event["leaf_hash"]
    rest = w.client.get(
        f"/api/audit/events?after={page['next_after']}&limit=500", headers=w.auth("auditor")
    ).json()
    assert rest["items"][0]["index"] == 3
    assert rest["next_after"] is None

    checked = cli_ok(
        "audit", "check-receipt", gifts[0]["receipt_no"], "--url", "http://ledger.test",
        "--public-key", vkey,
    )  # fmt: skip
    assert checked.stdout.rstrip().endswith("verified")

    # A receipt against another log's key, or with a proof changed, does not verify.
    other = cli(
        "audit", "check-receipt", gifts[0]["receipt_no"], "--url", "http://ledger.test",
        "--public-key", "other.example+12345678+AUV87ogHYsDcnRcNuykjZARqGO1vsQ+gMOe00dVrDpeo",
    )  # fmt: skip
    assert other.exit_code == 3
    forged = dict(receipt, leaf_index=receipt["leaf_index"] + 1)
    with pytest.raises(Exception, match=r"inclusion|root"):
        audit_cli.check_receipt_document(forged, vkey)


def test_export_then_verify_offline_with_the_checkpoints_kept(world: World, tmp_path: Path) -> None:
    w = world
    for n in range(3):
        _donate(w, f"{n + 1}0.00", name=DONOR if n == 0 else None)
    first = tmp_path / "cp1.txt"
    first.write_text(cli_ok("audit", "checkpoint").stdout)
    _donate(w, "7.00")
    second = tmp_path / "cp2.txt"
    second.write_text(cli_ok("audit", "checkpoint").stdout)
    export = tmp_path / "log.jsonl"
    cli_ok("audit", "export", str(export))
    assert DONOR.encode() not in export.read_bytes()  # sealed: ciphertext in the leaf
    verified = cli_ok(
        "audit", "verify", str(export), "--checkpoint", str(first), "--checkpoint", str(second),
        "--public-key", _vkey(),
    )  # fmt: skip
    assert "verified:" in verified.stdout
    assert f"{FUND} (CNY): received 67.00" in verified.stdout
    stdout = cli_ok("audit", "export", "-").stdout.encode()
    assert stdout == export.read_bytes()


def test_a_witness_cosigns_and_refuses_a_split_view(world: World, tmp_path: Path) -> None:
    w = world
    _donate(w)
    witness_key = tmp_path / "witness.key"
    state = tmp_path / "witness.json"
    witness_vkey = cli_ok("audit", "witness-key", "witness.example.org", str(witness_key))
    witness_vkey_text = witness_vkey.stdout.strip()
    assert witness_key.stat().st_mode & 0o777 == 0o600
    cli_ok("audit", "checkpoint")
    vkey = _vkey()
    admin = w.auth("admin")["Authorization"].removeprefix("Bearer ")

    line = cli_ok(
        "audit", "cosign", "--url", "http://ledger.test", "--key", str(witness_key),
        "--state", str(state), "--log-key", vkey, "--token", admin,
    ).stdout  # fmt: skip
    assert line.startswith("— witness.example.org ")
    served = w.client.get("/api/audit/checkpoint").text
    assert line in served
    opened = open_checkpoint(
        served, parse_vkey(vkey), witnesses=[parse_vkey(witness_vkey_text)], quorum=1
    )
    assert len(opened.witnesses) == 1

    # The log grows: the witness checks consistency from what it cosigned, and cosigns again.
    _donate(w, "5.00")
    cli_ok("audit", "checkpoint")
    cli_ok(
        "audit", "cosign", "--url", "http://ledger.test", "--key", str(witness_key),
        "--state", str(state),
    )  # fmt: skip
    remembered = parse_checkpoint(json.loads(state.read_text())["logs"][opened.checkpoint.origin]
                                  ["checkpoint"])  # fmt: skip
    assert remembered.size > opened.checkpoint.size

    # The same size with another root, signed by the log's own key: a split view, refused.
    from projections.audit import load_signing_key

    signer = load_signing_key(tmp_path / "keys")
    fork = sign_checkpoint(Checkpoint(signer.name, remembered.size, b"\x07" * 32), signer)
    audit_cli.http_get = lambda u: fork.encode()  # type: ignore[assignment]  # (restored)
    refused = cli(
        "audit", "cosign", "--url", "http://ledger.test", "--key", str(witness_key),
        "--state", str(state),
    )  # fmt: skip
    assert refused.exit_code == 3
    assert "another root" in refused.stderr
    assert (
        parse_checkpoint(json.loads(state.read_text())["logs"][signer.name]["checkpoint"])
        == remembered
    )

    # The verifier's witness policy: 1 of 1 holds for the first checkpoint, 2 of 2 does not.
    cp = tmp_path / "cp.txt"
    cp.write_text(served)
    export = tmp_path / "log.jsonl"
    cli_ok("audit", "export", str(export))
    base = ["audit", "verify", str(export), "--checkpoint", str(cp), "--public-key", vkey]
    cli_ok(*base, "--witness-key", witness_vkey_text, "--witnesses-min", "1")
    other = cli_ok("audit", "witness-key", "other.example.org", str(tmp_path / "o.key"))
    short = cli(
        *base, "--witness-key", witness_vkey_text, "--witness-key", other.stdout.strip(),
        "--witnesses-min", "2",
    )  # fmt: skip
    assert short.exit_code == 3
    assert "witnesses" in short.stderr


def test_erasing_a_donor_end_to_end(world: World, tmp_path: Path) -> None:
    w = world
    gift = _donate(w, "88.00", name=DONOR)
    _donate(w, "1.00")
    before = tmp_path / "before.txt"
    before.write_text(cli_ok("audit", "checkpoint").stdout)
    ledger = w.services.ledger
    donor_id = ledger.get_donation(gift["id"]).donor_id
    wrapped = ledger.donor_keys.select_donor_key(donor_id)
    assert wrapped is not None
    full = w.client.get(f"/api/funds/{FUND}/donations", headers=w.auth("auditor")).json()
    assert DONOR in json.dumps(full, ensure_ascii=False)

    problem(w.client.post(f"/api/donations/{gift['id']}/erasure", headers=w.auth("treasurer")),
            403, "role-not-allowed")  # fmt: skip
    erased = w.client.post(f"/api/donations/{gift['id']}/erasure", headers=w.auth("admin"))
    assert erased.status_code == 200, erased.text
    assert erased.json()["donor_erased"] is True

    full = w.client.get(f"/api/funds/{FUND}/donations", headers=w.auth("auditor")).json()
    item = next(i for i in full["items"] if i["id"] == gift["id"])
    assert item["donor_erased"] is True
    assert item["donor_details"] is None
    assert DONOR not in json.dumps(full, ensure_ascii=False)
    public = w.client.get(f"/api/funds/{FUND}/donations").json()
    assert DONOR not in json.dumps(public, ensure_ascii=False)
    receipt = w.client.get(f"/api/receipts/{gift['receipt_no']}").json()
    assert DONOR not in json.dumps(receipt, ensure_ascii=False)

    # The key is gone from the store, its write-ahead log and a backup taken now.
    db = tmp_path / "ledger.db"
    backup = tmp_path / "backup.db"
    with sqlite3.connect(db) as source, sqlite3.connect(backup) as target:
        source.backup(target)
    for path in (db, Path(f"{db}-wal"), backup):
        if path.exists():
            assert wrapped not in path.read_bytes(), path
    assert ledger.donor_details(ledger.get_donation(gift["id"])) is None

    # The log is intact: the checkpoint signed before the erasure still verifies.
    export = tmp_path / "log.jsonl"
    cli_ok("audit", "export", str(export))
    after = tmp_path / "after.txt"
    after.write_text(cli_ok("audit", "checkpoint").stdout)
    cli_ok(
        "audit", "verify", str(export), "--checkpoint", str(before), "--checkpoint", str(after),
        "--public-key", _vkey(),
    )  # fmt: skip
    assert "DonorErased" in export.read_text()
