"""``ledger audit``: the verifiable log (docs/audit.md).

``public-key`` prints the log's verifier key; ``checkpoint`` signs (or prints) a checkpoint;
``export`` writes the log as JSON Lines; ``verify`` checks an export offline against signed
checkpoints and prints every fund's figures; ``check-receipt`` checks a donor's receipt
fetched from a server; ``witness-key`` and ``cosign`` are a witness's (a second party's)
commands. What does not verify exits 3 (``api.errors.EXIT_NOT_VERIFIED``) with one line:
the first bad leaf index and why.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli.common import CATCH_UP_TIMEOUT_S, state
from api.cli.group import command_group
from api.errors import Unavailable
from ledger.audit.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from ledger.audit.export import write_export
from ledger.audit.leaf import parse_leaf
from ledger.audit.merkle import leaf_hash, verify_inclusion
from ledger.audit.note import (
    COSIGNATURE_V1,
    Ed25519Signer,
    Ed25519Verifier,
    parse_note,
    parse_skey,
    parse_vkey,
)
from ledger.audit.verify import VerificationError, check_inclusion, verify_export
from ledger.audit.witness import AddCheckpoint, Witness
from ledger.domain.money import format_amount
from ledger.privacy import write_secret_file
from projections import audit as log
from projections.runner import ProjectionRunner

audit_app = command_group(
    "The verifiable log: keys, checkpoints, export, offline verification, witnesses."
)

HTTP_TIMEOUT_S = 30.0
KeyOpt = Annotated[
    str,
    typer.Option(
        "--public-key", metavar="KEY", help="The log's verifier key string, or a file holding it."
    ),
]


def _key_text(value: str) -> str:
    """A key given as its string or as a file holding it."""
    path = Path(value)
    if "+" not in value or (path.exists() and path.is_file()):
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError:
            pass
    return value.strip()


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False, emoji=False)


def _catch_up_log(ctx: typer.Context) -> None:
    """Bring the Merkle log up to date, and only it: a checkpoint or an export must not
    wait on (or fail with) another read model."""
    current = state(ctx)
    runner = ProjectionRunner(current.app, current.engine, names=[log.AuditProjection.name])
    runner.catch_up(timeout_s=CATCH_UP_TIMEOUT_S)


# -- the log's own commands (on the ledger's database and key folder) --------------------------


@audit_app.command("public-key")
def public_key(ctx: typer.Context) -> None:
    """Print the log's verifier key (give it to auditors, donors and witnesses)."""
    settings = state(ctx).settings
    typer.echo(log.load_signing_key(Path(settings.key_dir)).verifier.vkey)


@audit_app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    size: Annotated[
        int | None,
        typer.Option("--size", min=0, help="Print the stored checkpoint of this size instead."),
    ] = None,
) -> None:
    """Sign a checkpoint of the log as it is now (on demand) and print the signed note."""
    current = state(ctx)
    _catch_up_log(ctx)
    with current.engine.connect() as conn:
        if size is not None:
            stored = log.checkpoint_of_size(conn, size)
            if stored is None:
                from api.errors import NoCheckpoint

                raise NoCheckpoint(f"no checkpoint of size {size}")
            typer.echo(log.served_note(conn, stored), nl=False)
            return
    signer = log.load_signing_key(Path(current.settings.key_dir))
    stored = log.sign_now(current.engine, signer)
    with current.engine.connect() as conn:
        typer.echo(log.served_note(conn, stored), nl=False)


@audit_app.command("export")
def export(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="Where to write; - for stdout.")],
) -> None:
    """Write the whole log as JSON Lines (streaming; docs/audit.md gives the format)."""
    current = state(ctx)
    _catch_up_log(ctx)
    with current.engine.connect() as conn:
        total = log.tree_size(conn)
    signer = log.signing_key_or_none(Path(current.settings.key_dir))
    origin = signer.name if signer is not None else current.settings.audit_origin
    records, hashes, close = log.export_records(current.app.recorder, current.engine)
    out: IO[bytes]
    to_stdout = file == "-"
    out = sys.stdout.buffer if to_stdout else open(file, "wb")  # noqa: SIM115
    try:
        columns = (
            TextColumn("exporting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=_err_console(), transient=to_stdout) as progress:
            task = progress.add_task("export", total=total or None)
            count = write_export(
                out,
                records,
                origin=origin,
                leaf_hashes=hashes,
                progress=lambda n: progress.update(task, completed=n),
            )
    finally:
        close()
        if not to_stdout:
            out.close()
        else:
            out.flush()
    if not to_stdout:
        typer.echo(f"exported {count:,} events of {origin} to {file}")


# -- offline: the verifier ----------------------------------------------------------------------


@audit_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="An export (ledger audit export).")],
    checkpoints: Annotated[
        list[Path],
        typer.Option("--checkpoint", metavar="CP", help="A signed checkpoint file (repeat)."),
    ],
    key: KeyOpt,
    witness_keys: Annotated[
        list[str] | None,
        typer.Option("--witness-key", metavar="K", help="A witness's verifier key (repeat)."),
    ] = None,
    witnesses_min: Annotated[
        int, typer.Option("--witnesses-min", min=0, help="At least this many witnesses cosigned.")
    ] = 0,
) -> None:
    """Verify an export offline: signatures, roots, consistency, then replay every fund's
    figures. Exit 0 only if everything holds; otherwise the first bad leaf and why."""
    notes = [p.read_bytes() for p in checkpoints]
    witnesses = [_key_text(k) for k in witness_keys or ()]
    if witnesses_min > len(witnesses):
        raise typer.BadParameter(f"--witnesses-min {witnesses_min} > {len(witnesses)} keys")
    with open(file, "rb") as lines:
        report = verify_export(
            lines,
            checkpoints=notes,
            public_key=_key_text(key),
            witnesses=witnesses,
            quorum=witnesses_min,
        )
    largest = report.checkpoints[-1]
    typer.echo(
        f"verified: {report.size:,} events of {report.origin}; "
        f"{len(report.checkpoints)} checkpoint(s) up to size {largest.size:,}, root "
        f"{base64.b64encode(largest.root).decode()}"
    )
    if report.events_after_last_checkpoint:
        typer.echo(
            f"  {report.events_after_last_checkpoint:,} events after the last checkpoint "
            "(read, not vouched for)"
        )
    for slug, fund in sorted(report.funds.items()):
        figures = ", ".join(
            f"{name} {format_amount(value, currency=fund.currency)}"
            for name, value in fund.total.items()
        )
        typer.echo(f"  {slug} ({fund.currency}): {figures}")


# -- over HTTP: a donor's check and a witness -------------------------------------------------


def http_get(url: str) -> bytes:
    """GET a URL (the server's public routes); tests replace it."""
    request = urllib.request.Request(url, headers={"Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as e:
        raise Unavailable(f"GET {url}: HTTP {e.code} {e.read()[:300]!r}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Unavailable(f"GET {url}: {e}") from None


def http_post_json(url: str, body: dict[str, Any], token: str) -> bytes:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            answer: bytes = response.read()
            return answer
    except urllib.error.HTTPError as e:
        raise Unavailable(f"POST {url}: HTTP {e.code} {e.read()[:300]!r}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Unavailable(f"POST {url}: {e}") from None


def _url(base: str, path: str) -> str:
    return base.rstrip("/") + path


def check_receipt_document(receipt: dict[str, Any], public_key_text: str) -> Checkpoint:
    """A receipt's checkpoint signature, its inclusion proof, and (if it carries the leaf
    data) the leaf hash; returns the checkpoint it holds against."""
    log_key = parse_vkey(public_key_text)
    checkpoint = open_checkpoint(receipt["checkpoint"], log_key).checkpoint
    index = int(receipt["leaf_index"])
    if checkpoint.size != int(receipt["tree_size"]) or base64.b64encode(
        checkpoint.root
    ).decode() != str(receipt["root"]):
        raise VerificationError(index, "checkpoint", "the receipt's root is not the signed one")
    proof = [base64.b64decode(h) for h in receipt["inclusion_proof"]]
    recorded = base64.b64decode(receipt["leaf_hash"])
    if receipt.get("leaf"):
        data = str(receipt["leaf"]).encode("ascii")
        check_inclusion(checkpoint, data, index, proof)
        if leaf_hash(data) != recorded:
            raise VerificationError(index, "leaf_hash", "the leaf data is not the recorded leaf")
        parse_leaf(data)
    else:
        try:
            verify_inclusion(recorded, index, checkpoint.size, proof, checkpoint.root)
        except ValueError as e:
            raise VerificationError(index, "inclusion", str(e)) from None
    return checkpoint


@audit_app.command("check-receipt")
def check_receipt(
    receipt_no: Annotated[str, typer.Argument(metavar="RECEIPT_NO")],
    url: Annotated[str, typer.Option("--url", help="The ledger's address, e.g. http://host")],
    key: KeyOpt,
) -> None:
    """Fetch a receipt and check, here, its inclusion proof and the checkpoint's signature."""
    quoted = urllib.parse.quote(receipt_no, safe="")
    receipt = json.loads(http_get(_url(url, f"/api/receipts/{quoted}")))
    checkpoint = check_receipt_document(receipt, _key_text(key))
    donation = receipt["donation"]
    typer.echo(
        f"receipt {receipt_no}: {donation['amount']} {donation['currency']} on "
        f"{donation['received_on']} to {donation['fund']} — leaf {receipt['leaf_index']} "
        f"of {checkpoint.size:,} in {checkpoint.origin}, root "
        f"{base64.b64encode(checkpoint.root).decode()}: verified"
    )


@audit_app.command("witness-key")
def witness_key(
    name: Annotated[str, typer.Argument(help="The witness's key name, e.g. witness.example.org")],
    file: Annotated[Path, typer.Argument(help="Where to write the private key (mode 0600).")],
) -> None:
    """Make a witness's cosigning key (C2SP tlog-cosignature) and print its verifier key."""
    signer = Ed25519Signer.generate(name, COSIGNATURE_V1)
    write_secret_file(file, signer.skey.encode() + b"\n")
    typer.echo(signer.verifier.vkey)


def _load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"v": 1, "logs": {}}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _save_state(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


@audit_app.command("cosign")
def cosign(
    url: Annotated[str, typer.Option("--url", help="The ledger's address, e.g. http://host")],
    key_file: Annotated[
        Path, typer.Option("--key", metavar="FILE", help="The witness's private key file.")
    ],
    state_file: Annotated[
        Path, typer.Option("--state", metavar="FILE", help="What this witness last cosigned.")
    ],
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key", metavar="KEY", help="The log's verifier key (first run; then kept)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="An admin token: hand the cosignature to the server too."),
    ] = None,
) -> None:
    """As a witness: fetch the latest checkpoint, check it is consistent with the last one
    this witness cosigned, and print a C2SP cosignature (refusing a split view)."""
    cosigner = parse_skey(key_file.read_text(encoding="utf-8"))
    memory = _load_state(state_file)
    note = http_get(_url(url, "/api/audit/checkpoint")).decode("utf-8")
    origin = parse_note(note).text.split("\n", 1)[0]
    entry = memory["logs"].get(origin, {})
    vkey = _key_text(log_key) if log_key else entry.get("log_key")
    if not vkey:
        raise typer.BadParameter(f"--log-key is needed the first time {origin!r} is seen")
    verifier: Ed25519Verifier = parse_vkey(vkey)
    if entry.get("log_key") and entry["log_key"] != verifier.vkey:
        raise typer.BadParameter(f"{origin!r} was followed with another log key")
    latest: dict[str, Checkpoint] = {}
    if entry.get("checkpoint"):
        latest[origin] = parse_checkpoint(entry["checkpoint"])
    witness = Witness(cosigner, {origin: verifier}, latest)
    new = parse_checkpoint(parse_note(note).text)
    old_size = latest[origin].size if origin in latest else 0
    proof: tuple[bytes, ...] = ()
    if 0 < old_size < new.size:
        answer = json.loads(
            http_get(_url(url, f"/api/audit/proofs/consistency?first={old_size}&second={new.size}"))
        )
        proof = tuple(base64.b64decode(h) for h in answer["proof"])
    request = AddCheckpoint(old_size, proof, note)
    line = witness.add_checkpoint(request.body, timestamp=int(time.time()))
    memory["logs"][origin] = {"log_key": verifier.vkey, "checkpoint": latest[origin].text}
    _save_state(state_file, memory)
    typer.echo(line, nl=False)
    if token:
        http_post_json(
            _url(url, "/api/audit/cosignatures"), {"size": new.size, "cosignature": line}, token
        )
        typer.echo(f"handed to {url} for size {new.size}", err=True)
