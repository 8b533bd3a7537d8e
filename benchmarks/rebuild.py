"""Benchmark: rebuild every read model from a large event log, against the raw read rate.

    .venv/bin/python benchmarks/rebuild.py                 # 1,000,000 events
    .venv/bin/python benchmarks/rebuild.py --events 100000 --keep /tmp/bench.db

1. Generates ``--events`` events into a fresh SQLite file, fast: aggregates are built with
   the domain's own commands (so every event is valid), and their events are written
   through the application's mapper and recorder in large transactions
   (``app.events.put``), not one command per transaction.
2. Reads the same events back from the store in pages (``select_notifications``): the raw
   read rate, the baseline.
3. Rebuilds all read models from zero (``projections.rebuild``), timed around the call, and
   its peak memory (``VmHWM``, reset before it, on Linux).

It prints both rates, measured in the same run on the same file, and their ratio.
``--keep FILE --reuse`` keeps the generated file and reuses it in later runs.
Targets (issue 3): rebuild >= 30,000 events/s and >= 25 % of the raw read rate.
"""

from __future__ import annotations

import argparse
import functools
import gc
import random
import resource
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from ledger.application import LedgerApp  # noqa: E402
from ledger.domain.common import donor_id_for, entity_id  # noqa: E402
from ledger.domain.donation import Donation, mask_name  # noqa: E402
from ledger.domain.fund import Fund  # noqa: E402
from ledger.domain.grant import Grant  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from projections.db import open_store  # noqa: E402
from projections.rebuild import rebuild  # noqa: E402

PUT_EVENTS = 20_000  # events per write transaction while generating
READ_PAGE = 10_000
FUNDS = 20
COMMITTEE = ["李明", "王芳", "张伟", "刘洋", "陈静"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"
PURPOSES = [{"code": "elderly-care", "name": "养老"}, {"code": "education", "name": "教育"}]
START_DAY = date(2024, 1, 1)
DAYS = 900


@dataclass
class FundState:
    fund: Fund
    slug: str
    donations: list[Donation] = field(default_factory=list)  # recent, for refunds
    open_grants: list[Grant] = field(default_factory=list)
    expenses: list[str] = field(default_factory=list)
    seq: int = 0


class Generator:
    """Valid histories, written in bulk. Commands follow the application's own order:
    the fund's events, then the other aggregate's (``save(fund, donation)``)."""

    def __init__(self, app: LedgerApp, seed: int = 7) -> None:
        self.app = app
        self.rng = random.Random(seed)
        self.pending: list[Any] = []
        self.written = 0
        self.funds: list[FundState] = []

    def day(self) -> date:
        # Business dates advance with the log, with some back-dated entries.
        progress = self.written + len(self.pending)
        base = START_DAY + timedelta(days=min(DAYS, progress * DAYS // max(self.target, 1)))
        return base - timedelta(days=self.rng.randrange(0, 20))

    def collect(self, *aggregates: Any) -> None:
        for aggregate in aggregates:
            self.pending.extend(aggregate.collect_events())
        if len(self.pending) >= PUT_EVENTS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.app.events.put(self.pending)
            self.written += len(self.pending)
            self.pending = []

    def run(self, target: int, progress: Any = None) -> int:
        self.target = target
        for i in range(FUNDS):
            slug = f"fund-{i:02d}"
            fund = Fund.open(
                slug=slug,
                name=f"茶乡振兴基金 {i}",
                currency="CNY",
                description="社区基金",
                host="示例慈善会",
                committee=COMMITTEE,
                approvals_required=2,
                purposes=PURPOSES,
                actor="admin",
                request_sha256="0" * 64,
            )
            self.funds.append(FundState(fund=fund, slug=slug))
            self.collect(fund)
        while self.written + len(self.pending) < target:
            state = self.rng.choice(self.funds)
            r = self.rng.random()
            if r < 0.62:
                self.donate(state)
            elif r < 0.66:
                self.refund(state)
            elif r < 0.80:
                self.expense(state)
            elif r < 0.82:
                self.reverse_expense(state)
            else:
                self.grant_step(state)
            if progress and self.written and not self.pending:
                progress(self.written, target)
        self.flush()
        return self.written

    def _key(self, state: FundState) -> str:
        state.seq += 1
        return f"{state.slug}-{state.seq}"

    def donate(self, state: FundState) -> None:
        fund = state.fund
        key = self._key(state)
        donation_id = entity_id(state.slug, "donation", key)
        day = self.day()
        purpose = self.rng.choice(["", "", "elderly-care", "education"])
        amount = self.rng.randrange(1_000, 500_000)
        receipt_no = fund.credit_donation(
            donation_id=str(donation_id),
            amount_minor=amount,
            purpose=purpose,
            received_on=day,
            actor="treasurer",
        )
        anonymous = self.rng.random() < 0.3
        name = self.rng.choice(SURNAMES) + "".join(self.rng.sample(GIVEN, 2))
        donation = Donation.receive(
            id=donation_id,
            fund_id=str(fund.id),
            fund_slug=state.slug,
            currency="CNY",
            amount_minor=amount,
            received_on=day,
            channel=self.rng.choice(["cash", "bank", "wechat", "alipay"]),
            purpose=purpose,
            donor_id=str(donor_id_for(donation_id)),
            donor_public_name="爱心人士" if anonymous else mask_name(name),
            donor_anonymous=anonymous,
            donor_sealed=None,
            external_ref=None if self.rng.random() < 0.5 else f"BANK{key}",
            receipt_no=receipt_no,
            note="",
            in_kind=None,
            actor="treasurer",
            request_sha256="0" * 64,
        )
        state.donations.append(donation)
        if len(state.donations) > 200:
            del state.donations[:100]
        self.collect(fund, donation)

    def refund(self, state: FundState) -> None:
        candidates = [d for d in state.donations if d.remaining_minor > 0 and not d.reversed]
        if not candidates:
            return self.donate(state)
        donation = self.rng.choice(candidates)
        amount = max(1, donation.remaining_minor // self.rng.choice([1, 2, 4]))
        if amount > state.fund.available_minor(donation.purpose):
            return self.donate(state)
        day = max(self.day(), date.fromisoformat(donation.received_on))
        refund_id = str(entity_id(state.slug, "refund", self._key(state)))
        donation.refund(
            refund_id=refund_id,
            amount_minor=amount,
            refunded_on=day,
            reason="捐赠人要求退款",
            actor="treasurer",
            request_sha256="0" * 64,
        )
        state.fund.debit_refund(
            donation_id=str(donation.id),
            refund_id=refund_id,
            amount_minor=amount,
            purpose=donation.purpose,
            refunded_on=day,
            actor="treasurer",
        )
        self.collect(donation, state.fund)
        return None

    def expense(self, state: FundState) -> None:
        purpose = self.rng.choice(["", "", "elderly-care"])
        amount = self.rng.randrange(500, 50_000)
        if amount > state.fund.available_minor(purpose):
            return self.donate(state)
        expense_id = str(entity_id(state.slug, "expense", self._key(state)))
        state.fund.record_expense(
            expense_id=expense_id,
            amount_minor=amount,
            category=self.rng.choice(["program", "program", "administration", "fundraising"]),
            paid_on=self.day(),
            payee="村委会",
            description="办公用品",
            purpose=purpose,
            actor="treasurer",
            request_sha256="0" * 64,
        )
        state.expenses.append(expense_id)
        if len(state.expenses) > 200:
            del state.expenses[:100]
        self.collect(state.fund)
        return None

    def reverse_expense(self, state: FundState) -> None:
        open_ids = [x for x in state.expenses if not state.fund.expenses[x].reversed]
        if not open_ids:
            return self.expense(state)
        state.fund.reverse_expense(
            expense_id=self.rng.choice(open_ids),
            reason="重复录入，予以冲销",
            reversed_on=self.day(),
            actor="treasurer",
        )
        self.collect(state.fund)
        return None

    def grant_step(self, state: FundState) -> None:
        """Move an open grant one step on, or propose a new one."""
        if state.open_grants and self.rng.random() < 0.8:
            grant = self.rng.choice(state.open_grants)
            return self._advance(state, grant)
        purpose = self.rng.choice(["", "education"])
        amount = self.rng.randrange(100_000, 2_000_000)
        if amount > state.fund.available_minor(purpose):
            return self.donate(state)
        grant = Grant.propose(
            id=entity_id(state.slug, "grant", self._key(state)),
            fund_id=str(state.fund.id),
            fund_slug=state.slug,
            currency="CNY",
            title="村道修缮",
            description="",
            purpose=purpose,
            grantee_name="牌坊村村民委员会",
            grantee_id=None,
            amount_minor=amount,
            proposed_on=self.day(),
            actor=COMMITTEE[0],
            request_sha256="0" * 64,
        )
        state.open_grants.append(grant)
        self.collect(grant)
        return None

    def _advance(self, state: FundState, grant: Grant) -> None:
        fund = state.fund
        day = self.day()
        if grant.status == "proposed":
            member = COMMITTEE[1 + len(grant.approvals)]
            grant.approve(member=member, committee=COMMITTEE, note="", approved_on=day)
            if grant.approvals_from(COMMITTEE) >= fund.approvals_required:
                if grant.amount_minor > fund.available_minor(grant.purpose):
                    grant.reject(
                        reason="资金不足", rejected_on=day, actor=member, committee=COMMITTEE
                    )
                    state.open_grants.remove(grant)
                    self.collect(grant)
                    return
                fund.commit_grant(
                    grant_id=str(grant.id),
                    amount_minor=grant.amount_minor,
                    purpose=grant.purpose,
                    committed_on=day,
                    actor=member,
                )
                grant.commit(committed_on=day, actor=member)
                self.collect(grant, fund)
            else:
                self.collect(grant)
            return
        remaining = grant.remaining_minor
        if remaining > 0 and len(grant.tranches) < 3:
            amount = remaining if len(grant.tranches) == 2 else remaining // 2
            tranche_id = str(entity_id(state.slug, "disbursement", self._key(state)))
            tranche_no = grant.disburse(
                tranche_id=tranche_id,
                amount_minor=amount,
                paid_on=day,
                method="bank",
                reference=f"TR{tranche_id[:8]}",
                evidence_sha256=None,
                actor="treasurer",
                request_sha256="0" * 64,
            )
            fund.debit_disbursement(
                grant_id=str(grant.id),
                tranche_no=tranche_no,
                amount_minor=amount,
                purpose=grant.purpose,
                paid_on=day,
                actor="treasurer",
            )
            self.collect(grant, fund)
            return
        released = grant.close(
            reason="项目完成", closed_on=day, actor=COMMITTEE[0], committee=COMMITTEE
        )
        if released:
            fund.release_grant(
                grant_id=str(grant.id),
                amount_minor=released,
                purpose=grant.purpose,
                released_on=day,
                actor=COMMITTEE[0],
            )
        state.open_grants.remove(grant)
        self.collect(grant, fund)


def read_raw(app: LedgerApp) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    position = 0
    while True:
        page = app.recorder.select_notifications(position + 1, READ_PAGE)
        if not page:
            break
        count += len(page)
        position = page[-1].id
    return count, time.perf_counter() - started


def read_raw_no_gc(app: LedgerApp) -> tuple[int, float]:
    """The raw read with the cyclic garbage collector paused, as the rebuild runs."""
    gc.disable()
    try:
        return read_raw(app)
    finally:
        gc.enable()


def read_decoded(app: LedgerApp) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    position = 0
    to_event = app.mapper.to_domain_event
    while True:
        page = app.recorder.select_notifications(position + 1, READ_PAGE)
        if not page:
            break
        for n in page:
            to_event(n)
        count += len(page)
        position = page[-1].id
    return count, time.perf_counter() - started


def _reset_peak_rss() -> float | None:
    """Reset the kernel's peak resident size of this process (Linux ``VmHWM``), so that
    the peak of the rebuild alone can be read after it; returns the process's peak so far
    (MiB), or None where that cannot be done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_text(before_mib: float | None) -> str:
    process_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = f"process {process_mib:,.0f} MiB (ru_maxrss)"
    if before_mib is None:
        return text
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            rebuild_mib = int(line.split()[1]) / 1024
            return f"rebuild {rebuild_mib:,.0f} MiB (VmHWM since it started), {text}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--keep", type=Path, help="write the database here and keep it")
    parser.add_argument("--reuse", action="store_true", help="reuse --keep if it exists")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workers", type=int, help="processes that load at once (default: one per CPU)"
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    db = args.keep or workdir / "bench.db"
    reuse = args.reuse and db.exists()
    if db.exists() and not reuse:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    settings = Settings(database_url=url, key_dir=workdir / "keys")
    app = LedgerApp(settings, clock=lambda: datetime.now(UTC))

    if not reuse:
        started = time.perf_counter()
        generator = Generator(app, seed=args.seed)

        def report(done: int, total: int) -> None:
            if done % 100_000 < PUT_EVENTS:
                print(f"  generated {done:,} / {total:,}", file=sys.stderr)

        written = generator.run(args.events, report)
        elapsed = time.perf_counter() - started
        print(f"generated {written:,} events in {elapsed:.1f} s ({written / elapsed:,.0f}/s)")
        # Both measurements below start from a settled file, not a large write-ahead log.
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # The raw read is measured before and after the rebuild, and averaged (on a shared
    # machine the load may change during the run), and with the cyclic garbage collector
    # paused as the rebuild pauses it: the baseline is the faster of the two.
    count, before_s = read_raw(app)
    print(f"raw read     {count:,} events in {before_s:6.2f} s: {count / before_s:10,.0f} events/s")
    _, before_no_gc_s = read_raw_no_gc(app)
    print(
        f"raw read     {count:,} events in {before_no_gc_s:6.2f} s: "
        f"{count / before_no_gc_s:10,.0f} events/s (no cyclic GC)"
    )
    count_d, dec_s = read_decoded(app)
    print(
        f"read+decode  {count_d:,} events in {dec_s:6.2f} s: {count_d / dec_s:10,.0f} events/s"
        " (the library's mapper)"
    )

    _, engine = open_store(settings)
    peak_before_mib = _reset_peak_rss()
    started = time.perf_counter()
    opener = functools.partial(open_store, settings)
    result = rebuild(app, engine, opener=opener, workers=args.workers)
    call_s = time.perf_counter() - started  # with what follows its own clock (freeing)
    # The log's events over the time: each process reads only the events its projections
    # follow, and every event of this log is followed by one of them.
    rate = count / call_s
    print(
        f"rebuild all  {count:,} events in {call_s:6.2f} s: "
        f"{rate:10,.0f} events/s  ({', '.join(result.names)}; "
        f"{result.elapsed_s:.2f} s by its own clock; {result.events:,} events read)"
    )
    children_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"peak memory: {_peak_rss_text(peak_before_mib)}; "
        f"the largest worker or page writer: {children_mib:,.0f} MiB"
    )
    _, after_s = read_raw(app)
    _, after_no_gc_s = read_raw_no_gc(app)
    print(
        f"raw read again: {count / after_s:,.0f} events/s, "
        f"{count / after_no_gc_s:,.0f} events/s (no cyclic GC)"
    )
    raw_rate = max(2 * count / (before_s + after_s), 2 * count / (before_no_gc_s + after_no_gc_s))
    print(f"raw read baseline (mean of before and after, the faster way): {raw_rate:,.0f} events/s")
    ratio = rate / raw_rate
    print(f"ratio rebuild / raw read: {ratio:.1%}")
    ok = rate >= 30_000 and ratio >= 0.25
    print(f"targets (>= 30,000 events/s, >= 25 % of raw): {'met' if ok else 'NOT met'}")
    engine.dispose()
    app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
