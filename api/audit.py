"""The verifiable log over HTTP (docs/audit.md): signed checkpoints, inclusion and
consistency proofs, the raw log with leaf indexes (auditors), a donor's receipt with its
proof, witnesses' cosignatures, and the browser's check script."""

from __future__ import annotations

import base64
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from api.deps import AdminCaller, AuditorCaller, PublicCaller, ServicesDep
from api.errors import (
    BadRequest,
    NoCheckpoint,
    ReceiptNotFound,
    TreeSizeOutOfRange,
    problem_responses,
)
from api.schemas import DonationPublicOut
from api.views import donation_public_out
from api.writes import Services
from ledger.audit.checkpoint import open_checkpoint
from ledger.audit.leaf import leaf_data
from ledger.audit.note import NoteError, parse_note
from projections import audit as log
from projections.tables import LIVE

router = APIRouter(tags=["audit"])

NOTE_MEDIA_TYPE = "text/plain; charset=utf-8"
EVENTS_LIMIT_MAX = 1000
# The browser's check of a receipt, served by the server itself (``create_api`` mounts it).
STATIC_DIR = FilePath(__file__).parent / "static" / "audit"
STATIC_PATH = "/static/audit"
VERIFY_SCRIPT = "verify-receipt.js"
VERIFY_SCRIPT_PATH = f"{STATIC_PATH}/{VERIFY_SCRIPT}"
NOTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "A note"}
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class InclusionOut(BaseModel):
    index: int
    size: int
    leaf_hash: str = Field(description="base64 of the leaf hash the log recorded")
    proof: list[str] = Field(description="base64 hashes, RFC 9162 §2.1.3")
    root: str = Field(description="base64 root at the size")


class ConsistencyOut(BaseModel):
    first: int
    second: int
    proof: list[str] = Field(description="base64 hashes, RFC 9162 §2.1.4")
    first_root: str
    second_root: str


class AuditEventOut(BaseModel):
    index: int = Field(description="The leaf index (gap-free)")
    notification_id: int
    originator_id: str
    originator_version: int
    topic: str
    state_b64: str = Field(description="The stored state, as stored")
    leaf: str = Field(description="The leaf data (canonical JSON) that is hashed")
    leaf_hash: str


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    size: int = Field(description="The tree's size now")
    next_after: int | None = Field(description="Pass as `after` for the next page")


class ReceiptOut(BaseModel):
    receipt_no: str
    donation: DonationPublicOut
    leaf_index: int
    leaf_hash: str = Field(description="base64 of SHA-256(0x00 || leaf data)")
    leaf: str | None = Field(
        description="The leaf data (canonical JSON), for auditors only: the stored state "
        "holds fields the public may not see (the bank reference, the note)"
    )
    leaf_meta: dict[str, Any] = Field(description="The leaf's fields but the state")
    tree_size: int
    root: str
    inclusion_proof: list[str]
    checkpoint: str = Field(description="The signed note the proof is against")
    verify_script: str = Field(description="The browser check, served by this server")


class CosignatureIn(BaseModel):
    model_config = {"extra": "forbid"}

    size: int = Field(ge=0, description="The checkpoint's tree size")
    cosignature: str = Field(max_length=2000, description="The witness's signature line(s)")


def _note(text: str) -> PlainTextResponse:
    return PlainTextResponse(text, media_type=NOTE_MEDIA_TYPE)


def _tree_size(conn: Connection) -> int:
    return log.tree_size(conn)


def _check_size(conn: Connection, *sizes: int) -> int:
    size = _tree_size(conn)
    for s in sizes:
        if s > size:
            raise TreeSizeOutOfRange(f"the log has {size} leaves, not {s}", size=size)
    return size


def covering_checkpoint(services: Services, index: int) -> log.StoredCheckpoint:
    """The latest checkpoint, signed now if none covers leaf ``index`` yet (on demand)."""
    with services.read() as conn:
        latest = log.latest_checkpoint(conn)
    if latest is not None and latest.size > index:
        return latest
    signer = log.signing_key_or_none(services.settings.key_dir)
    if signer is None:
        raise NoCheckpoint("the ledger has no signing key: run `ledger init`")
    return log.sign_now(services.engine, signer)


@router.get(
    "/api/audit/checkpoint",
    response_class=Response,
    summary="The latest signed checkpoint (a C2SP signed note, with cosignatures)",
    responses={**NOTE_RESPONSES, **problem_responses(404)},
)
def latest_checkpoint(_: PublicCaller, services: ServicesDep) -> PlainTextResponse:
    with services.read() as conn:
        stored = log.latest_checkpoint(conn)
        if stored is None:
            raise NoCheckpoint("no checkpoint signed yet")
        return _note(log.served_note(conn, stored))


@router.get(
    "/api/audit/checkpoints/{size}",
    response_class=Response,
    summary="The signed checkpoint of one tree size",
    responses={**NOTE_RESPONSES, **problem_responses(404, 422)},
)
def checkpoint_of_size(
    _: PublicCaller, services: ServicesDep, size: Annotated[int, Path(ge=0, le=2**62)]
) -> PlainTextResponse:
    with services.read() as conn:
        stored = log.checkpoint_of_size(conn, size)
        if stored is None:
            raise NoCheckpoint(f"no checkpoint of size {size}", size=size)
        return _note(log.served_note(conn, stored))


@router.get(
    "/api/audit/proofs/inclusion",
    response_model=InclusionOut,
    summary="An inclusion proof: leaf `index` in the tree of `size` leaves",
    responses=problem_responses(422),
)
def inclusion_proof(
    _: PublicCaller,
    services: ServicesDep,
    index: Annotated[int, Query(ge=0, le=2**62)],
    size: Annotated[int, Query(ge=1, le=2**62)],
) -> InclusionOut:
    if index >= size:
        raise TreeSizeOutOfRange(f"leaf {index} is not in a tree of {size}", index=index)
    with services.read() as conn:
        _check_size(conn, size)
        proof = log.inclusion(conn, index, size)
        root = log.root_of_size(conn, size)
        leaf = log.fetch_nodes(conn, [(0, index)]).node(0, index)
    return InclusionOut(
        index=index, size=size, leaf_hash=_b64(leaf), proof=[_b64(h) for h in proof],
        root=_b64(root),
    )  # fmt: skip


@router.get(
    "/api/audit/proofs/consistency",
    response_model=ConsistencyOut,
    summary="A consistency proof: the tree of `first` leaves is a prefix of `second`'s",
    responses=problem_responses(422),
)
def consistency_proof(
    _: PublicCaller,
    services: ServicesDep,
    first: Annotated[int, Query(ge=1, le=2**62)],
    second: Annotated[int, Query(ge=1, le=2**62)],
) -> ConsistencyOut:
    if first > second:
        raise TreeSizeOutOfRange(f"size {first} is larger than {second}", first=first)
    with services.read() as conn:
        _check_size(conn, second)
        proof = log.consistency(conn, first, second)
        roots = log.root_of_size(conn, first), log.root_of_size(conn, second)
    return ConsistencyOut(
        first=first, second=second, proof=[_b64(h) for h in proof],
        first_root=_b64(roots[0]), second_root=_b64(roots[1]),
    )  # fmt: skip


@router.get(
    "/api/audit/events",
    response_model=AuditEventPage,
    summary="The raw event log as stored, with leaf indexes (auditors)",
    responses=problem_responses(401, 403, 422),
)
def audit_events(
    _: AuditorCaller,
    services: ServicesDep,
    after: Annotated[int, Query(ge=-1, le=2**62, description="Leaf index; -1: from 0")] = -1,
    limit: Annotated[int, Query(ge=1, le=EVENTS_LIMIT_MAX)] = 100,
) -> AuditEventPage:
    with services.read() as conn:
        size = _tree_size(conn)
        leaves = log.leaves_after(conn, after, limit)
        hashes = log.fetch_nodes(conn, [(0, leaf.leaf_index) for leaf in leaves])
    items = []
    for index, record in log.stored_records(services.ledger.recorder, leaves):
        data = leaf_data(index, record)
        items.append(
            AuditEventOut(
                index=index,
                notification_id=record.notification_id,
                originator_id=record.originator_id,
                originator_version=record.originator_version,
                topic=record.topic,
                state_b64=_b64(record.state),
                leaf=data.decode("ascii"),
                leaf_hash=_b64(hashes.node(0, index)),
            )
        )
    more = bool(leaves) and leaves[-1].leaf_index + 1 < size
    return AuditEventPage(
        items=items, size=size, next_after=leaves[-1].leaf_index if more else None
    )


@router.get(
    "/api/receipts/{receipt_no}",
    response_model=ReceiptOut,
    summary="A donor checks a gift: its public view and its inclusion proof",
    responses=problem_responses(401, 404, 422),
)
def receipt(
    caller: PublicCaller,
    services: ServicesDep,
    receipt_no: Annotated[str, Path(max_length=64)],
) -> ReceiptOut:
    d = LIVE.donations
    with services.read() as conn:
        row = conn.execute(select(d).where(d.c.receipt_no == receipt_no)).mappings().first()
        if row is None:
            raise ReceiptNotFound(f"no gift with receipt number {receipt_no}")
        leaf = log.leaf_of_event(conn, str(row["donation_id"]), 1)
    if leaf is None:
        raise ReceiptNotFound(f"the gift {receipt_no} is not in the log yet")
    stored = covering_checkpoint(services, leaf.leaf_index)
    with services.read() as conn:
        proof = log.inclusion(conn, leaf.leaf_index, stored.size)
        recorded = log.fetch_nodes(conn, [(0, leaf.leaf_index)]).node(0, leaf.leaf_index)
        note = log.served_note(conn, stored)
    data = None
    records = log.stored_records(services.ledger.recorder, [leaf])
    if records and caller is not None and caller.role == "auditor":
        data = leaf_data(leaf.leaf_index, records[0][1]).decode("ascii")
    topic = records[0][1].topic if records else ""
    return ReceiptOut(
        receipt_no=receipt_no,
        donation=donation_public_out(dict(row)),
        leaf_index=leaf.leaf_index,
        leaf_hash=_b64(recorded),
        leaf=data,
        leaf_meta={
            "index": leaf.leaf_index,
            "notification_id": leaf.notification_id,
            "originator_id": leaf.originator_id,
            "originator_version": leaf.originator_version,
            "topic": topic,
        },
        tree_size=stored.size,
        root=_b64(stored.root),
        inclusion_proof=[_b64(h) for h in proof],
        checkpoint=note,
        verify_script=VERIFY_SCRIPT_PATH,
    )


@router.post(
    "/api/audit/cosignatures",
    status_code=201,
    summary="Keep a witness's cosignature beside its checkpoint (admin)",
    responses=problem_responses(400, 401, 403, 404, 413, 422),
)
def add_cosignature(
    _: AdminCaller, services: ServicesDep, body: Annotated[CosignatureIn, Body()]
) -> dict[str, Any]:
    with services.read() as conn:
        stored = log.checkpoint_of_size(conn, body.size)
    if stored is None:
        raise NoCheckpoint(f"no checkpoint of size {body.size}", size=body.size)
    try:
        signatures = parse_note(stored.note + body.cosignature.rstrip("\n") + "\n").signatures
    except NoteError as e:
        raise BadRequest(f"not a signature line: {e}") from None
    added = list(signatures[1:])
    if not added:
        raise BadRequest("no cosignature line")
    log_key = log.signing_key_or_none(services.settings.key_dir)
    for signature in added:
        if signature.timestamp is None:
            raise BadRequest("a cosignature carries a timestamp and a 64-byte signature")
        if log_key is not None and signature.name == log_key.name:
            raise BadRequest("the log's own key is not a witness")
    with services.engine.begin() as conn:
        for signature in added:
            log.add_cosignature(conn, body.size, signature)
    return {"size": body.size, "added": len(added)}


def public_key_of(services: Services) -> str:
    signer = log.signing_key_or_none(services.settings.key_dir)
    if signer is None:
        raise NoCheckpoint("the ledger has no signing key: run `ledger init`")
    return signer.verifier.vkey


__all__ = ["covering_checkpoint", "open_checkpoint", "public_key_of", "router"]
