"""A fund's books as Beancount and hledger files, streamed from the read models.

``beancount_lines(conn, slug, ...)`` and ``hledger_lines(conn, slug, ...)`` yield the text of
the file line by line (no line ending). Both write the same books (accounts and postings in
``projections.exports.chart``):

- every money movement (a journal line) is one balanced transaction on its business date,
  in business-date order (then log order), with metadata: ``position`` (the event's
  position in the log, its notification id), ``recorded`` (the instant it was recorded), the
  receipt number, grant, tranche or expense it concerns; a link (Beancount ``^…``, hledger
  tag ``link:``) ties a donation to its refunds and reversal (the receipt number), a grant's
  commitment to its tranches, bounced tranches and release (``grant-<id>``), an expense to
  its reversal (``expense-<id>``); tags name the fund and the purpose (or ``unrestricted``);
- refunds and reversals are transactions of their own, and say what they correct
  (``corrects:``);
- balance assertions for every account with postings, at every month end and at the
  export's end, taken from the read models: a grouped sum of the journal, not the running
  total of the lines written (so a changed amount breaks them);
- ``date_from``: the books are closed the day before (income and expenses carried into net
  assets, restricted per purpose) and an opening transaction on ``date_from`` brings the
  balance-sheet accounts in; ``date_to``: nothing after that day.

The public export shows a donor as the public sees them (the public name chosen at
recording). ``donor_details`` (auditors: the donation id → decrypted name and contact, or
None) adds the donor's name as payee, their contact, the donor id, the bank reference, the
note and who recorded each entry.

Longer than 500 lines because both formats are one walk over the journal (transactions,
links, month-end assertions, opening balances) with two small renderers; split, the walk
would be written twice or hidden behind a renderer interface for two implementations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, String, and_, cast, func, select

from ledger.domain.errors import InvalidField
from ledger.domain.money import format_amount
from ledger.privacy import PersonalData
from projections.exports import chart
from projections.queries import fund_row, purpose_names
from projections.tables import LIVE

DonorDetails = Callable[[str], PersonalData | None]


class LedgerLines(Protocol):
    """``beancount_lines`` or ``hledger_lines``."""

    def __call__(
        self,
        conn: Connection,
        slug: str,
        *,
        date_from: date | None = None,
        date_to: date | None = None,
        donor_details: DonorDetails | None = None,
    ) -> Iterator[str]: ...


STREAM_ROWS = 2_000
CATEGORY_ZH = {"program": "业务活动支出", "administration": "管理费用", "fundraising": "筹资费用"}
CHANNEL_ZH = {
    "cash": "现金",
    "bank": "银行转账",
    "wechat": "微信支付",
    "alipay": "支付宝",
    "in_kind": "实物捐赠",
    "other": "其他方式",
}
DONATION_KINDS = ("donation", "refund", "donation_reversal")
TRANCHE_KINDS = ("disbursement", "disbursement_reversal")


@dataclass
class Entry:
    """One transaction, in neither tool's syntax."""

    day: date
    payee: str
    narration: str
    postings: list[tuple[str, int]]
    tags: list[str]
    links: list[str]
    meta: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Books:
    """What both files need besides the entries."""

    slug: str
    name: str
    host: str
    currency: str
    closed_periods: list[str]
    accounts: list[chart.Account]
    first_day: date
    date_from: date | None
    date_to: date | None


def check_span(date_from: date | None, date_to: date | None) -> None:
    """Refuse a range that ends before it starts (before a stream begins)."""
    if date_from is not None and date_to is not None and date_to < date_from:
        raise InvalidField("the export ends before it starts", field="to")


# -- the read models ---------------------------------------------------------------------------


def _joined(fund_id: str) -> Any:
    j, d, r = LIVE.journal, LIVE.donations, LIVE.donation_refunds
    g, t, e = LIVE.grants, LIVE.grant_tranches, LIVE.expenses
    return (
        j.outerjoin(d, and_(d.c.donation_id == j.c.entity_id, j.c.kind.in_(DONATION_KINDS)))
        .outerjoin(r, and_(r.c.refund_id == j.c.detail, j.c.kind == "refund"))
        .outerjoin(g, g.c.grant_id == j.c.entity_id)
        .outerjoin(
            t,
            and_(
                t.c.grant_id == j.c.entity_id,
                j.c.kind.in_(TRANCHE_KINDS),
                cast(t.c.tranche_no, String) == j.c.detail,
            ),
        )
        .outerjoin(e, e.c.expense_id == j.c.entity_id)
    )


def _money(kind: str, channel: str | None, method: str | None) -> str:
    if kind in TRANCHE_KINDS:
        return chart.money_account(method or "", tranche=True)
    return chart.money_account(channel or "", tranche=False)


def balances_by_day(
    conn: Connection, fund_id: str, date_to: date | None
) -> dict[date, dict[str, int]]:
    """Each business day's change of every account (minor units, debits positive), from one
    grouped sum of the journal (with the channel, method and grantee of its lines)."""
    j, d, g, t = LIVE.journal, LIVE.donations, LIVE.grants, LIVE.grant_tranches
    query = (
        select(
            j.c.occurred_on,
            j.c.kind,
            j.c.purpose,
            j.c.category,
            d.c.channel,
            t.c.method,
            g.c.grantee_name,
            func.sum(j.c.figure_delta_minor),
        )
        .select_from(_joined(fund_id))
        .where(j.c.fund_id == fund_id)
        .group_by(
            j.c.occurred_on,
            j.c.kind,
            j.c.purpose,
            j.c.category,
            d.c.channel,
            t.c.method,
            g.c.grantee_name,
        )
    )
    if date_to is not None:
        query = query.where(j.c.occurred_on <= date_to)
    out: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, kind, purpose, category, channel, method, grantee, total in conn.execute(query):
        amount = int(total) * chart.AMOUNT_SIGN.get(kind, 1)
        day = day if isinstance(day, date) else date.fromisoformat(day)
        per_day = out[day]
        for account, delta in chart.postings(
            kind,
            amount,
            purpose=purpose,
            money=_money(kind, channel, method),
            category=category,
            grantee=grantee or "",
        ):
            per_day[account] += delta
    return out


def _books(
    conn: Connection, slug: str, date_from: date | None, date_to: date | None
) -> tuple[dict[str, Any], Books]:
    fund = fund_row(conn, slug)
    g, j = LIVE.grants, LIVE.journal
    grantees = conn.execute(
        select(g.c.grantee_name).where(g.c.fund_id == fund["fund_id"]).distinct()
    ).scalars()
    first = conn.execute(
        select(func.min(j.c.occurred_on)).where(j.c.fund_id == fund["fund_id"])
    ).scalar()
    if isinstance(first, str):
        first = date.fromisoformat(first)
    opened = fund["opened_at"].date()
    first_day = min(d for d in (first, opened, date_from) if d is not None)
    books = Books(
        slug=fund["slug"],
        name=fund["name"],
        host=fund["host"],
        currency=fund["currency"],
        closed_periods=sorted(fund["closed_periods"] or []),
        accounts=chart.accounts(purpose_names(conn, fund["fund_id"]), list(grantees)),
        first_day=first_day,
        date_from=date_from,
        date_to=date_to,
    )
    return fund, books


def _lines(
    conn: Connection,
    fund_id: str,
    date_from: date | None,
    date_to: date | None,
) -> Iterator[Any]:
    j, d, r = LIVE.journal, LIVE.donations, LIVE.donation_refunds
    g, t, e = LIVE.grants, LIVE.grant_tranches, LIVE.expenses
    query = (
        select(
            j,
            d.c.channel,
            d.c.donor_public_name,
            d.c.donor_id,
            d.c.donor_details_kept,
            d.c.external_ref,
            d.c.note,
            d.c.in_kind_description,
            d.c.in_kind_valuation_basis,
            d.c.reversal_reason.label("donation_reversal_reason"),
            r.c.reason.label("refund_reason"),
            g.c.title,
            g.c.grantee_name,
            g.c.status.label("grant_status"),
            t.c.method,
            t.c.reference.label("tranche_reference"),
            t.c.reversal_reason.label("tranche_reversal_reason"),
            e.c.payee,
            e.c.description.label("expense_description"),
        )
        .select_from(_joined(fund_id))
        .where(j.c.fund_id == fund_id)
        .order_by(j.c.occurred_on, j.c.notification_id)
    )
    if date_from is not None:
        query = query.where(j.c.occurred_on >= date_from)
    if date_to is not None:
        query = query.where(j.c.occurred_on <= date_to)
    result = conn.execution_options(yield_per=STREAM_ROWS).execute(query).mappings()
    yield from result


# -- from read-model rows to entries -------------------------------------------------------------


def _entry(row: Any, slug: str, donor_details: DonorDetails | None) -> Entry:
    kind = row["kind"]
    amount = int(row["figure_delta_minor"]) * chart.AMOUNT_SIGN.get(kind, 1)
    purpose = row["purpose"]
    postings = chart.postings(
        kind,
        amount,
        purpose=purpose,
        money=_money(kind, row["channel"], row["method"]),
        category=row["category"],
        grantee=row["grantee_name"] or "",
    )
    tags = [f"fund-{slug}", f"purpose-{purpose}" if purpose else "unrestricted"]
    meta = [
        ("position", str(row["notification_id"])),
        ("recorded", _instant(row["recorded_at"])),
        ("kind", kind),
    ]
    reference = row["reference"]
    payee, narration, link = "", "", ""
    if kind in DONATION_KINDS:
        link = reference
        meta.append(("receipt", reference))
        payee = row["donor_public_name"] or ""
        channel = row["channel"] or ""
        if kind == "donation":
            meta.append(("channel", channel))
            narration = f"捐赠收入 Donation {reference} ({CHANNEL_ZH.get(channel, channel)})"
            if row["in_kind_description"]:
                narration += f": {row['in_kind_description']}"
                meta.append(("valuation-basis", row["in_kind_valuation_basis"] or ""))
        elif kind == "refund":
            meta += [("corrects", reference), ("refund", row["detail"])]
            narration = f"退款 Refund of {reference}: {row['refund_reason'] or ''}"
        else:
            meta.append(("corrects", reference))
            narration = f"冲销 Reversal of {reference}: {row['donation_reversal_reason'] or ''}"
        if donor_details is not None:
            meta += [("donor-id", row["donor_id"] or "")]
            personal = donor_details(row["entity_id"]) if row["donor_details_kept"] else None
            if personal is not None and personal.name:
                payee = personal.name
            if personal is not None and personal.contact:
                meta.append(("donor-contact", personal.contact))
            if row["external_ref"]:
                meta.append(("external-ref", row["external_ref"]))
            if row["note"]:
                meta.append(("note", row["note"]))
    elif kind.startswith("grant_") or kind in TRANCHE_KINDS:
        link = f"grant-{row['entity_id']}"
        meta.append(("grant", row["entity_id"]))
        payee = row["grantee_name"] or ""
        title = row["title"] or ""
        if kind == "grant_commitment":
            narration = f"资助承诺 Grant committed: {title}"
        elif kind == "grant_release":
            narration = f"资助结余退回 Unspent grant released ({row['grant_status']}): {title}"
        elif kind == "disbursement":
            meta += [("tranche", row["detail"]), ("method", row["method"] or "")]
            meta.append(("payment-ref", row["tranche_reference"] or ""))
            narration = f"资助拨付 Tranche {row['detail']} of grant: {title}"
        else:
            meta += [("tranche", row["detail"]), ("corrects", f"tranche {row['detail']}")]
            narration = (
                f"退票 Tranche {row['detail']} bounced: {row['tranche_reversal_reason'] or ''}"
            )
    else:
        link = f"expense-{row['entity_id']}"
        meta += [("expense", row["entity_id"]), ("category", row["category"])]
        payee = row["payee"] or ""
        label = CATEGORY_ZH.get(row["category"], row["category"])
        if kind == "expense":
            narration = f"{label} Expense: {row['expense_description'] or ''}"
        else:
            meta.append(("corrects", f"expense-{row['entity_id']}"))
            narration = f"冲销 Reversal of expense ({label}): {row['memo']}"
    if donor_details is not None:
        meta.append(("recorded-by", row["recorded_by"]))
    return Entry(row["occurred_on"], payee, narration, postings, tags, [link], meta)


def _instant(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass
class _Assertions:
    """Account balances from the read models, day by day, with the opening folded in."""

    opening: dict[str, int]
    by_day: dict[date, dict[str, int]]

    def at(self, day: date, since: date | None) -> dict[str, int]:
        """Every account's balance at the end of ``day``."""
        out = dict(self.opening)
        for d, changes in self.by_day.items():
            if d <= day and (since is None or d >= since):
                for account, delta in changes.items():
                    out[account] = out.get(account, 0) + delta
        return out


def _assertions(conn: Connection, fund_id: str, books: Books) -> _Assertions:
    by_day = balances_by_day(conn, fund_id, books.date_to)
    opening: dict[str, int] = defaultdict(int)
    if books.date_from is not None:
        for day, changes in by_day.items():
            if day < books.date_from:
                for account, delta in changes.items():
                    opening[chart.closing_account(account) or account] += delta
    return _Assertions({a: v for a, v in opening.items() if v}, by_day)


def _month_ends(first: date, last: date) -> Iterator[date]:
    month = first.replace(day=1)
    while True:
        end = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        if end > last:
            return
        yield end
        month = end + timedelta(days=1)


def entries(
    conn: Connection,
    slug: str,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    donor_details: DonorDetails | None = None,
) -> tuple[Books, Iterator[Entry | tuple[date, dict[str, int]]]]:
    """The books' header and, in date order, the opening entry, the movements and the
    balance assertions (a ``(day, balances at its end)`` pair) of ``slug``."""
    check_span(date_from, date_to)
    fund, books = _books(conn, slug, date_from, date_to)
    assertions = _assertions(conn, fund["fund_id"], books)

    def stream() -> Iterator[Entry | tuple[date, dict[str, int]]]:
        if assertions.opening and date_from is not None:
            yield Entry(
                date_from,
                "",
                f"期初余额 Opening balances (the books closed at {date_from - timedelta(1)})",
                sorted(assertions.opening.items()),
                [f"fund-{slug}"],
                [],
                [("kind", "opening")],
            )
        start = date_from or books.first_day
        ends = _month_ends(start, date(9999, 11, 30))
        next_end = next(ends)
        last_day = start
        for row in _lines(conn, fund["fund_id"], date_from, date_to):
            day = row["occurred_on"]
            while day > next_end:
                yield next_end, assertions.at(next_end, date_from)
                next_end = next(ends)
            last_day = day
            yield _entry(row, slug, donor_details)
        end = date_to or last_day
        while next_end < end:
            yield next_end, assertions.at(next_end, date_from)
            next_end = next(ends)
        yield end, assertions.at(end, date_from)

    return books, stream()


# -- the two syntaxes ----------------------------------------------------------------------------


def _amount(amount_minor: int, currency: str) -> str:
    return f"{format_amount(amount_minor, currency=currency)} {currency}"


def _bean_text(text: str) -> str:
    flat = " ".join(str(text).split())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def beancount_lines(
    conn: Connection,
    slug: str,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    donor_details: DonorDetails | None = None,
) -> Iterator[str]:
    """The fund's books as a Beancount 3 file."""
    books, stream = entries(
        conn, slug, date_from=date_from, date_to=date_to, donor_details=donor_details
    )
    cur = books.currency
    yield from _header(books, ";;")
    yield f"option {_bean_text('title')} {_bean_text(f'{books.name} ({books.slug})')}"
    yield f"option {_bean_text('operating_currency')} {_bean_text(cur)}"
    # Exact books: the default tolerance would let a balance be off by one minor unit.
    yield f"option {_bean_text('tolerance_multiplier')} {_bean_text('0')}"
    yield ""
    for account in books.accounts:
        if ":" not in account.name:
            continue
        yield f"{books.first_day} open {account.name} {cur}"
        yield f"  name: {_bean_text(account.name_zh)}"
        yield f"  code: {_bean_text(account.code)}"
    asserted: set[str] = set()
    for item in stream:
        yield ""
        if isinstance(item, tuple):
            day, balances = item
            asserted |= {a for a, v in balances.items() if v}
            for name in sorted(asserted):
                amount = _amount(balances.get(name, 0), cur)
                yield f"{day + timedelta(days=1)} balance {name} {amount}"
            continue
        tags = " ".join([f"#{t}" for t in item.tags] + [f"^{link}" for link in item.links])
        strings = _bean_text(item.narration)
        if item.payee:
            strings = f"{_bean_text(item.payee)} {strings}"
        yield f"{item.day} * {strings} {tags}"
        for key, value in item.meta:
            yield f"  {key}: {_bean_text(value)}"
        for posted, amount_minor in item.postings:
            yield f"  {posted}  {_amount(amount_minor, cur)}"


def _hledger_text(text: str) -> str:
    return " ".join(str(text).replace(";", ",").replace("|", "/").split())


def _hledger_value(text: str) -> str:
    return _hledger_text(text).replace(",", " ")


def hledger_lines(
    conn: Connection,
    slug: str,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    donor_details: DonorDetails | None = None,
) -> Iterator[str]:
    """The fund's books as an hledger journal."""
    books, stream = entries(
        conn, slug, date_from=date_from, date_to=date_to, donor_details=donor_details
    )
    cur = books.currency
    yield from _header(books, ";")
    example = format_amount(100_000, currency=cur)
    if "." not in example:
        example += "."  # hledger wants the decimal mark, even with no decimals
    yield f"commodity {example} {cur}"
    yield ""
    for account in books.accounts:
        yield (
            f"account {account.name}  ; type:{account.kind}, code:{account.code}, "
            f"name:{_hledger_value(account.name_zh)}"
        )
    asserted: set[str] = set()
    for item in stream:
        yield ""
        if isinstance(item, tuple):
            day, balances = item
            asserted |= {a for a, v in balances.items() if v}
            if not asserted:
                continue
            yield f"{day} * 余额核对 Balance assertions at the end of {day}  ; fund:{books.slug}"
            for name in sorted(asserted):
                amount = _amount(balances.get(name, 0), cur)
                yield f"    {name}  0 {cur} = {amount}"
            continue
        description = _hledger_text(item.narration)
        if item.payee:
            description = f"{_hledger_text(item.payee)} | {description}"
        tags = [f"{t}:" if ":" not in t else t for t in _hledger_tags(item)]
        yield f"{item.day} * {description}  ; {', '.join(tags)}"
        for posted, amount_minor in item.postings:
            yield f"    {posted}  {_amount(amount_minor, cur)}"


def _hledger_tags(item: Entry) -> Iterable[str]:
    for tag in item.tags:
        if tag.startswith("fund-"):
            yield f"fund:{tag[5:]}"
        elif tag.startswith("purpose-"):
            yield f"purpose:{tag[8:]}"
        else:
            yield tag
    for link in item.links:
        yield f"link:{link}"
    for key, value in item.meta:
        yield f"{key}:{_hledger_value(value)}"


def _header(books: Books, comment: str) -> Iterator[str]:
    span = f"{books.date_from or 'the start'} to {books.date_to or 'the end'}"
    yield f"{comment} {books.name} ({books.slug}), a fund hosted by {books.host}"
    yield f"{comment} Exported from the community fund ledger's read models, {span}."
    yield f"{comment} Chart of accounts: 民间非营利组织会计制度 codes; see docs/interop.md."
    if books.closed_periods:
        closed = ", ".join(books.closed_periods)
        yield f"{comment} Closed months (corrections of them are dated later): {closed}"
    yield ""
