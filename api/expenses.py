"""Expenses of a fund: record one, reverse one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import IdempotencyKey, ServicesDep, TreasurerCaller
from api.errors import problem_responses
from api.funds import REPLAYED, SlugPath
from api.money import amount_minor
from api.reads import expense_row
from api.schemas import ExpenseCreated, ExpenseIn, ExpenseOut, ReversalIn
from api.views import expense_created, money

router = APIRouter(tags=["expenses"])

ExpenseIdPath = Annotated[str, Path(max_length=64, description="The expense's id")]


@router.post(
    "/api/funds/{slug}/expenses",
    status_code=201,
    response_model=ExpenseCreated,
    summary="Record an expense (from unrestricted money unless a purpose is named)",
    responses={**REPLAYED, **problem_responses(400, 401, 403, 404, 409, 413, 422)},
)
def record_expense(
    caller: TreasurerCaller,
    key: IdempotencyKey,
    slug: SlugPath,
    body: ExpenseIn,
    services: ServicesDep,
    response: Response,
) -> ExpenseCreated:
    currency = services.currency_of(slug)
    minor = amount_minor(body.amount, currency=currency)
    recorded = services.write(
        lambda: services.ledger.record_expense(
            slug=slug,
            key=key,
            amount_minor=minor,
            category=body.category,
            paid_on=body.paid_on,
            payee=body.payee,
            description=body.description,
            purpose=body.purpose,
            actor=caller.name,
        )
    )
    if not recorded.created:
        response.status_code = 200
    return expense_created(
        recorded.value,
        fund=slug,
        amount_minor=minor,
        currency=currency,
        category=body.category,
        paid_on=body.paid_on,
        payee=body.payee,
        description=body.description,
        purpose=body.purpose,
    )


@router.post(
    "/api/expenses/{expense_id}/reversal",
    response_model=ExpenseOut,
    summary="Reverse an expense recorded in error",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
def reverse_expense(
    caller: TreasurerCaller,
    expense_id: ExpenseIdPath,
    body: ReversalIn,
    services: ServicesDep,
) -> ExpenseOut:
    with services.lookup() as conn:
        row = expense_row(conn, expense_id)
    slug, currency = str(row["slug"]), str(row["currency"])
    caller.check_fund(slug)
    services.write(
        lambda: services.ledger.reverse_expense(
            slug=slug,
            expense_id=expense_id,
            reason=body.reason,
            reversed_on=body.reversed_on,
            actor=caller.name,
        )
    )
    with services.lookup() as conn:
        row = expense_row(conn, expense_id)
    return ExpenseOut(
        id=expense_id,
        fund=slug,
        amount=money(row["amount_minor"], currency),
        currency=currency,
        category=row["category"],
        paid_on=row["paid_on"],
        payee=row["payee"],
        description=row["description"],
        purpose=row["purpose"] or None,
        reversed=True,
        reversed_on=row["reversed_on"] or body.reversed_on or services.today(),
        reversal_reason=row["reversal_reason"] or body.reason,
    )
