"""RedBeat's entries, read from Redis as RedBeat lays them out (celery-redbeat 2.x):

- ``<prefix><name>``: a hash per entry, ``definition`` (JSON: name, task, args, kwargs, options,
  schedule, enabled) and ``meta`` (JSON: last_run_at, total_run_count);
- ``<prefix>:schedule``: a sorted set of those keys, scored by the next due time.

Values in the JSON carry ``__type__`` tags (datetime, interval, crontab, rrule). The monitor reads
them itself rather than importing RedBeat, and changes only the ``enabled`` flag of a definition,
leaving every other byte as RedBeat wrote it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import redis
from celery import Celery
from celery.schedules import crontab, schedule

from celery_monitor.schedules.entries import REDBEAT, Entry, Unreadable

DEFAULT_PREFIX = "redbeat:"
CRON_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


class RedBeatError(Exception):
    """Redis cannot be reached, or an entry is not there."""


def _datetime(tagged: dict[str, Any]) -> datetime | None:
    zone = tagged.get("timezone", "UTC")
    try:
        tz: Any = timezone(timedelta(seconds=float(zone))) if isinstance(zone, int | float) else ZoneInfo(str(zone))
        return datetime(int(tagged["year"]), int(tagged["month"]), int(tagged["day"]), int(tagged.get("hour", 0)),
                        int(tagged.get("minute", 0)), int(tagged.get("second", 0)),
                        int(tagged.get("microsecond", 0)), tzinfo=tz)
    except (KeyError, ValueError, TypeError):
        return None


def _schedule(app: Celery, tagged: Any) -> Any:
    if not isinstance(tagged, dict):
        return Unreadable(type(tagged).__name__)
    kind = tagged.get("__type__")
    try:
        if kind == "interval":
            return schedule(timedelta(seconds=float(tagged["every"])), bool(tagged.get("relative")), app=app)
        if kind == "crontab":
            return crontab(**{name: tagged[name] for name in CRON_FIELDS if name in tagged}, app=app)
    except (KeyError, ValueError, TypeError):
        pass
    return Unreadable(str(kind or "unknown"))


def _loads(raw: bytes | str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class RedBeatSource:
    def __init__(self, app: Celery, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.app = app
        self.prefix = prefix or DEFAULT_PREFIX
        self.schedule_key = self.prefix + ":schedule"
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def read(self) -> list[Entry]:
        try:
            keys = [key for key in self.client.zrange(self.schedule_key, 0, -1) if isinstance(key, bytes)]
            with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, "definition", "meta")
                stored = pipe.execute()
        except redis.RedisError as exc:
            raise RedBeatError(f"RedBeat's Redis cannot be read: {exc}") from None
        found = []
        for key, (definition, meta) in zip(keys, stored, strict=True):
            entry = self._entry(key.decode(errors="replace"), _loads(definition), _loads(meta))
            if entry is not None:
                found.append(entry)
        return found

    def _entry(self, key: str, definition: dict[str, Any], meta: dict[str, Any]) -> Entry | None:
        task = definition.get("task")
        if not isinstance(task, str):
            return None
        name = definition.get("name") or key.removeprefix(self.prefix)
        last = meta.get("last_run_at")
        last_at = _datetime(last) if isinstance(last, dict) else None
        args, kwargs, options = definition.get("args"), definition.get("kwargs"), definition.get("options")
        count = meta.get("total_run_count")
        return Entry(REDBEAT, str(name), task, _schedule(self.app, definition.get("schedule")),
                     list(args) if isinstance(args, list) else [],
                     kwargs if isinstance(kwargs, dict) else {}, options if isinstance(options, dict) else {},
                     enabled=definition.get("enabled", True) is not False,
                     last_run_at=last_at.astimezone(UTC).timestamp() if last_at else None,
                     total_run_count=count if isinstance(count, int) else None)

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Flip ``enabled`` in the entry's definition; RedBeat reads it at the entry's next tick."""
        key = self.prefix + name
        try:
            with self.client.pipeline() as pipe:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                raw = pipe.hget(key, "definition")
                definition = _loads(raw)
                if not definition:
                    raise RedBeatError(f"No RedBeat entry '{name}'")
                definition["enabled"] = enabled
                pipe.multi()
                pipe.hset(key, "definition", json.dumps(definition))
                pipe.execute()
        except redis.WatchError:
            raise RedBeatError(f"RedBeat entry '{name}' changed meanwhile; try again") from None
        except redis.RedisError as exc:
            raise RedBeatError(f"RedBeat's Redis cannot be written: {exc}") from None

    def close(self) -> None:
        self.client.close()
