"""The chart of accounts of the plain-text exports, and what each money movement posts.

The accounts follow the codes and names of 民间非营利组织会计制度 (the Accounting System for
Non-profit Organisations). Every component is valid in both Beancount (a component starts
with an upper-case letter or a digit) and hledger: English words with the system's code;
the Chinese name travels in the account's metadata (Beancount ``open``, hledger ``account``).

===============================================  ======================================
account                                           名称
===============================================  ======================================
``Assets:1001-Cash``                              库存现金 (gifts received in cash,
                                                  tranches paid in cash)
``Assets:1002-Bank``                              银行存款 (bank, WeChat Pay, Alipay and
                                                  other transfers; expenses are paid here)
``Assets:1201-InKind``                            存货—受赠实物 (in-kind gifts at valuation)
``Liabilities:2209-GrantsPayable``                其他应付款—应付资助款 (committed, not paid)
``Equity:3101-UnrestrictedNetAssets``             非限定性净资产
``Equity:3102-RestrictedNetAssets:<Purpose>``     限定性净资产—<purpose name>
``Income:4101-Donations:Unrestricted``            捐赠收入—非限定性
``Income:4101-Donations:Restricted:<Purpose>``    捐赠收入—限定性—<purpose name>
``Expenses:5101-ProgramCost:Grants:<Grantee>``    业务活动成本—资助—<grantee>
``Expenses:5101-ProgramCost:Direct``              业务活动成本—直接支出
``Expenses:5201-Administration``                  管理费用
``Expenses:5301-Fundraising``                     筹资费用
===============================================  ======================================

``<Purpose>`` is the purpose's code with its first letter in upper case (``elderly-care`` →
``Elderly-care``, ``2025-flood`` stays): codes are lower-case, so the code can be read back.
``<Grantee>`` is ``G-`` and the grantee's name with every character that is not a letter or
a digit replaced by ``-`` (``牌坊村老年协会`` → ``G-牌坊村老年协会``).

What each movement posts (``a``: the event's amount; ``M``: the money account of the
donation's channel or the tranche's method)::

    donation                M +a            Income:4101(P) -a
    refund, reversal        Income:4101(P) +a   M -a
    grant commitment        Grants:<G> +a   GrantsPayable -a    [restricted: 3102(P) +a, 3101 -a]
    grant release           GrantsPayable +a    Grants:<G> -a   [restricted: 3101 +a, 3102(P) -a]
    tranche paid            GrantsPayable +a    M -a
    tranche bounced         M +a            GrantsPayable -a
    expense                 <category> +a   Bank -a             [restricted: 3102(P) +a, 3101 -a]
    expense reversed        Bank +a         <category> -a       [restricted: 3101 +a, 3102(P) -a]

The bracketed pair lifts the restriction on what is used for its purpose, as the system
books it (借 限定性净资产, 贷 非限定性净资产); so ``Income:4101…Restricted:P`` plus
``Equity:3102…:P`` is always the purpose's available money (negated: a credit).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

CASH: Final = "Assets:1001-Cash"
BANK: Final = "Assets:1002-Bank"
IN_KIND: Final = "Assets:1201-InKind"
GRANTS_PAYABLE: Final = "Liabilities:2209-GrantsPayable"
UNRESTRICTED_NET_ASSETS: Final = "Equity:3101-UnrestrictedNetAssets"
RESTRICTED_NET_ASSETS: Final = "Equity:3102-RestrictedNetAssets"
DONATIONS: Final = "Income:4101-Donations"
DONATIONS_UNRESTRICTED: Final = "Income:4101-Donations:Unrestricted"
DONATIONS_RESTRICTED: Final = "Income:4101-Donations:Restricted"
PROGRAM_COST: Final = "Expenses:5101-ProgramCost"
GRANTS: Final = "Expenses:5101-ProgramCost:Grants"
PROGRAM_DIRECT: Final = "Expenses:5101-ProgramCost:Direct"
ADMINISTRATION: Final = "Expenses:5201-Administration"
FUNDRAISING: Final = "Expenses:5301-Fundraising"

EXPENSE_ACCOUNTS: Final = {
    "program": PROGRAM_DIRECT,
    "administration": ADMINISTRATION,
    "fundraising": FUNDRAISING,
}
CHANNEL_ACCOUNTS: Final = {"cash": CASH, "in_kind": IN_KIND}  # every other channel: BANK
METHOD_ACCOUNTS: Final = {"cash": CASH}  # every other payment method: BANK

# Account -> (code, Chinese name, hledger account type) of the fixed accounts and parents.
FIXED: Final[dict[str, tuple[str, str, str]]] = {
    "Assets": ("1", "资产", "A"),
    CASH: ("1001", "库存现金", "C"),
    BANK: ("1002", "银行存款", "C"),
    IN_KIND: ("1201", "存货—受赠实物", "A"),
    "Liabilities": ("2", "负债", "L"),
    GRANTS_PAYABLE: ("2209", "其他应付款—应付资助款", "L"),
    "Equity": ("3", "净资产", "E"),
    UNRESTRICTED_NET_ASSETS: ("3101", "非限定性净资产", "E"),
    RESTRICTED_NET_ASSETS: ("3102", "限定性净资产", "E"),
    "Income": ("4", "收入", "R"),
    DONATIONS: ("4101", "捐赠收入", "R"),
    DONATIONS_UNRESTRICTED: ("4101", "捐赠收入—非限定性", "R"),
    DONATIONS_RESTRICTED: ("4101", "捐赠收入—限定性", "R"),
    "Expenses": ("5", "费用", "X"),
    PROGRAM_COST: ("5101", "业务活动成本", "X"),
    GRANTS: ("5101", "业务活动成本—资助", "X"),
    PROGRAM_DIRECT: ("5101", "业务活动成本—直接支出", "X"),
    ADMINISTRATION: ("5201", "管理费用", "X"),
    FUNDRAISING: ("5301", "筹资费用", "X"),
}


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    code: str
    name_zh: str
    kind: str  # hledger's account type: A L E R X C
    leaf: bool


def purpose_component(code: str) -> str:
    """``elderly-care`` → ``Elderly-care`` (purpose codes are lower-case letters, digits and
    dashes, starting with a letter or a digit)."""
    return code[:1].upper() + code[1:]


def grantee_component(name: str) -> str:
    """``G-`` and the name, every character that is not a letter or a digit made ``-``."""
    chars = [
        ch if unicodedata.category(ch)[0] == "L" or unicodedata.category(ch) == "Nd" else "-"
        for ch in name.strip()
    ]
    return "G-" + ("".join(chars).strip("-") or "unnamed")


def donations_account(purpose: str) -> str:
    if not purpose:
        return DONATIONS_UNRESTRICTED
    return f"{DONATIONS_RESTRICTED}:{purpose_component(purpose)}"


def restricted_account(purpose: str) -> str:
    return f"{RESTRICTED_NET_ASSETS}:{purpose_component(purpose)}"


def grant_account(grantee: str) -> str:
    return f"{GRANTS}:{grantee_component(grantee)}"


def money_account(channel_or_method: str, *, tranche: bool) -> str:
    table = METHOD_ACCOUNTS if tranche else CHANNEL_ACCOUNTS
    return table.get(channel_or_method, BANK)


def accounts(purposes: dict[str, str], grantees: list[str]) -> list[Account]:
    """Every account of a fund's export, parents first (``purposes``: code → name)."""
    out = [Account(name, code, zh, kind, leaf=False) for name, (code, zh, kind) in FIXED.items()]
    leaves = {CASH, BANK, IN_KIND, GRANTS_PAYABLE, UNRESTRICTED_NET_ASSETS}
    leaves |= {DONATIONS_UNRESTRICTED, PROGRAM_DIRECT, ADMINISTRATION, FUNDRAISING}
    out = [Account(a.name, a.code, a.name_zh, a.kind, a.name in leaves) for a in out]
    for code, name in sorted(purposes.items()):
        if not code:
            continue  # unrestricted money: accounts of its own above
        out.append(Account(restricted_account(code), "3102", f"限定性净资产—{name}", "E", True))
        out.append(Account(donations_account(code), "4101", f"捐赠收入—限定性—{name}", "R", True))
    seen: set[str] = set()
    for grantee in sorted(grantees):
        account = grant_account(grantee)
        if account not in seen:
            seen.add(account)
            out.append(Account(account, "5101", f"业务活动成本—资助—{grantee}", "X", True))
    return out


# The sign of a journal line's figure change, by kind: its amount is figure delta × sign.
AMOUNT_SIGN: Final = {"disbursement_reversal": -1, "expense_reversal": -1}


def postings(
    kind: str,
    amount_minor: int,
    *,
    purpose: str,
    money: str,
    category: str = "",
    grantee: str = "",
) -> list[tuple[str, int]]:
    """The postings of one movement of ``amount_minor`` (the event's amount, > 0 for a single
    movement; a sum of movements of one kind may be any integer): account → amount, debits
    positive. ``money`` is the money account the movement goes through."""
    a = amount_minor
    lift: list[tuple[str, int]] = []
    if purpose:
        lift = [(restricted_account(purpose), a), (UNRESTRICTED_NET_ASSETS, -a)]
    if kind == "donation":
        return [(money, a), (donations_account(purpose), -a)]
    if kind in ("refund", "donation_reversal"):
        return [(donations_account(purpose), a), (money, -a)]
    if kind == "grant_commitment":
        return [(grant_account(grantee), a), (GRANTS_PAYABLE, -a), *lift]
    if kind == "grant_release":
        return [(GRANTS_PAYABLE, a), (grant_account(grantee), -a), *_negated(lift)]
    if kind == "disbursement":
        return [(GRANTS_PAYABLE, a), (money, -a)]
    if kind == "disbursement_reversal":
        return [(money, a), (GRANTS_PAYABLE, -a)]
    if kind == "expense":
        return [(EXPENSE_ACCOUNTS[category], a), (BANK, -a), *lift]
    if kind == "expense_reversal":
        return [(BANK, a), (EXPENSE_ACCOUNTS[category], -a), *_negated(lift)]
    raise ValueError(f"no postings for a journal line of kind {kind!r}")


def _negated(pairs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(account, -amount) for account, amount in reversed(pairs)]


def closing_account(account: str) -> str | None:
    """Where an account's balance goes when the books are closed before an export's first
    day: balance-sheet accounts keep theirs (None); restricted donation income goes to its
    purpose's restricted net assets; other income and every expense to unrestricted net
    assets."""
    if account.startswith(("Assets:", "Liabilities:")) or account.startswith(RESTRICTED_NET_ASSETS):
        return None
    if account.startswith(DONATIONS_RESTRICTED + ":"):
        return RESTRICTED_NET_ASSETS + account[len(DONATIONS_RESTRICTED) :]
    if account == UNRESTRICTED_NET_ASSETS:
        return None
    return UNRESTRICTED_NET_ASSETS
