"""When a grant's progress must be published: the disclosure rule, as one pure function.

Charity Law art. 79 (and the 2026 Measures): a project that runs **over six months** publishes
an update **at least every three months**, and within **three months of its end** a full
account, including what happened to money left over. Here a grant's project runs from the
day it was committed (its money set aside) to the day it was closed or cancelled; a progress
note (``Grant.ProgressRecorded``) is an update, a note marked ``final`` on an ended grant is
its final account. ``disclosure_due(...)`` says, on a given day::

    not-started   never committed (proposed or rejected): nothing to publish
    up-to-date    running, and the last update (or the start) is at most three months old
    due           running, the last update is over three months old, but the grant has not
                  yet run six months: only a grant that runs longer must publish, so this
                  is a reminder; or: ended, and the final account is not yet late
    overdue       running over six months with the last update over three months old; or
                  ended over three months ago without a final account
    done          ended, and its final account is published

Decisions where the law is silent or loose:

- **Every ended grant owes a final account** within three months, however short it ran: the
  2026 Measures ask what happened to left-over money at the end of every project, and one
  note costs little. A cancelled grant owes one too (what was paid, what came back).
- Once a grant has ended only its final account is asked for; missed updates before the end
  are not listed again (the final account covers the whole project).
- "Three months" are calendar months: 30 November + 3 months is 28 (or 29) February. A
  deadline is met on its day; the day after, it is late.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

UPDATE_EVERY_MONTHS = 3
LONG_PROJECT_MONTHS = 6  # a project over this long must publish updates
FINAL_ACCOUNT_WITHIN_MONTHS = 3

NOT_STARTED = "not-started"
UP_TO_DATE = "up-to-date"
DUE = "due"
OVERDUE = "overdue"
DONE = "done"
DISCLOSURE_STATUSES = (NOT_STARTED, UP_TO_DATE, DUE, OVERDUE, DONE)


@dataclass(frozen=True, slots=True)
class Disclosure:
    """What a grant must publish, on a day.

    ``update_due_on``: the last day for the next progress update (running grants only);
    ``final_account_due_on``: the last day for the final account (ended grants without one).
    """

    status: str
    update_due_on: date | None = None
    final_account_due_on: date | None = None

    @property
    def overdue(self) -> bool:
        return self.status == OVERDUE


def add_months(day: date, months: int) -> date:
    """The same day ``months`` calendar months later, or that month's last day."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def disclosure_due(
    *,
    started_on: date | None,
    ended_on: date | None,
    updates: Iterable[date],
    final_accounts: Iterable[date],
    on: date,
) -> Disclosure:
    """The disclosure a grant owes ``on`` a day.

    ``started_on``: when it was committed (None: never); ``ended_on``: when it was closed or
    cancelled (None: not yet); ``updates``: the dates of its progress notes (final ones
    included); ``final_accounts``: the dates of its notes marked final. Notes and an end
    dated after ``on`` are not counted: the answer is the one that day.
    """
    if started_on is None or on < started_on:
        return Disclosure(NOT_STARTED)
    if ended_on is not None and ended_on <= on:
        if any(day <= on for day in final_accounts):
            return Disclosure(DONE)
        due = add_months(ended_on, FINAL_ACCOUNT_WITHIN_MONTHS)
        return Disclosure(OVERDUE if on > due else DUE, final_account_due_on=due)
    last = max((day for day in updates if started_on <= day <= on), default=started_on)
    due = add_months(last, UPDATE_EVERY_MONTHS)
    if on <= due:
        status = UP_TO_DATE
    elif on > add_months(started_on, LONG_PROJECT_MONTHS):
        status = OVERDUE
    else:
        status = DUE
    return Disclosure(status, update_due_on=due)
