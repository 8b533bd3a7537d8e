"""The disclosure rule (Charity Law art. 79): a grant running over six months publishes an
update at least every three months, and every ended grant a final account within three
months of its end."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.domain.disclosure import (
    DONE,
    DUE,
    NOT_STARTED,
    OVERDUE,
    UP_TO_DATE,
    Disclosure,
    add_months,
    disclosure_due,
)

START = date(2026, 1, 15)


def due(
    on: date,
    *,
    started_on: date | None = START,
    ended_on: date | None = None,
    updates: tuple[date, ...] = (),
    finals: tuple[date, ...] = (),
) -> Disclosure:
    return disclosure_due(
        started_on=started_on, ended_on=ended_on, updates=updates, final_accounts=finals, on=on
    )


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 1, 15), 3, date(2026, 4, 15)),
        (date(2025, 11, 30), 3, date(2026, 2, 28)),  # clamped to the month's end
        (date(2027, 11, 30), 3, date(2028, 2, 29)),  # a leap year
        (date(2026, 10, 31), 3, date(2027, 1, 31)),  # over the year's end
        (date(2026, 8, 31), 6, date(2027, 2, 28)),
        (date(2026, 12, 1), 12, date(2027, 12, 1)),
    ],
)
def test_months_are_calendar_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_a_grant_never_committed_owes_nothing() -> None:
    assert due(date(2026, 11, 1), started_on=None) == Disclosure(NOT_STARTED)
    assert due(date(2026, 1, 14)).status == NOT_STARTED  # the day before it started


def test_a_running_grant_is_up_to_date_for_three_months_from_its_start() -> None:
    assert due(START) == Disclosure(UP_TO_DATE, update_due_on=date(2026, 4, 15))
    assert due(date(2026, 4, 15)).status == UP_TO_DATE  # the deadline's own day


def test_past_three_months_an_update_is_due_but_not_yet_binding() -> None:
    # Only a grant that runs over six months must publish updates: until then, a reminder.
    assert due(date(2026, 4, 16)) == Disclosure(DUE, update_due_on=date(2026, 4, 15))
    assert due(date(2026, 7, 15)).status == DUE  # six months exactly: not over six months


def test_a_grant_running_over_six_months_without_an_update_is_overdue() -> None:
    assert due(date(2026, 7, 16)) == Disclosure(OVERDUE, update_due_on=date(2026, 4, 15))


def test_each_update_moves_the_next_deadline_three_months_on() -> None:
    updates = (date(2026, 4, 1), date(2026, 6, 30))
    assert due(date(2026, 9, 30), updates=updates) == Disclosure(
        UP_TO_DATE, update_due_on=date(2026, 9, 30)
    )
    assert due(date(2026, 10, 1), updates=updates).status == OVERDUE


def test_updates_after_the_day_asked_about_do_not_count() -> None:
    later = (date(2026, 8, 1),)
    assert due(date(2026, 7, 20), updates=later).status == OVERDUE


def test_an_update_before_the_start_does_not_count() -> None:
    assert due(date(2026, 7, 20), updates=(date(2026, 1, 1),)).status == OVERDUE


def test_an_ended_grant_owes_a_final_account_within_three_months() -> None:
    end = date(2026, 3, 31)
    assert due(end, ended_on=end) == Disclosure(DUE, final_account_due_on=date(2026, 6, 30))
    assert due(date(2026, 6, 30), ended_on=end).status == DUE
    assert due(date(2026, 7, 1), ended_on=end) == Disclosure(
        OVERDUE, final_account_due_on=date(2026, 6, 30)
    )


def test_an_ended_grant_with_its_final_account_is_done() -> None:
    end = date(2026, 3, 31)
    assert due(date(2027, 1, 1), ended_on=end, finals=(date(2026, 5, 1),)) == Disclosure(DONE)
    # a final account recorded later than the day asked about does not count yet
    assert due(date(2026, 7, 2), ended_on=end, finals=(date(2026, 8, 1),)).status == OVERDUE


def test_after_its_end_missed_updates_are_not_asked_for_again() -> None:
    end = date(2026, 12, 1)  # ran over ten months without an update
    assert due(date(2026, 12, 2), ended_on=end).status == DUE


def test_an_end_after_the_day_asked_about_is_not_counted() -> None:
    assert due(date(2026, 2, 1), ended_on=date(2026, 3, 1)).status == UP_TO_DATE
