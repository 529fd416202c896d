"""The app's own ``beat_schedule`` (``-A``): what ``celery beat`` runs with its default scheduler.

The default scheduler keeps its last-run times in a shelve file on the beat's host, out of the
monitor's reach: these entries' runs are known only from the tasks the monitor sees.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import maybe_schedule

from celery_monitor.schedules.entries import APP, Entry


def _entry(app: Celery, name: str, spec: Any) -> Entry | None:
    if not isinstance(spec, dict) or not isinstance(spec.get("task"), str):
        return None
    value = maybe_schedule(spec["schedule"], bool(spec.get("relative")), app)
    args = spec.get("args") or ()
    kwargs = spec.get("kwargs") or {}
    options = spec.get("options") or {}
    return Entry(APP, str(name), spec["task"], value, list(args) if isinstance(args, list | tuple) else [args],
                 dict(kwargs) if isinstance(kwargs, dict) else {},
                 dict(options) if isinstance(options, dict) else {})


def read(app: Celery) -> list[Entry]:
    """Every well-formed entry of ``beat_schedule``; one Celery itself would refuse is left out."""
    found: list[Entry] = []
    schedule = app.conf.beat_schedule or {}
    for name, spec in schedule.items():
        try:
            entry = _entry(app, name, spec)
        except Exception:  # a schedule Celery cannot build: beat would not run it either
            entry = None
        if entry is not None:
            found.append(entry)
    return found
