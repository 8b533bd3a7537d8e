"""The read models' tables (SQLAlchemy Core), all prefixed ``rm_``.

Money columns are ``BigInteger`` minor units and end in ``_minor``. Business dates are
``occurred_on``-style ``DATE`` columns; ``recorded_at`` is the event's timestamp (UTC).

The tables are made by ``make_tables(suffix)``: the live ones (``LIVE``, module attributes
below) have no suffix; a rebuild fills a fresh set named ``rm_x__g<generation>`` and then
renames it over the live one. Index and key names carry the table's name (naming
convention), so every generation's names are unique in the database.

The column types are in ``projections.columns``; the tracking table (``rm_projections``,
never rebuilt) in ``projections.tracking``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from ledger.domain.figures import DERIVED_NAMES, EXPENSE_CATEGORIES, FIGURE_NAMES, column
from projections.columns import NAMING_CONVENTION, Hash, IsoDate, UtcDateTime, money

ID = 36  # a UUID's text form
# ``Index.info`` key: a rebuild builds this index after loading the rows, not while.
AFTER_LOAD = "after_load"
SLUG = 40
CODE = 32
NAME = 200
SHORT = 32


def expense_column(category: str) -> str:
    """The column of one expense category's share of ``expenses``."""
    return f"expenses_{category}_minor"


# A fund's figures (``ledger.domain.figures``), then the expenses per category, then the
# two derived figures: a new figure there is a new column here.
FIGURE_COLUMNS = (
    *map(column, FIGURE_NAMES),
    *map(expense_column, EXPENSE_CATEGORIES),
    *map(column, DERIVED_NAMES),
)
# A month's flows are the figures' movements, money received named ``in``.
FLOW_NAME_OF = {name: "in" if name == "received" else name for name in FIGURE_NAMES}
FLOW_COLUMNS = tuple(column(FLOW_NAME_OF[name]) for name in FIGURE_NAMES)


def _figures() -> list[Column[int]]:
    return [money(name) for name in FIGURE_COLUMNS]


@dataclass(frozen=True)
class Tables:
    """One set of read-model tables (live, or a rebuild's generation)."""

    metadata: MetaData
    funds: Table
    fund_purposes: Table
    expenses: Table
    donations: Table
    donation_refunds: Table
    grants: Table
    grant_approvals: Table
    grant_tranches: Table
    grant_progress: Table
    monthly_flows: Table
    journal: Table
    audit_nodes: Table
    audit_leaves: Table

    def by_base_name(self) -> dict[str, Table]:
        return {
            "rm_funds": self.funds,
            "rm_fund_purposes": self.fund_purposes,
            "rm_expenses": self.expenses,
            "rm_donations": self.donations,
            "rm_donation_refunds": self.donation_refunds,
            "rm_grants": self.grants,
            "rm_grant_approvals": self.grant_approvals,
            "rm_grant_tranches": self.grant_tranches,
            "rm_grant_progress": self.grant_progress,
            "rm_monthly_flows": self.monthly_flows,
            "rm_journal": self.journal,
            "rm_audit_nodes": self.audit_nodes,
            "rm_audit_leaves": self.audit_leaves,
        }


def make_tables(suffix: str = "") -> Tables:
    md = MetaData(naming_convention=NAMING_CONVENTION)

    def t(base: str, *columns: Any) -> Table:
        return Table(base + suffix, md, *columns)

    funds = t(
        "rm_funds",
        Column("fund_id", String(ID), primary_key=True),
        Column("slug", String(SLUG), nullable=False, unique=True),
        Column("name", String(NAME), nullable=False),
        Column("currency", String(3), nullable=False),
        Column("description", Text, nullable=False),
        Column("host", String(NAME), nullable=False),
        # The host's unified social credit code and 公开募捐资格; null until recorded.
        Column("host_credit_code", String(18)),
        Column("host_public_fundraising", Boolean),
        Column("committee", JSON, nullable=False),
        Column("approvals_required", Integer, nullable=False),
        Column("closed_periods", JSON, nullable=False),
        Column("opened_at", UtcDateTime, nullable=False),
        Column("version", BigInteger, nullable=False),
        *_figures(),
    )
    fund_purposes = t(
        "rm_fund_purposes",
        Column("fund_id", String(ID), primary_key=True),
        Column("purpose", String(CODE), primary_key=True),  # "" is unrestricted money
        Column("name", String(NAME), nullable=False),
        *_figures(),
    )
    expenses = t(
        "rm_expenses",
        Column("expense_id", String(ID), primary_key=True),
        Column("fund_id", String(ID), nullable=False),
        Column("amount_minor", BigInteger, nullable=False),
        Column("category", String(SHORT), nullable=False),
        Column("payee", String(NAME), nullable=False),
        Column("description", Text, nullable=False),
        Column("purpose", String(CODE), nullable=False),
        Column("paid_on", IsoDate, nullable=False),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("recorded_by", String(NAME), nullable=False),
        Column("reversed", Boolean, nullable=False),
        Column("reversed_on", IsoDate),
        Column("reversal_reason", Text),
        Index(None, "fund_id", "paid_on"),
    )
    donations = t(
        "rm_donations",
        Column("donation_id", String(ID), primary_key=True),
        Column("fund_id", String(ID), nullable=False),
        Column("fund_slug", String(SLUG), nullable=False),
        Column("receipt_no", String(64), nullable=False),
        Column("currency", String(3), nullable=False),
        Column("amount_minor", BigInteger, nullable=False),
        Column("received_on", IsoDate, nullable=False),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("channel", String(SHORT), nullable=False),
        Column("purpose", String(CODE), nullable=False),
        Column("donor_public_name", String(NAME), nullable=False),
        Column("donor_anonymous", Boolean, nullable=False),
        Column("donor_id", String(ID), nullable=False),
        Column("donor_details_kept", Boolean, nullable=False),  # sealed data and not erased
        Column("donor_erased", Boolean, nullable=False),
        Column("external_ref", String(100)),
        Column("note", Text, nullable=False),
        Column("in_kind_description", Text),
        Column("in_kind_valuation_basis", Text),
        Column("recorded_by", String(NAME), nullable=False),
        money("refunded_minor"),
        money("reversed_minor"),
        Column("status", String(SHORT), nullable=False),
        Column("reversed_on", IsoDate),
        Column("reversal_reason", Text),
        Index(None, "fund_id", "received_on"),
        # An index rather than a constraint: a rebuild creates it after loading the rows.
        Index(None, "receipt_no", unique=True),
    )
    donation_refunds = t(
        "rm_donation_refunds",
        Column("refund_id", String(ID), primary_key=True),
        Column("donation_id", String(ID), nullable=False, index=True),
        Column("fund_id", String(ID), nullable=False),
        Column("amount_minor", BigInteger, nullable=False),
        Column("refunded_on", IsoDate, nullable=False),
        Column("reason", Text, nullable=False),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("recorded_by", String(NAME), nullable=False),
    )
    grants = t(
        "rm_grants",
        Column("grant_id", String(ID), primary_key=True),
        Column("fund_id", String(ID), nullable=False, index=True),
        Column("fund_slug", String(SLUG), nullable=False),
        Column("currency", String(3), nullable=False),
        Column("title", String(NAME), nullable=False),
        Column("description", Text, nullable=False),
        Column("purpose", String(CODE), nullable=False),
        Column("grantee_name", String(NAME), nullable=False),
        Column("grantee_id", String(NAME)),
        Column("amount_minor", BigInteger, nullable=False),
        Column("status", String(SHORT), nullable=False),
        Column("proposed_on", IsoDate, nullable=False),
        Column("proposed_by", String(NAME), nullable=False),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("approvals_count", Integer, nullable=False),
        Column("committed_on", IsoDate),
        money("committed_minor"),
        money("disbursed_minor"),
        money("released_minor"),
        Column("tranches_count", Integer, nullable=False),
        Column("ended_on", IsoDate),
        Column("closing_reason", Text),
        # What the disclosure rule needs (ledger.domain.disclosure), kept with the grant.
        Column("progress_count", Integer, nullable=False),
        Column("last_progress_on", IsoDate),
        Column("final_account_on", IsoDate),
        # A fund's newest grants (its page, GET /api/funds/{slug}/grants) without sorting
        # all of them.
        Index(None, "fund_id", "proposed_on", "grant_id"),
    )
    grant_approvals = t(
        "rm_grant_approvals",
        Column("grant_id", String(ID), primary_key=True),
        Column("member", String(NAME), primary_key=True),
        Column("note", Text, nullable=False),
        Column("approved_on", IsoDate, nullable=False),
        Column("recorded_at", UtcDateTime, nullable=False),
    )
    grant_tranches = t(
        "rm_grant_tranches",
        Column("grant_id", String(ID), primary_key=True),
        Column("tranche_no", Integer, primary_key=True),
        Column("tranche_id", String(ID), nullable=False),
        Column("fund_id", String(ID), nullable=False),
        Column("amount_minor", BigInteger, nullable=False),
        Column("paid_on", IsoDate, nullable=False),
        Column("method", String(SHORT), nullable=False),
        Column("reference", String(NAME), nullable=False),
        Column("evidence_sha256", String(64)),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("recorded_by", String(NAME), nullable=False),
        Column("reversed", Boolean, nullable=False),
        Column("reversed_on", IsoDate),
        Column("reversal_reason", Text),
        Index(None, "fund_id", "paid_on"),
    )
    grant_progress = t(
        "rm_grant_progress",
        Column("grant_id", String(ID), primary_key=True),
        Column("progress_no", Integer, primary_key=True),
        Column("progress_id", String(ID), nullable=False),
        Column("fund_id", String(ID), nullable=False),
        Column("reported_on", IsoDate, nullable=False),
        Column("note", Text, nullable=False),
        Column("evidence_sha256", JSON, nullable=False),
        Column("final", Boolean, nullable=False),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("recorded_by", String(NAME), nullable=False),
        Index(None, "fund_id", "reported_on"),
    )
    monthly_flows = t(
        "rm_monthly_flows",
        Column("fund_id", String(ID), primary_key=True),
        Column("month", String(7), primary_key=True),  # YYYY-MM of the business date
        Column("purpose", String(CODE), primary_key=True),
        *[money(name) for name in FLOW_COLUMNS],
    )
    journal = t(
        "rm_journal",
        # One line per money event: its position in the log is its key and its order.
        # (INTEGER on SQLite: the key is then the rowid itself, one B-tree less.)
        Column(
            "notification_id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        Column("fund_id", String(ID), nullable=False),
        Column("line_no", BigInteger, nullable=False),  # 1, 2, ... per fund
        Column("occurred_on", IsoDate, nullable=False),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("kind", String(SHORT), nullable=False),
        Column("reference", String(64), nullable=False),
        Column("entity_id", String(ID), nullable=False),
        Column("detail", String(ID), nullable=False),  # refund id / tranche no, else ""
        Column("purpose", String(CODE), nullable=False),
        Column("category", String(SHORT), nullable=False),  # expenses only, else ""
        Column("figure", String(SHORT), nullable=False),
        Column("figure_delta_minor", BigInteger, nullable=False),
        Column("amount_minor", BigInteger, nullable=False),  # signed change of on hand
        Column("balance_minor", BigInteger, nullable=False),  # on hand after the line
        Column("available_minor", BigInteger, nullable=False),  # available after the line
        Column("memo", Text, nullable=False),
        Column("recorded_by", String(NAME), nullable=False),
        Index(None, "fund_id", "line_no", unique=True),
        Index(None, "fund_id", "occurred_on"),
        # Random keys (UUIDs): kept up to date row by row, this index costs a rebuild
        # more than the other five together; built after the load instead (sorted, once).
        Index(None, "entity_id", info={AFTER_LOAD: True}),
    )
    # The Merkle log (``projections.audit``, docs/audit.md): the hash of every perfect
    # subtree, and each leaf's event. Rows are only ever inserted.
    audit_nodes = t(
        "rm_audit_nodes",
        Column("level", SmallInteger, primary_key=True, autoincrement=False),  # 0: leaves
        Column("idx", BigInteger, primary_key=True, autoincrement=False),
        Column("hash", Hash(32), nullable=False),
    )
    audit_leaves = t(
        "rm_audit_leaves",
        Column(
            "leaf_index",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        Column("notification_id", BigInteger, nullable=False),
        Column("originator_id", String(ID), nullable=False),
        Column("originator_version", BigInteger, nullable=False),
        Index(None, "originator_id", "originator_version", info={AFTER_LOAD: True}),
    )
    return Tables(
        metadata=md,
        funds=funds,
        fund_purposes=fund_purposes,
        expenses=expenses,
        donations=donations,
        donation_refunds=donation_refunds,
        grants=grants,
        grant_approvals=grant_approvals,
        grant_tranches=grant_tranches,
        grant_progress=grant_progress,
        monthly_flows=monthly_flows,
        journal=journal,
        audit_nodes=audit_nodes,
        audit_leaves=audit_leaves,
    )


LIVE = make_tables()

funds = LIVE.funds
fund_purposes = LIVE.fund_purposes
expenses = LIVE.expenses
donations = LIVE.donations
donation_refunds = LIVE.donation_refunds
grants = LIVE.grants
grant_approvals = LIVE.grant_approvals
grant_tranches = LIVE.grant_tranches
grant_progress = LIVE.grant_progress
monthly_flows = LIVE.monthly_flows
journal = LIVE.journal
audit_nodes = LIVE.audit_nodes
audit_leaves = LIVE.audit_leaves

# What the public may see of a donation: never the donor id, the sealed details' existence,
# the bank reference, the note or who recorded it.
PUBLIC_DONATION_COLUMNS = (
    "receipt_no",
    "fund_slug",
    "currency",
    "amount_minor",
    "received_on",
    "channel",
    "purpose",
    "donor_public_name",
    "in_kind_description",
    "refunded_minor",
    "reversed_minor",
    "status",
    "reversed_on",
)
