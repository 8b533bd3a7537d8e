"""The demo history: the 茶乡振兴基金 (Tea Village Revitalisation Fund) of 牌坊村.

``load_demo(app, today=...)`` records about three months of a small village fund ending a few
days before ``today``: ~30 donations from villagers and local firms (wechat, alipay, bank,
cash, one in-kind gift of tea seedlings), some anonymous, some designated to 养老 or 教育; a
partial refund; a donation recorded in error and reversed; three grants (one paid in two
tranches and closed, one paid in one tranche so far, one rejected); a few expenses; and the
month before last closed. The host charity, the people and the phone numbers are made up.

Every step has a fixed idempotency key, so loading twice records nothing new. The dates
hang on one anchor day: the first run's ``today``. A later run finds the anchor again from
the first donation's date, so it asks for exactly the same entries.

Proposals, approvals, closures and period closes take their date from the application's
clock; the loader sets that clock to each step's business day while the step runs, so the
history reads in order (a grant is committed before its tranches are paid). Run it before
the application serves anybody else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from uuid import UUID

from ledger.application import DonorIn, LedgerApp
from ledger.domain.common import entity_id, period_of
from ledger.domain.errors import DonationNotFound
from ledger.domain.grant import CLOSED, PROPOSED

DEMO_FUND_SLUG = "tea-village"
DEMO_FUND_NAME = "茶乡振兴基金"
DEMO_HOST = "青山公益基金会"
DEMO_CURRENCY = "CNY"
DEMO_DESCRIPTION = (
    "牌坊村的社区基金：村民和本地企业捐款，支持村里老人的照护（养老）和孩子的教育（教育），"
    "由村民推选的三人管委会审批资助，每一笔收支都公开。"
)
DEMO_COMMITTEE = ("李德福", "王秀英", "张建国")
DEMO_PURPOSES = (("elderly-care", "养老"), ("education", "教育"))

ADMIN = "周文华"  # the host's programme officer, who opened the fund
TREASURER = "刘晓梅"  # the fund's treasurer (出纳)

ELDERLY = "elderly-care"
EDUCATION = "education"

# The first donation is dated this many days before the anchor: a later run finds the
# anchor again from that donation's date.
FIRST_GIFT_DAYS_AGO = 90


@dataclass(frozen=True, slots=True)
class _Gift:
    no: int
    days_ago: int
    amount_minor: int
    channel: str
    purpose: str | None = None
    name: str | None = None
    contact: str | None = None
    anonymous: bool = False
    public_name: str | None = None
    external_ref: str | None = None
    note: str = ""
    in_kind: dict[str, str] | None = None


# fmt: off
_GIFTS: tuple[_Gift, ...] = (
    _Gift(1, FIRST_GIFT_DAYS_AGO, 2_000_000, "bank", None, "牌坊村茶叶专业合作社", "0851-8000-0101",
          public_name="牌坊村茶叶专业合作社", external_ref="DEMO-BANK-0001",
          note="合作社年终分红中拿出两万元，支持基金启动"),
    _Gift(2, 89, 20_000, "wechat", ELDERLY, "王桂兰", "13800000102"),
    _Gift(3, 88, 10_000, "cash", ELDERLY, anonymous=True, note="村委会捐款箱"),
    _Gift(4, 86, 50_000, "alipay", EDUCATION, "赵小红", "13800000104"),
    _Gift(5, 85, 500_000, "bank", ELDERLY, "山里红农家乐", "0851-8000-0105",
          public_name="山里红农家乐", external_ref="DEMO-BANK-0005"),
    _Gift(6, 84, 30_000, "wechat", None, "陈志强", "13800000106"),
    _Gift(7, 82, 300_000, "in_kind", None, "青岩茶厂", "0851-8000-0107",
          public_name="青岩茶厂",
          in_kind={
              "description": "优质茶苗 2000 株，用于村集体茶园补种",
              "valuation_basis": "按县农业农村局公布的当季茶苗指导价每株 1.50 元估值",
          }),
    _Gift(8, 80, 5_000, "cash", None, anonymous=True),
    _Gift(9, 78, 800_000, "bank", EDUCATION, "县城顺达物流有限公司", "0851-8000-0109",
          public_name="顺达物流", external_ref="DEMO-BANK-0009"),
    _Gift(10, 76, 100_000, "wechat", None, "刘建华", "13800000110"),
    _Gift(11, 75, 66_600, "alipay", ELDERLY, anonymous=True),
    _Gift(12, 72, 20_000, "wechat", EDUCATION, "李秀兰", "13800000112"),
    _Gift(13, 70, 200_000, "bank", None, "周永福", "13800000113", external_ref="DEMO-BANK-0013"),
    _Gift(14, 68, 52_000, "wechat", None, "杨光明", "13800000114",
          public_name="一位在外打工的牌坊村人"),
    _Gift(15, 66, 120_000, "wechat", ELDERLY, "黄德明", "13800000115"),
    _Gift(16, 64, 200_000, "wechat", EDUCATION, "吴晓燕", "13800000116"),
    _Gift(17, 62, 20_000, "cash", None, "张二妹", None),
    _Gift(18, 60, 600_000, "bank", ELDERLY, "牌坊村在外乡贤联谊会", "0851-8000-0118",
          public_name="牌坊村在外乡贤联谊会", external_ref="DEMO-BANK-0018"),
    _Gift(19, 58, 100_000, "alipay", None, "郑海波", "13800000119"),
    _Gift(20, 55, 1_000_000, "bank", EDUCATION, "黔山茶业有限公司", "0851-8000-0120",
          public_name="黔山茶业有限公司", external_ref="DEMO-BANK-0020",
          note="用于村小学的图书和教学用品"),
    _Gift(21, 52, 30_000, "wechat", None, anonymous=True),
    _Gift(22, 50, 30_000, "cash", ELDERLY, "罗桂芝", None),
    _Gift(23, 48, 300_000, "bank", None, "牌坊村小卖部", "0851-8000-0123",
          public_name="牌坊村小卖部", external_ref="DEMO-BANK-0023"),
    _Gift(24, 45, 10_000, "wechat", EDUCATION, anonymous=True),
    _Gift(25, 42, 10_000, "cash", None, "何老三", None),
    _Gift(26, 40, 88_800, "alipay", ELDERLY, anonymous=True),
    _Gift(27, 35, 66_600, "wechat", None, "孙磊", "13800000127"),
    _Gift(28, 30, 150_000, "alipay", EDUCATION, "马丽娟", "13800000128"),
    _Gift(29, 22, 100_000, "bank", None, "谢文斌", "13800000129", external_ref="DEMO-BANK-0029"),
    _Gift(30, 12, 20_000, "wechat", None, "田小燕", "13800000130"),
    _Gift(31, 5, 50_000, "alipay", None, anonymous=True),
    _Gift(32, 3, 15_000, "cash", ELDERLY, "龙阿婆", None, note="卖鸡蛋攒下的钱"),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class _Step:
    day: date
    run: Callable[[], object]


def load_demo(app: LedgerApp, *, today: date) -> None:
    """Record the demo fund and its history; a second call records nothing new."""
    anchor = _anchor(app, today)
    steps = sorted(_steps(app, anchor), key=lambda s: s.day)  # stable: same-day order kept
    for step in steps:
        with _clock_at(app, step.day):
            step.run()


def _anchor(app: LedgerApp, today: date) -> date:
    """The day the demo history ends on: ``today`` on the first run, the same day again on
    later runs (recovered from the first donation's date)."""
    first = entity_id(DEMO_FUND_SLUG, "donation", _donation_key(1))
    try:
        received_on = app.get_donation(first).received_on
    except DonationNotFound:
        return today
    return date.fromisoformat(received_on) + timedelta(days=FIRST_GIFT_DAYS_AGO)


@contextmanager
def _clock_at(app: LedgerApp, day: date) -> Iterator[None]:
    saved = app.clock
    noon = datetime.combine(day, time(12), tzinfo=app.tz)
    app.clock = lambda: noon
    try:
        yield
    finally:
        app.clock = saved


def _donation_key(no: int) -> str:
    return f"demo-donation-{no:02d}"


def _donation_id(no: int) -> UUID:
    return entity_id(DEMO_FUND_SLUG, "donation", _donation_key(no))


def _grant_id(key: str) -> UUID:
    return entity_id(DEMO_FUND_SLUG, "grant", key)


def _steps(app: LedgerApp, anchor: date) -> list[_Step]:
    def ago(days: int) -> date:
        return anchor - timedelta(days=days)

    start = ago(FIRST_GIFT_DAYS_AGO + 2)
    steps = [_Step(start, lambda: _open_fund(app))]
    steps += [_Step(ago(g.days_ago), _donation_step(app, g, ago(g.days_ago))) for g in _GIFTS]
    steps += _corrections(app, ago)
    steps += _grants(app, ago)
    steps += _expenses(app, ago)
    steps.append(_close_month_before_last(app, anchor))
    return steps


def _open_fund(app: LedgerApp) -> None:
    app.open_fund(
        slug=DEMO_FUND_SLUG,
        name=DEMO_FUND_NAME,
        currency=DEMO_CURRENCY,
        description=DEMO_DESCRIPTION,
        host=DEMO_HOST,
        committee=list(DEMO_COMMITTEE),
        approvals_required=2,
        purposes=[{"code": code, "name": name} for code, name in DEMO_PURPOSES],
        actor=ADMIN,
    )


def _donation_step(app: LedgerApp, gift: _Gift, day: date) -> Callable[[], object]:
    def run() -> object:
        return app.record_donation(
            slug=DEMO_FUND_SLUG,
            key=_donation_key(gift.no),
            amount_minor=gift.amount_minor,
            received_on=day,
            channel=gift.channel,
            purpose=gift.purpose,
            donor=DonorIn(
                name=gift.name,
                contact=gift.contact,
                anonymous=gift.anonymous,
                public_name=gift.public_name,
            ),
            external_ref=gift.external_ref,
            note=gift.note,
            in_kind=gift.in_kind,
            actor=TREASURER,
        )

    return run


def _corrections(app: LedgerApp, ago: Callable[[int], date]) -> list[_Step]:
    refund_day, reversal_day = ago(73), ago(67)
    return [
        _Step(
            refund_day,
            lambda: app.refund_donation(
                donation_id=_donation_id(10),
                key="demo-refund-01",
                amount_minor=40_000,
                refunded_on=refund_day,
                reason="捐赠人转账时多转了 400 元，应其要求退回",
                actor=TREASURER,
            ),
        ),
        _Step(
            reversal_day,
            lambda: app.reverse_donation(
                donation_id=_donation_id(13),
                reason="录入错误：这笔 2000 元银行入账是村民代缴的合作医疗费，不是捐赠",
                reversed_on=reversal_day,
                actor=TREASURER,
            ),
        ),
    ]


def _grants(app: LedgerApp, ago: Callable[[int], date]) -> list[_Step]:
    kitchen, library, lights = "demo-grant-01", "demo-grant-02", "demo-grant-03"
    return [
        # 1. Committed, paid in two tranches, closed with the unspent 600 yuan released.
        _Step(
            ago(40),
            lambda: app.propose_grant(
                slug=DEMO_FUND_SLUG,
                key=kitchen,
                title="老年食堂灶具更新",
                description="更换村老年食堂的旧灶台和消毒柜，每天为 30 多位老人供应午饭。",
                purpose=ELDERLY,
                grantee_name="牌坊村老年协会",
                amount_minor=1_200_000,
                actor=TREASURER,
            ),
        ),
        _Step(ago(38), lambda: _approve(app, kitchen, "李德福", "实地看过灶台，确需更换")),
        _Step(ago(37), lambda: _approve(app, kitchen, "王秀英", "")),
        _Step(
            ago(35),
            lambda: _disburse(app, kitchen, "demo-tranche-01-1", 600_000, ago(35), "DEMO-PAY-0101"),
        ),
        _Step(
            ago(14),
            lambda: _disburse(app, kitchen, "demo-tranche-01-2", 540_000, ago(14), "DEMO-PAY-0102"),
        ),
        _Step(
            ago(7),
            lambda: _close(app, kitchen, "灶具已安装验收，结余 600 元退回基金"),
        ),
        # 2. Committed, first tranche paid.
        _Step(
            ago(30),
            lambda: app.propose_grant(
                slug=DEMO_FUND_SLUG,
                key=library,
                title="村小图书角和学习用品",
                description="为牌坊村小学添置图书 600 册、书架和学生文具。",
                purpose=EDUCATION,
                grantee_name="牌坊村小学",
                amount_minor=1_500_000,
                actor="张建国",
            ),
        ),
        _Step(ago(28), lambda: _approve(app, library, "李德福", "")),
        _Step(ago(27), lambda: _approve(app, library, "王秀英", "书单已请校长确认")),
        _Step(
            ago(20),
            lambda: _disburse(app, library, "demo-tranche-02-1", 800_000, ago(20), "DEMO-PAY-0201"),
        ),
        # 3. Rejected before approval.
        _Step(
            ago(26),
            lambda: app.propose_grant(
                slug=DEMO_FUND_SLUG,
                key=lights,
                title="村口太阳能路灯",
                description="在村口到茶园的路上安装 20 盏太阳能路灯。",
                grantee_name="县城亮光照明工程部",
                amount_minor=2_000_000,
                actor=TREASURER,
            ),
        ),
        _Step(
            ago(24),
            lambda: _reject(
                app, lights, "李德福", "路灯属于村委会的基础设施预算，不在本基金资助范围"
            ),
        ),
    ]


def _approve(app: LedgerApp, key: str, member: str, note: str) -> None:
    grant = app.get_grant(_grant_id(key))
    if grant.status != PROPOSED or any(a["member"] == member for a in grant.approvals):
        return  # approved on an earlier run
    app.approve_grant(grant_id=grant.id, note=note, actor=member)


def _reject(app: LedgerApp, key: str, member: str, reason: str) -> None:
    grant = app.get_grant(_grant_id(key))
    if grant.status == PROPOSED:
        app.reject_grant(grant_id=grant.id, reason=reason, actor=member)


def _close(app: LedgerApp, key: str, reason: str) -> None:
    grant = app.get_grant(_grant_id(key))
    if grant.status != CLOSED:
        app.close_grant(grant_id=grant.id, reason=reason, actor=TREASURER)


def _disburse(
    app: LedgerApp, key: str, tranche_key: str, amount_minor: int, paid_on: date, reference: str
) -> None:
    app.disburse(
        grant_id=_grant_id(key),
        key=tranche_key,
        amount_minor=amount_minor,
        paid_on=paid_on,
        method="bank",
        reference=reference,
        actor=TREASURER,
    )


def _expenses(app: LedgerApp, ago: Callable[[int], date]) -> list[_Step]:
    # (key, days ago, amount, category, payee, description, purpose)
    rows: tuple[tuple[str, int, int, str, str, str, str | None], ...] = (
        ("demo-expense-01", 81, 4_500, "administration", "农村信用合作社", "银行账户管理费", None),
        ("demo-expense-02", 74, 32_000, "fundraising", "县城彩印店", "募捐海报和宣传单印制", None),
        ("demo-expense-03", 57, 120_000, "program", "牌坊村茶叶专业合作社",
         "受赠茶苗 2000 株的移栽人工", None),
        ("demo-expense-04", 33, 18_000, "administration", "县城彩印店", "账簿和收据印制", None),
        ("demo-expense-05", 16, 26_000, "program", "牌坊村老年协会", "重阳节敬老活动物资",
         ELDERLY),
    )  # fmt: skip

    def step(row: tuple[str, int, int, str, str, str, str | None]) -> _Step:
        key, days_ago, amount_minor, category, payee, description, purpose = row
        day = ago(days_ago)
        return _Step(
            day,
            lambda: app.record_expense(
                slug=DEMO_FUND_SLUG,
                key=key,
                amount_minor=amount_minor,
                category=category,
                paid_on=day,
                payee=payee,
                description=description,
                purpose=purpose,
                actor=TREASURER,
            ),
        )

    return [step(row) for row in rows]


def _close_month_before_last(app: LedgerApp, anchor: date) -> _Step:
    """Close the month before last, on the 5th of the month after it (books are closed a few
    days after a month ends). Everything dated in that month sorts before the close."""
    last_month_first = (anchor.replace(day=1) - timedelta(days=1)).replace(day=1)
    period = period_of(last_month_first - timedelta(days=1))
    return _Step(
        last_month_first + timedelta(days=4),
        lambda: app.close_period(slug=DEMO_FUND_SLUG, period=period, actor=TREASURER),
    )
