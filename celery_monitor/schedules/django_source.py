"""django-celery-beat's entries, read from its tables with plain SQL (``--beat_db``).

The monitor does not import Django: it would need the project's settings module to do so, and
the tables are simple. The layout is django-celery-beat 2.x's (its migrations up to 0019):
``django_celery_beat_periodictask`` with one of ``interval_id``, ``crontab_id``, ``solar_id`` or
``clocked_id`` pointing into the schedule tables, ``args``/``kwargs``/``headers`` as JSON text,
and ``django_celery_beat_periodictasks``, the one row (``ident`` 1) whose ``last_update`` the
``DatabaseScheduler`` watches to reload. Enabling and disabling write what a save in Django's admin
writes: ``enabled`` (a disabled task also loses ``last_run_at``), ``date_changed`` and that row.

SQLite (a path, or ``sqlite:///path``) and PostgreSQL (``postgresql://``) are read; the
database's times are UTC, as Django keeps them with ``USE_TZ``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab, schedule

from celery_monitor.schedules.entries import DJANGO, Entry, SolarEvent, Unreadable

T = "django_celery_beat_"
SELECT = f"""
SELECT t.name, t.task, t.args, t.kwargs, t.queue, t.exchange, t.routing_key, t.headers, t.priority,
       t.expire_seconds, t.one_off, t.enabled, t.last_run_at, t.total_run_count,
       i.every, i.period, c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week, c.timezone,
       s.event, s.latitude, s.longitude, k.clocked_time
FROM {T}periodictask t
LEFT JOIN {T}intervalschedule i ON i.id = t.interval_id
LEFT JOIN {T}crontabschedule c ON c.id = t.crontab_id
LEFT JOIN {T}solarschedule s ON s.id = t.solar_id
LEFT JOIN {T}clockedschedule k ON k.id = t.clocked_id
ORDER BY t.name
"""
PERIODS = frozenset({"days", "hours", "minutes", "seconds", "microseconds"})


class BeatDatabaseError(Exception):
    """The database cannot be reached or read, or an entry is not there."""


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _json(text: Any, default: Any) -> Any:
    if not isinstance(text, str) or not text.strip():
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _schedule(app: Celery, row: dict[str, Any]) -> Any:
    if row["every"] is not None and row["period"] in PERIODS:
        return schedule(timedelta(**{row["period"]: row["every"]}), app=app)
    if row["minute"] is not None:
        return crontab(minute=row["minute"], hour=row["hour"], day_of_month=row["day_of_month"],
                       month_of_year=row["month_of_year"], day_of_week=row["day_of_week"], app=app)
    if row["event"] is not None:
        return SolarEvent(str(row["event"]), float(row["latitude"]), float(row["longitude"]))
    clocked = _time(row["clocked_time"])
    if clocked is not None:
        return clocked
    return Unreadable("unknown")


def _zone(row: dict[str, Any]) -> str | None:
    """A crontab's zone when it is not UTC. Its times are computed in the monitor app's timezone
    (Celery's ``timezone``) all the same: the next run of an entry in another zone is approximate."""
    zone = row["timezone"]
    return str(zone) if row["minute"] is not None and zone and str(zone) != "UTC" else None


def _options(row: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in ("queue", "exchange", "routing_key", "priority"):
        if row[name] not in (None, ""):
            options[name] = row[name]
    headers = _json(row["headers"], {})
    if isinstance(headers, dict) and headers:
        options["headers"] = headers
    if row["expire_seconds"]:
        options["expires"] = int(row["expire_seconds"])
    return options


class DjangoBeatSource:
    def __init__(self, app: Celery, url: str) -> None:
        self.app = app
        self.url = url
        self.postgres = is_postgres(url)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        try:
            if self.postgres:
                import psycopg  # only for a PostgreSQL beat database: psycopg alone is 12 MB resident

                errors = (sqlite3.Error, psycopg.Error)
                with psycopg.connect(self.url, connect_timeout=5) as pg, pg.cursor() as cursor:
                    yield cursor
            else:
                path = sqlite_path(self.url)
                connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)
                try:
                    with connection:
                        yield connection.cursor()
                finally:
                    connection.close()
        except errors as exc:
            raise BeatDatabaseError(f"django-celery-beat's tables cannot be read: {exc}") from None

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def read(self) -> list[Entry]:
        with self._cursor() as cursor:
            cursor.execute(SELECT)
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        return [self._entry(row) for row in rows]

    def _entry(self, row: dict[str, Any]) -> Entry:
        args, kwargs = _json(row["args"], []), _json(row["kwargs"], {})
        last = _time(row["last_run_at"])
        return Entry(DJANGO, str(row["name"]), str(row["task"]), _schedule(self.app, row),
                     args if isinstance(args, list) else [], kwargs if isinstance(kwargs, dict) else {},
                     _options(row), enabled=bool(row["enabled"]),
                     last_run_at=last.timestamp() if last else None,
                     total_run_count=row["total_run_count"], one_off=bool(row["one_off"]),
                     timezone=_zone(row))

    def set_enabled(self, name: str, enabled: bool) -> None:
        now = datetime.now(UTC)
        stamp: Any = now if self.postgres else now.replace(tzinfo=None).isoformat(sep=" ")
        with self._cursor() as cursor:
            cleared = "" if enabled else ", last_run_at = NULL"
            cursor.execute(self._sql(f"UPDATE {T}periodictask SET enabled = ?, date_changed = ?{cleared} "
                                     "WHERE name = ?"), (enabled, stamp, name))
            if cursor.rowcount == 0:
                raise BeatDatabaseError(f"No django-celery-beat entry '{name}'")
            cursor.execute(self._sql(f"UPDATE {T}periodictasks SET last_update = ? WHERE ident = 1"), (stamp,))
            if cursor.rowcount == 0:
                cursor.execute(self._sql(f"INSERT INTO {T}periodictasks (ident, last_update) VALUES (1, ?)"),
                               (stamp,))

    def close(self) -> None:
        """Nothing held: each read opens and closes its own connection."""
