"""Every beat entry the monitor can see, refreshed by a background loop, with its runs and misses.

Sources: the app's ``beat_schedule`` (``-A``), django-celery-beat's tables (``--beat_db``) and
RedBeat's keys (``--redbeat_url``, else the app's ``redbeat_redis_url``). django-celery-beat and
RedBeat copy the app's static entries into their own storage, so an app entry of the same name
as one of theirs is shown once, as theirs. Entry arguments are task data: they leave through the
redaction rules (``--redact``, ``format_task``) like a worker's inspect replies.

With several clusters (``--clusters``), each has its own beat: the app's entries, and the
``beat_db`` and ``redbeat_url`` its entry names. An entry's runs are its cluster's tasks; its key
is qualified by its cluster like a worker's name (``prod:django:nightly``; ``default`` keeps the
bare ``source:name``), and its run-now goes through its cluster's broker.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from celery import Celery

from celery_monitor import clusters
from celery_monitor.auth.redact import Redactor, redact_request
from celery_monitor.schedules import app_source, words
from celery_monitor.schedules.django_source import BeatDatabaseError, DjangoBeatSource
from celery_monitor.schedules.entries import APP, DJANGO, REDBEAT, TOGGLEABLE, Entry, next_after
from celery_monitor.schedules.missed import MissedRuns, Verdict
from celery_monitor.schedules.redbeat_source import DEFAULT_PREFIX, RedBeatError, RedBeatSource
from celery_monitor.schedules.runs import Page, last_run
from celery_monitor.store.query import TaskQuery
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


@dataclass(frozen=True, slots=True)
class BeatOf:
    """Where one cluster's beat entries are: its app (``beat_schedule``, and the broker a run-now
    goes to), django-celery-beat's database, RedBeat's Redis (empty: none)."""

    cluster: str
    app: Celery
    beat_db: str = ""
    redbeat_url: str = ""

    def __repr__(self) -> str:
        """Only the cluster: the URLs carry passwords."""
        return f"BeatOf({self.cluster!r})"


@dataclass(slots=True)
class ClusterBeat:
    """One cluster's sources, opened."""

    cluster: str
    app: Celery
    django: DjangoBeatSource | None
    redbeat: RedBeatSource | None
    page: Page  # the history's tasks, narrowed to this cluster's when there are several

    def qualified(self, key: str) -> str:
        return clusters.qualified(self.cluster, key)


class Schedules:
    def __init__(self, app: Celery, config: ScheduleConfig, page: Page, redactor: Redactor | None,
                 started_at: float, beats: list[BeatOf] | None = None) -> None:
        """``beats``: each cluster's sources (None: one cluster, ``default``, as ``config`` names them)."""
        self.config = config
        self.page = page
        self.redactor = redactor
        beats = beats or [BeatOf(clusters.DEFAULT, app, config.beat_db, config.redbeat_url)]
        several = len(beats) > 1
        self.beats = {beat.cluster: self._open(beat, several) for beat in beats}
        self.missed = MissedRuns(config.tolerance, started_at)
        self.loop = Loop("schedules", stall_after=config.interval + 120)
        self._views: list[dict[str, Any]] = []
        self._errors: dict[str, dict[str, str]] = {}
        self._refreshed_at: float | None = None
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()  # the loop and a control action's refresh take turns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedules", daemon=True)

    def _open(self, beat: BeatOf, several: bool) -> ClusterBeat:
        app = beat.app
        # The app's RedBeat settings are every cluster's (one -A): with several, each names its own.
        redbeat_url = beat.redbeat_url or ("" if several else str(app.conf.get("redbeat_redis_url") or ""))
        prefix = self.config.redbeat_key_prefix or str(app.conf.get("redbeat_key_prefix") or "") or DEFAULT_PREFIX
        page = self.page
        if several:
            def page(query: TaskQuery, cluster: str = beat.cluster) -> list[dict[str, Any]]:
                return self.page(replace(query, clusters=[cluster]))
        return ClusterBeat(beat.cluster, app, DjangoBeatSource(app, beat.beat_db) if beat.beat_db else None,
                           RedBeatSource(app, redbeat_url, prefix) if redbeat_url else None, page)

    # -- the loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for beat in self.beats.values():
            for source in (beat.django, beat.redbeat):
                if source is not None:
                    source.close()

    def _run(self) -> None:
        self.loop.run(self.refresh, self._stop, self.config.interval)

    @staticmethod
    def _read(beat: ClusterBeat) -> tuple[list[Entry], dict[str, str]]:
        entries: dict[str, Entry] = {}
        errors: dict[str, str] = {}
        for entry in app_source.read(beat.app):
            entries[entry.name] = entry
        for name, source in ((DJANGO, beat.django), (REDBEAT, beat.redbeat)):
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
        now = time.time()
        views = []
        errors: dict[str, dict[str, str]] = {}
        keys: set[str] = set()
        for beat in self.beats.values():
            entries, errors[beat.cluster] = self._read(beat)
            for entry in entries:
                key = beat.qualified(entry.key)
                shown, newest = last_run(beat.page, entry.task, entry.last_run_at)
                with self.loop.guard(f"missed runs of {key}"):
                    verdict = self.missed.judge(entry, newest, now, key, (beat.cluster, entry.name))
                views.append(self._view(beat.cluster, key, entry, shown, verdict))
                keys.add(key)
        self.missed.pass_done(keys)
        with self._lock:
            self._views, self._errors, self._refreshed_at = views, errors, now

    # -- what readers get -----------------------------------------------------------------------

    def _view(self, cluster: str, key: str, entry: Entry, shown: dict[str, Any] | None,
              verdict: Verdict) -> dict[str, Any]:
        call = redact_request(self.redactor, {"args": entry.args, "kwargs": entry.kwargs, "name": entry.task})
        value = entry.schedule
        next_run = None
        if entry.enabled:
            ran = entry.last_run_at if entry.last_run_at is not None else (shown or {}).get("time")
            next_run = verdict.due_at if ran is None else next_after(value, ran)
        return {
            "key": key, "cluster": cluster, "source": entry.source, "name": entry.name, "task": entry.task,
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

    def listing(self, only: list[str] | None = None) -> dict[str, Any]:
        """Every entry (of the ``only`` clusters, if given), and each source's state: ``sources`` as
        with one cluster (configured in any, errors of each, prefixed with their cluster when
        several), and ``clusters``, each cluster's own."""
        with self._lock:
            views, errors, refreshed = list(self._views), dict(self._errors), self._refreshed_at
        chosen = [beat for name, beat in self.beats.items() if not only or name in only]
        per_cluster = {beat.cluster: self._sources(beat, errors.get(beat.cluster, {})) for beat in chosen}
        prefix = len(self.beats) > 1
        sources: dict[str, dict[str, Any]] = {}
        for name in (APP, DJANGO, REDBEAT):
            states = [(cluster, found[name]) for cluster, found in per_cluster.items()]
            sources[name] = {"configured": name == APP or any(state["configured"] for _, state in states)}
            errors_of = [f"{cluster}: {state['error']}" if prefix else state["error"]
                         for cluster, state in states if "error" in state]
            if errors_of:
                sources[name]["error"] = "; ".join(errors_of)
        if only:
            views = [view for view in views if view["cluster"] in only]
        return {"entries": views, "sources": sources, "clusters": per_cluster, "tolerance": self.config.tolerance,
                "refreshed_at": refreshed}

    @staticmethod
    def _sources(beat: ClusterBeat, errors: dict[str, str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {
            APP: {"configured": True}, DJANGO: {"configured": beat.django is not None},
            REDBEAT: {"configured": beat.redbeat is not None}}
        for name, error in errors.items():
            found[name]["error"] = error
        return found

    def missed_totals(self) -> dict[tuple[str, str], int]:
        """Missed runs counted since the start, per (cluster, entry name)."""
        return {counted: total for counted, total in self.missed.totals().items() if isinstance(counted, tuple)}

    # -- control ----------------------------------------------------------------------------------

    def cluster_of(self, key: str) -> str:
        """The cluster of an entry, by its key in this monitor."""
        return clusters.split_qualified(key, self.beats)[0]

    def find(self, key: str) -> tuple[ClusterBeat, Entry]:
        """The entry ``[cluster:]source:name`` as its source holds it now (not the cached view)."""
        cluster, bare = clusters.split_qualified(key, self.beats)
        beat = self.beats.get(cluster)
        if beat is None:
            raise ScheduleError(404, f"Unknown schedule entry '{key}'")
        source, _, name = bare.partition(":")
        if not name or source not in (APP, DJANGO, REDBEAT):
            raise ScheduleError(400, f"Invalid entry '{key}': expected app:<name>, django:<name> or redbeat:<name>"
                                + (", after its cluster's name and ':'" if len(self.beats) > 1 else ""))
        if source == APP:
            found = app_source.read(beat.app)
        else:
            reader = beat.django if source == DJANGO else beat.redbeat
            if reader is None:
                raise ScheduleError(404, f"No {source} schedule is configured"
                                    + (f" for the cluster '{cluster}'" if len(self.beats) > 1 else ""))
            try:
                found = reader.read()
            except (BeatDatabaseError, RedBeatError) as exc:
                raise ScheduleError(503, str(exc)) from None
        for entry in found:
            if entry.name == name:
                return beat, entry
        raise ScheduleError(404, f"Unknown schedule entry '{key}'")

    def set_enabled(self, key: str, enabled: bool) -> dict[str, Any]:
        beat, entry = self.find(key)
        source = beat.django if entry.source == DJANGO else beat.redbeat if entry.source == REDBEAT else None
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
        beat, entry = self.find(key)
        options = {name: entry.options[name] for name in RUN_OPTIONS if name in entry.options}
        try:
            result = beat.app.send_task(entry.task, args=entry.args, kwargs=entry.kwargs, **options)
        except Exception as exc:  # the broker refused or is away
            raise ScheduleError(503, f"Could not send '{entry.task}': {type(exc).__name__}: {exc}") from None
        self._refresh_soon()
        return {"message": f"Sent '{entry.task}' for '{key}'", "task-id": result.id}

    def _refresh_soon(self) -> None:
        """After a change, show it without waiting for the next pass."""
        with self.loop.guard("refresh after a change"):
            self.refresh()
