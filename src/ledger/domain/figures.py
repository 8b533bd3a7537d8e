"""The money rule, in one place: a fund's figures, what each money event does to them, and
the two figures everybody asks for.

A fund keeps six running figures in minor units, for its unrestricted money (the purpose
``UNRESTRICTED``) and for each restricted purpose::

    received    donations credited
    refunded    refunds and reversals of donations
    committed   money committed to grants
    released    commitments returned (grant closed or cancelled with money unspent)
    disbursed   tranches paid, net of bounced tranches
    expenses    expenses paid, net of reversed expenses

from which::

    on_hand   = received - refunded - disbursed - expenses
    available = received - refunded - committed + released - expenses
              = on_hand - (committed - released - disbursed)     (committed, not yet paid)

``available`` never goes below zero, and no figure of a fund's totals goes above
``FIGURE_MINOR_MAX`` (see there). Each of the Fund's money events moves exactly one
figure (``EFFECTS``, by event name); everything that adds figures up — the aggregate, every
read model, the queries and reports, the offline verifier — applies this table and these
formulas, and writes them nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Final

UNRESTRICTED: Final = ""

# The bound on every running figure, in minor units: each of the six figures of a fund's
# totals (so of each purpose, of each month's flows, of a grant: they are parts of them),
# and with them the journal's running balance (at most what was received). Every store and
# export holds it exactly: SQLite INTEGER and PostgreSQL BIGINT hold 2^63 - 1 =
# 9_223_372_036_854_775_807 (about 9.2 * 10^18), and the sums the read models and reports
# make of these figures (spending = disbursed + expenses, on_hand, available) stay below
# 2 * 10^17: more than 40 times inside. 10^17 minor units is 10^15 yuan for CNY (10^17
# yen for JPY): a hundred entries of the largest amount one entry may carry
# (``ledger.domain.money.AMOUNT_MINOR_MAX``, 10^15). A command that would take a figure
# past it is refused (``FigureLimitReached``, 409) and records nothing.
FIGURE_MINOR_MAX: Final = 10**17
INT64_MAX: Final = 2**63 - 1
FIGURE_NAMES: Final = ("received", "refunded", "committed", "released", "disbursed", "expenses")
DERIVED_NAMES: Final = ("on_hand", "available")
EXPENSE_CATEGORIES: Final = ("program", "administration", "fundraising")

# How much of each figure counts in the two derived figures (the formulas above).
ON_HAND_WEIGHTS: Final[Mapping[str, int]] = {
    "received": 1,
    "refunded": -1,
    "committed": 0,
    "released": 0,
    "disbursed": -1,
    "expenses": -1,
}
AVAILABLE_WEIGHTS: Final[Mapping[str, int]] = {
    "received": 1,
    "refunded": -1,
    "committed": -1,
    "released": 1,
    "disbursed": 0,
    "expenses": -1,
}


@dataclass(frozen=True, slots=True)
class Effect:
    """What one money event does: ``figure`` changes by ``sign`` × its ``amount_minor``."""

    figure: str
    sign: int

    @property
    def on_hand_sign(self) -> int:
        """How the event's amount changes the money on hand (-1, 0 or 1)."""
        return self.sign * ON_HAND_WEIGHTS[self.figure]

    @property
    def available_sign(self) -> int:
        """How the event's amount changes the available money (-1, 0 or 1)."""
        return self.sign * AVAILABLE_WEIGHTS[self.figure]


# The Fund's money events, by event class name (``Fund.DonationCredited``, ...).
EFFECTS: Final[Mapping[str, Effect]] = {
    "DonationCredited": Effect("received", 1),
    "DonationRefundDebited": Effect("refunded", 1),
    "DonationReversalDebited": Effect("refunded", 1),
    "GrantCommitted": Effect("committed", 1),
    "GrantReleased": Effect("released", 1),
    "DisbursementDebited": Effect("disbursed", 1),
    "DisbursementReversalCredited": Effect("disbursed", -1),
    "ExpenseRecorded": Effect("expenses", 1),
    "ExpenseReversed": Effect("expenses", -1),
}
MONEY_EVENTS: Final = tuple(EFFECTS)


def column(name: str) -> str:
    """The name a figure has where its unit must show: ``received`` → ``received_minor``."""
    return f"{name}_minor"


def zero_figures() -> dict[str, int]:
    return dict.fromkeys(FIGURE_NAMES, 0)


def on_hand_of(figures: Mapping[str, int]) -> int:
    """Received and not paid out (refunds, tranches, expenses)."""
    return sum(weight * figures[name] for name, weight in ON_HAND_WEIGHTS.items() if weight)


def available_of(figures: Mapping[str, int]) -> int:
    """On hand, less what is committed to grants and not yet paid."""
    return sum(weight * figures[name] for name, weight in AVAILABLE_WEIGHTS.items() if weight)


def apply_effect(figures: MutableMapping[str, int], event_name: str, amount_minor: int) -> None:
    """Move the figure that the money event ``event_name`` moves."""
    effect = EFFECTS[event_name]
    figures[effect.figure] += effect.sign * amount_minor


def room_left(figure_sets: Iterable[Mapping[str, int]], event_name: str) -> int | None:
    """How much more the money event ``event_name`` may add to a fund whose purposes and
    unrestricted money hold ``figure_sets`` before a figure of its totals passes
    ``FIGURE_MINOR_MAX``; None if the event takes away (it cannot pass it)."""
    effect = EFFECTS[event_name]
    if effect.sign < 0:
        return None
    return FIGURE_MINOR_MAX - sum(figures[effect.figure] for figures in figure_sets)


def with_derived(figures: Mapping[str, int]) -> dict[str, int]:
    """The six figures and the two derived ones, by name."""
    return {
        **{name: figures[name] for name in FIGURE_NAMES},
        "on_hand": on_hand_of(figures),
        "available": available_of(figures),
    }


def total_of(figure_sets: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """The sum of several sets of figures (a fund's purposes and its unrestricted money)."""
    total = zero_figures()
    for figures in figure_sets:
        for name in FIGURE_NAMES:
            total[name] += figures[name]
    return total
