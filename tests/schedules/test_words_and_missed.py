"""Schedules in words, and the missed-run judgement on a clock the test holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from celery.schedules import crontab, schedule

from celery_monitor.schedules import words
from celery_monitor.schedules.entries import APP, REDBEAT, Entry, SolarEvent, Unreadable, next_after
from celery_monitor.schedules.missed import MissedRuns

APP_ = Celery("words", set_as_current=False)


@pytest.mark.parametrize(("value", "expected"), [
    (schedule(timedelta(seconds=1), app=APP_), "every second"),
    (schedule(timedelta(seconds=30), app=APP_), "every 30 seconds"),
    (schedule(timedelta(minutes=90), app=APP_), "every 90 minutes"),
    (schedule(timedelta(hours=2), app=APP_), "every 2 hours"),
    (schedule(timedelta(seconds=2.5), app=APP_), "every 2.5 seconds"),
    (crontab(app=APP_), "every minute"),
    (crontab(minute="*/15", app=APP_), "every 15 minutes"),
    (crontab(minute=0, app=APP_), "at minute 0 of every hour"),
    (crontab(minute=5, hour="*/6", app=APP_), "at minute 5 of every 6 hours"),
    (crontab(minute=30, hour=7, day_of_week="1-5", app=APP_), "at 07:30 on Monday to Friday"),
    (crontab(minute=0, hour=0, day_of_month=1, month_of_year="1,7", app=APP_),
     "at 00:00 on day 1 of the month in January, July"),
    (crontab(minute="0,30", hour="9-17", app=APP_), "at minute 0,30 of hour 9-17"),
    (SolarEvent("sunset", 51.5, -0.12), "at sunset (51.5, -0.12)"),
    (datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), "once, at 2030-01-02 03:04:05+00:00"),
    (Unreadable("rrule"), "a rrule schedule"),
])  # fmt: skip
def test_schedules_are_described_in_words(value: object, expected: str) -> None:
    assert words.describe(value) == expected


def test_calendar_schedules_are_due_at_their_next_occurrence() -> None:
    at = datetime(2026, 3, 2, 7, 10, tzinfo=UTC).timestamp()  # a Monday, 07:10
    assert next_after(crontab(minute="*/15", app=APP_), at) == datetime(2026, 3, 2, 7, 15, tzinfo=UTC).timestamp()
    assert next_after(schedule(timedelta(seconds=2), app=APP_), at) == at + 2
    assert next_after(datetime(2020, 1, 1, tzinfo=UTC), at) is None, "a clocked time past is never due again"
    assert next_after(SolarEvent("sunrise", 0, 0), at) is None, "solar entries are not judged"


def every(seconds: float, enabled: bool = True, source: str = APP) -> Entry:
    return Entry(source, "tick", "tests.add", schedule(timedelta(seconds=seconds), app=APP_), enabled=enabled)


def test_a_run_late_by_more_than_the_tolerance_is_missed_and_each_due_time_counts_once() -> None:
    missed = MissedRuns(tolerance=1.0, started_at=1000.0)
    noticed: list[int] = []
    missed.listeners.append(lambda entry, verdict: noticed.append(verdict.missed_runs))
    entry = every(10)
    assert missed.judge(entry, 1000.0, 1010.5).missed is False  # due at 1010, within the tolerance
    verdict = missed.judge(entry, 1000.0, 1011.5)
    assert verdict.missed is True and verdict.missed_runs == 1 and verdict.due_at == 1010.0
    assert missed.judge(entry, 1000.0, 1015.0).missed_runs == 1
    missed.pass_done({entry.key})
    assert missed.totals() == {"tick": 1}, "judging the same miss again does not count it again"
    assert missed.judge(entry, 1000.0, 1021.5).missed_runs == 2
    assert missed.totals() == {"tick": 2} and noticed == [1, 2]
    # A run arrives: on time again, and the count stays (a counter).
    assert missed.judge(entry, 1021.0, 1022.0).missed is False
    assert missed.totals() == {"tick": 2}


def test_runs_before_the_monitor_watched_prove_nothing_and_disabled_entries_are_not_judged() -> None:
    missed = MissedRuns(tolerance=1.0, started_at=5000.0)
    entry = every(10)
    # The last run is an hour old, but the monitor has watched only since 5000: due at 5010.
    assert missed.judge(entry, 1400.0, 5005.0).missed is False
    assert missed.judge(entry, 1400.0, 5011.5).missed_runs == 1
    assert missed.judge(every(10, enabled=False), None, 9000.0).due_at is None
    missed.pass_done({entry.key})
    # An entry seen after the first pass (new, or enabled again) is watched from then on.
    fresh = Entry(REDBEAT, "new", "tests.add", schedule(timedelta(seconds=10), app=APP_))
    assert missed.judge(fresh, None, 9000.0).missed is False
    assert missed.judge(fresh, None, 9011.5).missed is True
