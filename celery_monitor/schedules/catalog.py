"""Every beat entry the monitor can see, refreshed by a background loop, with its runs and misses.

Sources: the app's ``beat_schedule`` (``-A``), django-celery-beat's tables (``--beat_db``) and
RedBeat's keys (``--redbeat_url``, else the app's ``redbeat_redis_url``). django-celery-beat and
RedBeat copy the app's static entries into their own storage, so an app entry of the same name
as one of theirs is shown once, as theirs. Entry arguments are task data: they leave through the
redaction rules (``--redact``, ``format_task``) like a worker's inspect replies.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery import Celery

from celery_monitor.auth.redact import Redactor, redact_request
from celery_monitor.schedules import app_source, words
from celery_monitor.schedules.django_source import BeatDatabaseError, DjangoBeatSource
from celery_monitor.schedules.entries import APP, DJANGO, REDBEAT, TOGGLEABLE, Entry, next_after
from celery_monitor.schedules.missed import MissedRuns, Verdict
from celery_monitor.schedules.redbeat_source import DEFAULT_PREFIX, RedBeatError, RedBeatSource
from celery_monitor.schedules.runs import Page, last_run
from celery_monitor.supervision import Loop

log = logging.getLogger(__name__)

# apply_async options an entry's run-now passes on (what beat itself would send with).
RUN_OPTIONS = ("queue", "exchange", "routing_key", "priority", "headers", "expires", "soft_time_limit", "time_limit")


class ScheduleError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    beat_db: str = ""
    redbeat_url: str = ""
    redbeat_key_prefix: str = ""
    tolerance: float = 60.0
    interval: float = 1.0


class Schedules:
    def __init__(self, app: Celery, config: ScheduleConfig, page: Page, redactor: Redactor | None,
                 started_at: float) -> None:
        self.app = app
        self.config = config
        self.page = page
        self.redactor = redactor
        self.django = DjangoBeatSource(app, config.beat_db) if config.beat_db else None
        redbeat_url = config.redbeat_url or str(app.conf.get("redbeat_redis_url") or "")
        prefix = config.redbeat_key_prefix or str(app.conf.get("redbeat_key_prefix") or "") or DEFAULT_PREFIX
        self.redbeat = RedBeatSource(app, redbeat_url, prefix) if redbeat_url else None
        self.missed = MissedRuns(config.tolerance, started_at)
        self.loop = Loop("schedules", stall_after=config.interval + 120)
        self._views: list[dict[str, Any]] = []
        self._errors: dict[str, str] = {}
        self._refreshed_at: float | None = None
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()  # the loop and a control action's refresh take turns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedules", daemon=True)

    # -- the loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for source in (self.django, self.redbeat):
            if source is not None:
                source.close()

    def _run(self) -> None:
        self.loop.run(self.refresh, self._stop, self.config.interval)

    def _read(self) -> tuple[list[Entry], dict[str, str]]:
        entries: dict[str, Entry] = {}
        errors: dict[str, str] = {}
        for entry in app_source.read(self.app):
            entries[entry.name] = entry
        for name, source in ((DJANGO, self.django), (REDBEAT, self.redbeat)):
            if source is None:
                continue
            try:
                found = source.read()
            except (BeatDatabaseError, RedBeatError) as exc:
                errors[name] = str(exc)
                continue
            for entry in found:
                entries[entry.name] = entry  # the scheduler's own record of a static entry wins
        return sorted(entries.values(), key=lambda e: (e.name, e.source)), errors

    def refresh(self) -> None:
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        entries, errors = self._read()
        now = time.time()
        views = []
        for entry in entries:
            shown, newest = last_run(self.page, entry.task, entry.last_run_at)
            with self.loop.guard(f"missed runs of {entry.name}"):
                verdict = self.missed.judge(entry, newest, now)
            views.append(self._view(entry, shown, verdict))
        self.missed.pass_done({entry.key for entry in entries})
        with self._lock:
            self._views, self._errors, self._refreshed_at = views, errors, now

    # -- what readers get -----------------------------------------------------------------------

    def _view(self, entry: Entry, shown: dict[str, Any] | None, verdict: Verdict) -> dict[str, Any]:
        call = redact_request(self.redactor, {"args": entry.args, "kwargs": entry.kwargs, "name": entry.task})
        value = entry.schedule
        next_run = None
        if entry.enabled:
            ran = entry.last_run_at if entry.last_run_at is not None else (shown or {}).get("time")
            next_run = verdict.due_at if ran is None else next_after(value, ran)
        return {
            "key": entry.key, "source": entry.source, "name": entry.name, "task": entry.task,
            "schedule": {"kind": words.kind(value),
                         "words": words.describe(value) + (f" ({entry.timezone})" if entry.timezone else ""),
                         "cron": words.expression(value) if words.kind(value) == "crontab" else None},
            "args": call["args"], "kwargs": call["kwargs"],
            "queue": entry.options.get("queue"),
            "enabled": entry.enabled, "one_off": entry.one_off,
            "toggleable": entry.source in TOGGLEABLE,
            "next_run": next_run, "scheduler_last_run": entry.last_run_at,
            "total_run_count": entry.total_run_count, "last_run": shown,
            "missed": verdict.missed, "missed_runs": verdict.missed_runs, "due_at": verdict.due_at,
        }

    def listing(self) -> dict[str, Any]:
        with self._lock:
            views, errors, refreshed = list(self._views), dict(self._errors), self._refreshed_at
        sources: dict[str, dict[str, Any]] = {
            APP: {"configured": True}, DJANGO: {"configured": self.django is not None},
            REDBEAT: {"configured": self.redbeat is not None}}
        for name, error in errors.items():
            sources[name]["error"] = error
        return {"entries": views, "sources": sources, "tolerance": self.config.tolerance,
                "refreshed_at": refreshed}

    def missed_totals(self) -> dict[str, int]:
        return self.missed.totals()

    # -- control ----------------------------------------------------------------------------------

    def find(self, key: str) -> Entry:
        """The entry ``source:name`` as its source holds it now (not the cached view)."""
        source, _, name = key.partition(":")
        if not name or source not in (APP, DJANGO, REDBEAT):
            raise ScheduleError(400, f"Invalid entry '{key}': expected app:<name>, django:<name> or redbeat:<name>")
        if source == APP:
            found = app_source.read(self.app)
        else:
            reader = self.django if source == DJANGO else self.redbeat
            if reader is None:
                raise ScheduleError(404, f"No {source} schedule is configured")
            try:
                found = reader.read()
            except (BeatDatabaseError, RedBeatError) as exc:
                raise ScheduleError(503, str(exc)) from None
        for entry in found:
            if entry.name == name:
                return entry
        raise ScheduleError(404, f"Unknown schedule entry '{key}'")

    def set_enabled(self, key: str, enabled: bool) -> dict[str, Any]:
        entry = self.find(key)
        source = self.django if entry.source == DJANGO else self.redbeat if entry.source == REDBEAT else None
        if source is None:
            raise ScheduleError(409, f"'{key}' comes from the app's beat_schedule, which only its code can change")
        try:
            source.set_enabled(entry.name, enabled)
        except (BeatDatabaseError, RedBeatError) as exc:
            raise ScheduleError(503, str(exc)) from None
        self._refresh_soon()
        return {"message": f"{'Enabled' if enabled else 'Disabled'} '{key}'", "enabled": enabled}

    def run_now(self, key: str) -> dict[str, Any]:
        """Send the entry's task now, with its arguments and options, as beat would (its schedule is untouched)."""
        entry = self.find(key)
        options = {name: entry.options[name] for name in RUN_OPTIONS if name in entry.options}
        try:
            result = self.app.send_task(entry.task, args=entry.args, kwargs=entry.kwargs, **options)
        except Exception as exc:  # the broker refused or is away
            raise ScheduleError(503, f"Could not send '{entry.task}': {type(exc).__name__}: {exc}") from None
        self._refresh_soon()
        return {"message": f"Sent '{entry.task}' for '{key}'", "task-id": result.id}

    def _refresh_soon(self) -> None:
        """After a change, show it without waiting for the next pass."""
        with self.loop.guard("refresh after a change"):
            self.refresh()
