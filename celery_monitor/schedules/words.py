"""A beat schedule in words ("every 30 seconds", "at 07:30 on Monday"), written here rather than
borrowed: the schedules are Celery's own objects and only a handful of cron shapes are common."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from celery.schedules import crontab, schedule, solar

from celery_monitor.schedules.entries import SolarEvent, Unreadable

UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))
DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def duration(seconds: float) -> str:
    """``every`` wording for a period: 'second', '2 seconds', '90 seconds', 'hour', '3 days'."""
    if seconds <= 0:
        return f"{seconds:g} seconds"
    for size, unit in UNITS:
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} seconds"


def _is_any(field: str) -> bool:
    return field.strip() in ("*", "")


def _step(field: str) -> int | None:
    text = field.strip()
    if text.startswith("*/") and text[2:].isdigit():
        return int(text[2:])
    return None


def _number(field: str) -> int | None:
    text = field.strip()
    return int(text) if text.isdigit() else None


def _day_names(field: str) -> str:
    names = []
    for part in field.split(","):
        part = part.strip()
        if part.isdigit() and 0 <= int(part) <= 7:
            names.append(DAYS[int(part) % 7])
        elif "-" in part and all(p.strip().isdigit() for p in part.split("-", 1)):
            start, end = (int(p) % 7 for p in part.split("-", 1))
            names.append(f"{DAYS[start]} to {DAYS[end]}")
        else:
            names.append(part)
    return ", ".join(names)


def _month_names(field: str) -> str:
    return ", ".join(calendar.month_name[int(part)] if part.strip().isdigit() and 1 <= int(part) <= 12 else part
                     for part in field.split(","))


def cron(minute: str, hour: str, day_of_month: str, month_of_year: str, day_of_week: str) -> str:
    """A cron expression in words; shapes it does not know keep their fields, named."""
    minute_step, hour_step = _step(minute), _step(hour)
    at_minute, at_hour = _number(minute), _number(hour)
    if _is_any(minute) and _is_any(hour):
        when = "every minute"
    elif minute_step and _is_any(hour):
        when = f"every {duration(minute_step * 60)}"
    elif at_minute is not None and _is_any(hour):
        when = f"at minute {at_minute} of every hour"
    elif at_minute is not None and hour_step:
        when = f"at minute {at_minute} of every {duration(hour_step * 3600)}"
    elif at_minute is not None and at_hour is not None:
        when = f"at {at_hour:02d}:{at_minute:02d}"
    else:
        when = f"at minute {minute.strip()} of hour {hour.strip()}"
    parts = [when]
    if not _is_any(day_of_week):
        parts.append(f"on {_day_names(day_of_week)}")
    if not _is_any(day_of_month):
        parts.append(f"on day {day_of_month.strip()} of the month")
    if not _is_any(month_of_year):
        parts.append(f"in {_month_names(month_of_year)}")
    return " ".join(parts)


def cron_fields(entry: crontab) -> tuple[str, str, str, str, str]:
    """The five fields as the user wrote them (Celery keeps the originals beside the expanded sets)."""
    fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    minute, hour, day_of_month, month_of_year, day_of_week = (str(getattr(entry, f"_orig_{name}")) for name in fields)
    return minute, hour, day_of_month, month_of_year, day_of_week


def expression(entry: crontab) -> str:
    minute, hour, day_of_month, month_of_year, day_of_week = cron_fields(entry)
    return f"{minute} {hour} {day_of_month} {month_of_year} {day_of_week}"


def describe(value: object) -> str:
    """Any schedule a beat entry may hold: interval, crontab, solar or a clocked time (a datetime)."""
    if isinstance(value, crontab):
        return cron(*cron_fields(value))
    if isinstance(value, solar):
        return f"at {value.event.replace('_', ' ')} ({value.lat:g}, {value.lon:g})"
    if isinstance(value, SolarEvent):
        return f"at {value.event.replace('_', ' ')} ({value.latitude:g}, {value.longitude:g})"
    if isinstance(value, Unreadable):
        return f"a {value.kind} schedule"
    if isinstance(value, schedule):
        return f"every {duration(getattr(value, 'run_every').total_seconds())}"  # noqa: B009 - not in the stubs
    if isinstance(value, datetime):
        return f"once, at {value.isoformat(sep=' ', timespec='seconds')}"
    if isinstance(value, timedelta):
        return f"every {duration(value.total_seconds())}"
    return type(value).__name__


def kind(value: object) -> str:
    """interval, crontab, solar, clocked, or the class name of another (a custom schedule, an rrule)."""
    if isinstance(value, crontab):
        return "crontab"
    if isinstance(value, solar | SolarEvent):
        return "solar"
    if isinstance(value, Unreadable):
        return value.kind
    if isinstance(value, schedule):
        return "interval"
    if isinstance(value, datetime):
        return "clocked"
    return type(value).__name__
