"""Request and response models of the HTTP API.

Requests (``*In``) forbid unknown fields and are strict: money is a decimal string (checked
against the fund's currency by the router: ``parse_amount``), dates are ISO ``YYYY-MM-DD``
strings, flags are JSON booleans. Responses (``*Out``) are separate models; money leaves as
decimal strings in the fund's currency. Neither kind reaches the domain.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from api.limits import AMOUNT_LEN_MAX, QUERY_DATE_MAX, QUERY_DATE_MIN
from ledger.domain.common import (
    APPROVALS_REQUIRED_MAX,
    CODE_RE,
    COMMITTEE_SIZE_MAX,
    ISO_DATE_RE,
    NAME_LEN_MAX,
    PERIOD_RE,
    PURPOSES_MAX,
    SHA256_HEX_RE,
    SLUG_RE,
    TEXT_LEN_MAX,
)
from ledger.domain.credit_code import CREDIT_CODE_PATTERN
from ledger.domain.disclosure import DISCLOSURE_STATUSES
from ledger.domain.donation import CHANNELS, EXTERNAL_REF_LEN_MAX
from ledger.domain.figures import EXPENSE_CATEGORIES
from ledger.domain.grant import (
    DISBURSEMENT_METHODS,
    EVIDENCE_PER_NOTE_MAX,
    REFERENCE_LEN_MAX,
    STATUSES,
)
from projections.donations import DONATION_STATUSES

# The domain's own patterns and limits, as the edge documents and enforces them.
SLUG_PATTERN = SLUG_RE.pattern
CODE_PATTERN = CODE_RE.pattern
CREDIT_CODE_CHECKED_LEN_MAX = 64  # longer is refused before the domain sees it
AMOUNT_PATTERN = r"^[0-9]{1,18}(?:\.[0-9]{1,18})?$"
PERIOD_PATTERN = PERIOD_RE.pattern


def _iso_date_text(value: Any) -> Any:
    """Dates come as ISO text only, ``YYYY-MM-DD`` exactly: not numbers or digit strings,
    which pydantic would read as Unix timestamps (``"1764720000"``), nor other ISO forms."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not ISO_DATE_RE.fullmatch(value):
        raise ValueError("must be an ISO date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a calendar date, YYYY-MM-DD") from None


Amount = Annotated[
    str,
    StringConstraints(pattern=AMOUNT_PATTERN, max_length=AMOUNT_LEN_MAX),
    Field(
        description='A decimal string in the fund\'s currency, e.g. "100.00"; no more '
        "fractional digits than the currency has, more than zero",
        examples=["100.00"],
    ),
]
IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date_text),
    Field(json_schema_extra={"format": "date", "pattern": ISO_DATE_RE.pattern}),
]


def _query_date_within(value: date) -> date:
    if not QUERY_DATE_MIN <= value <= QUERY_DATE_MAX:
        raise ValueError(f"must lie within {QUERY_DATE_MIN} and {QUERY_DATE_MAX}")
    return value


def _query_instant_within(value: datetime) -> datetime:
    try:
        day = value.astimezone(UTC).date()
    except OverflowError:
        day = date.min  # beyond what any calendar arithmetic holds
    if not QUERY_DATE_MIN <= day <= QUERY_DATE_MAX:
        raise ValueError(f"must lie within {QUERY_DATE_MIN} and {QUERY_DATE_MAX} (UTC)")
    return value


# Dates and instants of a query (``as_of``, ``known_at``, ``from``, ``to``): within a window
# that every computation on them (the day before, UTC) stays inside the calendar.
QueryDate = Annotated[IsoDate, AfterValidator(_query_date_within)]
QueryInstant = Annotated[AwareDatetime, AfterValidator(_query_instant_within)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_LEN_MAX)]
Text = Annotated[str, StringConstraints(max_length=TEXT_LEN_MAX)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=TEXT_LEN_MAX)]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Code = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Category = Literal[EXPENSE_CATEGORIES]  # type: ignore[valid-type]
Method = Literal[DISBURSEMENT_METHODS]  # type: ignore[valid-type]
Status = Literal[STATUSES]  # type: ignore[valid-type]
DonationStatus = Literal[DONATION_STATUSES]  # type: ignore[valid-type]
DisclosureStatus = Literal[DISCLOSURE_STATUSES]  # type: ignore[valid-type]
Sha256 = Annotated[str, StringConstraints(pattern=SHA256_HEX_RE.pattern)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ----------------------------------------------------------------------------------


class PurposeIn(RequestModel):
    code: Code
    name: Name


class FundIn(RequestModel):
    slug: Slug
    name: Name
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        description="ISO 4217 code, e.g. CNY"
    )
    description: Text = ""
    host: Name
    committee: Annotated[list[Name], Field(min_length=1, max_length=COMMITTEE_SIZE_MAX)]
    approvals_required: Annotated[StrictInt, Field(ge=1, le=APPROVALS_REQUIRED_MAX)] = 2
    purposes: Annotated[list[PurposeIn], Field(max_length=PURPOSES_MAX)] = []


class HostIn(RequestModel):
    name: Name = Field(description="The host charity's registered name")
    # Checked by the domain (length, alphabet, check character: 422 invalid-credit-code).
    credit_code: Annotated[str, StringConstraints(max_length=CREDIT_CODE_CHECKED_LEN_MAX)] = Field(
        description=f"统一社会信用代码, GB 32100-2015: {CREDIT_CODE_PATTERN} with a valid check "
        "character (422 invalid-credit-code otherwise)",
        examples=["53100000500021676K"],
    )
    public_fundraising: StrictBool = Field(
        description="Whether the host holds public-fundraising status (公开募捐资格)"
    )


class DonorIn(RequestModel):
    name: Name | None = Field(default=None, description="Kept encrypted; auditors only")
    contact: Name | None = Field(default=None, description="Kept encrypted; auditors only")
    anonymous: StrictBool = Field(default=False, description="Shown as 爱心人士 to the public")
    public_name: Name | None = Field(
        default=None, description="The name the public sees (default: the name masked, 张*)"
    )


class InKindIn(RequestModel):
    description: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_LEN_MAX)]
    valuation_basis: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_LEN_MAX)]


class DonationIn(RequestModel):
    amount: Amount
    received_on: IsoDate
    channel: Channel
    purpose: Code | None = None
    donor: DonorIn = Field(default_factory=lambda: DonorIn(anonymous=True))
    external_ref: (
        Annotated[str, StringConstraints(min_length=1, max_length=EXTERNAL_REF_LEN_MAX)] | None
    ) = None
    note: Text = ""
    in_kind: InKindIn | None = None


class RefundIn(RequestModel):
    amount: Amount
    refunded_on: IsoDate | None = Field(default=None, description="Default: today")
    reason: Reason


class ReversalIn(RequestModel):
    reason: Reason
    reversed_on: IsoDate | None = Field(default=None, description="Default: today")


class ReasonIn(RequestModel):
    reason: Reason


class GranteeIn(RequestModel):
    name: Name
    id: Name | None = Field(default=None, description="e.g. an organisation code")


class GrantIn(RequestModel):
    title: Name
    description: Text = ""
    purpose: Code | None = None
    grantee: GranteeIn
    amount: Amount


class ApprovalIn(RequestModel):
    note: Text = ""


class DisbursementIn(RequestModel):
    amount: Amount
    paid_on: IsoDate | None = Field(default=None, description="Default: today")
    method: Method
    reference: Annotated[str, StringConstraints(min_length=1, max_length=REFERENCE_LEN_MAX)]
    evidence_sha256: Annotated[str, StringConstraints(pattern=SHA256_HEX_RE.pattern)] | None = None


class ProgressIn(RequestModel):
    on: IsoDate = Field(description="The day the progress is reported for (not in the future)")
    note: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_LEN_MAX)]
    evidence_sha256: Annotated[list[Sha256], Field(max_length=EVIDENCE_PER_NOTE_MAX)] = Field(
        default_factory=list, description="SHA-256 of each piece of evidence (photos, invoices)"
    )
    final: StrictBool = Field(
        default=False, description="The final account of a closed or cancelled grant"
    )


class ExpenseIn(RequestModel):
    amount: Amount
    category: Category
    paid_on: IsoDate
    payee: Name
    description: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_LEN_MAX)]
    purpose: Code | None = None


# -- responses ---------------------------------------------------------------------------------


class FiguresOut(BaseModel):
    """One set of figures, decimal strings. on_hand = received − refunded − disbursed −
    expenses; available = on_hand − (committed − released − disbursed)."""

    received: str
    refunded: str
    committed: str
    released: str
    disbursed: str
    expenses: str
    on_hand: str
    available: str


class FundFiguresOut(BaseModel):
    totals: FiguresOut
    unrestricted: FiguresOut
    purposes: dict[str, FiguresOut] = Field(description="By purpose code")


class PurposeOut(BaseModel):
    code: str
    name: str


class HostDetailsOut(BaseModel):
    """The host charity as recorded by an admin (``PUT /api/funds/{slug}/host``)."""

    name: str
    credit_code: str = Field(description="统一社会信用代码")
    public_fundraising: bool = Field(description="公开募捐资格")


class FundOut(BaseModel):
    slug: str
    name: str
    currency: str
    description: str
    host: str = Field(description="The host charity's name")
    host_details: HostDetailsOut | None = Field(
        description="The host's credit code and public-fundraising status; null until recorded"
    )
    committee: list[str]
    approvals_required: int
    purposes: list[PurposeOut]
    closed_periods: list[str]
    figures: FundFiguresOut


class FundPage(BaseModel):
    items: list[FundOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page")


class InKindOut(BaseModel):
    description: str
    valuation_basis: str


class DonationCreated(BaseModel):
    id: str
    fund: str
    receipt_no: str
    amount: str
    currency: str
    received_on: date
    channel: str
    purpose: str | None
    donor: str = Field(description="The donor as the public sees them")
    in_kind: InKindOut | None


class DonationPublicOut(BaseModel):
    """A donation as anyone may see it (the donor masked or as they chose)."""

    receipt_no: str
    fund: str
    amount: str
    currency: str
    received_on: date
    channel: str
    purpose: str | None
    donor: str
    in_kind_description: str | None
    refunded: str
    reversed: str
    status: DonationStatus


class DonorDetailsOut(BaseModel):
    name: str | None
    contact: str | None


class DonationFullOut(DonationPublicOut):
    """What treasurers, admins and auditors see; ``donor_details`` (decrypted) for auditors
    only, null once the donor was erased."""

    id: str
    donor_id: str
    donor_anonymous: bool
    donor_erased: bool
    external_ref: str | None
    note: str
    in_kind_valuation_basis: str | None
    reversed_on: date | None
    reversal_reason: str | None
    recorded_at: datetime
    recorded_by: str
    donor_details: DonorDetailsOut | None


class DonationPage(BaseModel):
    items: list[DonationFullOut | DonationPublicOut]
    next_cursor: str | None


class RefundCreated(BaseModel):
    id: str
    donation_id: str
    receipt_no: str
    amount: str
    currency: str
    refunded_on: date
    reason: str


class DonationReversedOut(BaseModel):
    id: str
    receipt_no: str
    reversed: str = Field(description="The amount taken back (what was not refunded)")
    currency: str
    reversed_on: date
    reason: str


class ApprovalOut(BaseModel):
    member: str
    note: str
    approved_on: date


class TrancheOut(BaseModel):
    no: int
    amount: str
    paid_on: date
    method: str
    reference: str
    evidence_sha256: str | None
    reversed: bool


class ProgressOut(BaseModel):
    no: int
    on: date
    note: str
    evidence_sha256: list[str]
    final: bool
    recorded_by: str


class ProgressCreated(ProgressOut):
    grant_id: str


class DisclosureOut(BaseModel):
    """What the grant must publish today (Charity Law art. 79; docs/api.md, "Disclosure")."""

    status: DisclosureStatus
    update_due_on: date | None = Field(description="Last day for the next progress update")
    final_account_due_on: date | None = Field(description="Last day for the final account")


class GranteeOut(BaseModel):
    name: str
    id: str | None


class GrantOut(BaseModel):
    id: str
    fund: str
    title: str
    description: str
    purpose: str | None
    grantee: GranteeOut
    status: Status
    amount: str
    currency: str
    committed: str
    disbursed: str
    released: str
    proposed_on: date
    proposed_by: str
    closing_reason: str | None
    approvals: list[ApprovalOut]
    tranches: list[TrancheOut]
    committed_on: date | None
    ended_on: date | None = Field(description="Closed or cancelled on")
    progress: list[ProgressOut]
    disclosure: DisclosureOut


class GrantPage(BaseModel):
    items: list[GrantOut]
    next_cursor: str | None


class DisbursementCreated(BaseModel):
    grant_id: str
    tranche_no: int
    amount: str
    currency: str
    paid_on: date
    method: str
    reference: str
    evidence_sha256: str | None


class ExpenseCreated(BaseModel):
    id: str
    fund: str
    amount: str
    currency: str
    category: str
    paid_on: date
    payee: str
    description: str
    purpose: str | None


class ExpenseOut(ExpenseCreated):
    reversed: bool
    reversed_on: date | None
    reversal_reason: str | None


class BalanceOut(BaseModel):
    fund: str
    currency: str
    as_of: date | None = Field(description="Entries dated up to this business day")
    known_at: datetime | None = Field(description="Entries recorded up to this instant")
    figures: FundFiguresOut


class FlowsOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    in_: str = Field(alias="in")
    refunded: str
    committed: str
    released: str
    disbursed: str
    expenses: str
    spending: str = Field(description="disbursed + expenses")
    expenses_by_category: dict[str, str]


# The report's entry for unrestricted money (the domain's purpose code is "").
UNRESTRICTED_REPORT_CODE = "unrestricted"
UNRESTRICTED_REPORT_NAME = "非限定性"


class PurposeReportOut(BaseModel):
    code: str = Field(
        description=f'The purpose\'s code; "{UNRESTRICTED_REPORT_CODE}" for unrestricted money'
    )
    name: str = Field(
        description=f'The purpose\'s name; "{UNRESTRICTED_REPORT_NAME}" for unrestricted'
    )
    restricted: bool = Field(description="false for the entry of unrestricted money only")
    opening: FiguresOut
    closing: FiguresOut
    flows: FlowsOut


class MonthOut(BaseModel):
    month: str
    flows: FlowsOut


class ReportTrancheOut(BaseModel):
    no: int
    amount: str
    paid_on: date
    method: str
    reference: str
    reversed: bool
    reversed_on: date | None
    in_period: bool


class ReportGrantOut(BaseModel):
    id: str
    title: str
    grantee: str
    purpose: str | None
    status: Status
    amount: str
    committed: str
    disbursed: str
    released: str
    proposed_on: date
    committed_on: date | None
    ended_on: date | None
    approvals: list[ApprovalOut]
    tranches: list[ReportTrancheOut]


class ReportOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    fund: str
    name: str
    currency: str
    host: str
    description: str
    committee: list[str]
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    opening: FundFiguresOut = Field(description="At the end of the day before `from`")
    closing: FundFiguresOut = Field(description="At the end of `to`")
    flows: FlowsOut
    purposes: list[PurposeReportOut]
    months: list[MonthOut]
    grants: list[ReportGrantOut]
    donations_count: int
    administration_share: str | None = Field(
        description="Administration expenses over spending, 4 places; null if nothing spent"
    )
    position: int = Field(description="The read models' position in the event log")


class ProjectionHealthOut(BaseModel):
    name: str
    position: int
    lag: int
    failing: bool
    error: str | None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    store: Literal["reachable"]
    reads: Literal["ok", "exhausted"] = Field(
        description="Whether the public reads' pool hands out a connection (exhausted: 503)"
    )
    exports_in_flight: int = Field(description="Exports being built or sent")
    head: int
    lag: int = Field(description="Events the slowest projection is behind")
    projections: list[ProjectionHealthOut]
