"""One beat entry as every source reads it, and when it is due next.

``schedule`` is Celery's own object (``schedule``, ``crontab``, ``solar``) or, for a
django-celery-beat clocked entry, the aware datetime it runs at once; anything else (a RedBeat
rrule, a custom class) is shown by its class name and never judged for missed runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import BaseSchedule
from celery.schedules import schedule as celery_schedule

APP, DJANGO, REDBEAT = "app", "django", "redbeat"
# Sources whose entries the monitor can change (enable, disable) through the scheduler's own storage.
TOGGLEABLE = frozenset({DJANGO, REDBEAT})
MAX_STEPS = 10_000  # the most occurrences walked when counting missed runs of one entry


@dataclass(slots=True)
class Entry:
    source: str
    name: str
    task: str
    schedule: Any
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    last_run_at: float | None = None  # as the scheduler recorded it (None: it keeps no record, or never ran)
    total_run_count: int | None = None
    one_off: bool = False
    timezone: str | None = None  # a django-celery-beat crontab's own zone, shown beside its words

    @property
    def key(self) -> str:
        return f"{self.source}:{self.name}"


def as_datetime(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def next_after(value: Any, after: float) -> float | None:
    """The first time ``value`` is due after a run at ``after`` (None: never again, or unknown)."""
    if isinstance(value, datetime):
        at = value.timestamp()
        return at if at > after else None
    if not isinstance(value, BaseSchedule):
        return None
    if type(value) is celery_schedule:  # a plain interval: no calendar to consult
        seconds = float(getattr(value, "run_every").total_seconds())  # noqa: B009 - the stubs omit it
        return after + seconds if seconds > 0 else None
    try:
        # crontab and solar answer "how long from now until the next occurrence after last_run_at".
        now = value.now()
        remaining = value.remaining_estimate(value.maybe_make_aware(as_datetime(after)))
    except Exception:  # a schedule Celery cannot compute (a solar event that never happens there)
        return None
    if remaining is None:
        return None
    # Calendar schedules fall on whole seconds; the estimate is off by the time it took to compute.
    return float(round((now + remaining).timestamp())) if isinstance(remaining, timedelta) else None


@dataclass(frozen=True, slots=True)
class SolarEvent:
    """A django-celery-beat solar entry, kept as data: Celery computes solar times only with ephem,
    which the monitor does not need for anything else, so these are shown but never judged."""

    event: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A schedule a source stores in a shape the monitor does not compute (a RedBeat rrule, a custom class)."""

    kind: str
