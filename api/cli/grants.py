"""``ledger grant …``: propose, approve, pay and close grants; record their progress."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import (
    ActorOpt,
    AmountOpt,
    FormatOpt,
    FundArg,
    KeyOpt,
    OutputFormat,
    ReasonOpt,
    ReversedOnOpt,
    emit,
    ledger,
    read_models,
    verb,
    with_created,
)
from api.cli.group import command_group
from api.reads import grant_out
from api.schemas import GrantOut
from api.views import disbursement_created, grant_out_from_aggregate, progress_created
from ledger.application import LedgerApp
from ledger.domain.grant import Grant
from ledger.domain.money import parse_amount

grant_app = command_group("Propose, approve, pay and close grants; record their progress.")

GrantIdArg = Annotated[str, typer.Argument(help="The grant's id.")]


def grant_answer(app: LedgerApp, grant: Grant) -> GrantOut:
    """What the API answers a write on a grant with."""
    return grant_out_from_aggregate(grant, today=app.today(), ended_on=app.grant_ended_on(grant))


@grant_app.command("propose")
def grant_propose(
    ctx: typer.Context,
    fund: FundArg,
    title: Annotated[str, typer.Option("--title")],
    amount: AmountOpt,
    grantee_name: Annotated[str, typer.Option("--grantee-name")],
    key: KeyOpt,
    actor: ActorOpt,
    grantee_id: Annotated[
        str | None, typer.Option("--grantee-id", help="e.g. an organisation code.")
    ] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", metavar="CODE", help="Default: unrestricted.")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Propose a grant; it commits money once enough committee members approve."""
    app = ledger(ctx)
    currency = app.get_fund(fund).currency
    recorded = app.propose_grant(
        slug=fund,
        key=key,
        title=title,
        description=description,
        purpose=purpose,
        grantee_name=grantee_name,
        grantee_id=grantee_id,
        amount_minor=parse_amount(amount, currency=currency),
        actor=actor,
    )
    data = with_created(grant_answer(app, recorded.value), recorded.created)
    emit(fmt, data, verb(recorded.created, "proposed the grant"))


@grant_app.command("approve")
def grant_approve(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    actor: Annotated[str, typer.Option("--actor", metavar="NAME", help="A committee member.")],
    note: Annotated[str, typer.Option("--note")] = "",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Approve a grant as a committee member (not its proposer)."""
    app = ledger(ctx)
    grant = app.approve_grant(grant_id=grant_id, note=note, actor=actor)
    emit(fmt, grant_answer(app, grant), f"approval by {actor} recorded")


@grant_app.command("reject")
def grant_reject(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    reason: ReasonOpt,
    actor: ActorOpt,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Reject a proposed grant."""
    app = ledger(ctx)
    grant = app.reject_grant(grant_id=grant_id, reason=reason, actor=actor)
    emit(fmt, grant_answer(app, grant), "rejected the grant")


@grant_app.command("cancel")
def grant_cancel(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    reason: ReasonOpt,
    actor: ActorOpt,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Cancel a committed grant; what was not paid goes back to the fund."""
    app = ledger(ctx)
    grant = app.cancel_grant(grant_id=grant_id, reason=reason, actor=actor)
    emit(fmt, grant_answer(app, grant), "cancelled the grant")


@grant_app.command("close")
def grant_close(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    reason: ReasonOpt,
    actor: ActorOpt,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Close a committed grant; the unspent amount goes back to the fund."""
    app = ledger(ctx)
    grant = app.close_grant(grant_id=grant_id, reason=reason, actor=actor)
    emit(fmt, grant_answer(app, grant), "closed the grant")


@grant_app.command("disburse")
def grant_disburse(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    amount: AmountOpt,
    method: Annotated[str, typer.Option("--method", help="bank, cash, wechat, alipay or other.")],
    reference: Annotated[str, typer.Option("--reference", help="e.g. the bank transfer's id.")],
    key: KeyOpt,
    actor: ActorOpt,
    paid_on: Annotated[
        str | None, typer.Option("--paid-on", metavar="YYYY-MM-DD", help="Default: today.")
    ] = None,
    evidence_sha256: Annotated[
        str | None, typer.Option("--evidence-sha256", help="SHA-256 of the payment evidence.")
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Pay a tranche of a committed grant."""
    app = ledger(ctx)
    currency = app.get_grant(grant_id).currency
    recorded = app.disburse(
        grant_id=grant_id,
        key=key,
        amount_minor=parse_amount(amount, currency=currency),
        paid_on=paid_on,
        method=method,
        reference=reference,
        evidence_sha256=evidence_sha256,
        actor=actor,
    )
    tranche = recorded.value
    data = with_created(disbursement_created(tranche.grant, tranche.tranche_no), recorded.created)
    emit(fmt, data, verb(recorded.created, f"paid tranche {tranche.tranche_no}"))


@grant_app.command("reverse-disbursement")
def grant_reverse_disbursement(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    tranche_no: Annotated[int, typer.Argument(help="The tranche's number (1, 2, ...).")],
    reason: ReasonOpt,
    actor: ActorOpt,
    reversed_on: ReversedOnOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Reverse a tranche that came back (a bounced payment)."""
    app = ledger(ctx)
    grant = app.reverse_disbursement(
        grant_id=grant_id,
        tranche_no=tranche_no,
        reason=reason,
        reversed_on=reversed_on,
        actor=actor,
    )
    emit(fmt, grant_answer(app, grant), f"reversed tranche {tranche_no}")


@grant_app.command("show")
def grant_show(
    ctx: typer.Context, grant_id: GrantIdArg, fmt: FormatOpt = OutputFormat.text
) -> None:
    """Show a grant with its approvals and tranches (from the read models)."""
    with read_models(ctx) as conn:
        grant = grant_out(conn, grant_id, today=ledger(ctx).today())
    emit(fmt, grant, "grant")


@grant_app.command("progress")
def grant_progress(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    on: Annotated[
        str, typer.Option("--on", metavar="YYYY-MM-DD", help="The day the progress is for.")
    ],
    note: Annotated[str, typer.Option("--note", help="What was done; published as written.")],
    key: KeyOpt,
    actor: ActorOpt,
    evidence: Annotated[
        list[str] | None,
        typer.Option(
            "--evidence", metavar="SHA256", help="SHA-256 of a piece of evidence (repeat)."
        ),
    ] = None,
    final: Annotated[
        bool, typer.Option("--final", help="The final account of a closed or cancelled grant.")
    ] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Record a dated progress note on a committed, closed or cancelled grant."""
    recorded = ledger(ctx).record_progress(
        grant_id=grant_id,
        key=key,
        reported_on=on,
        note=note,
        evidence_sha256=list(evidence or []),
        final=final,
        actor=actor,
    )
    progress = recorded.value
    data = with_created(progress_created(progress.grant, progress.progress_no), recorded.created)
    kind = "final account" if progress.note.final else "progress note"
    emit(fmt, data, verb(recorded.created, f"recorded {kind} {progress.progress_no}"))
