"""An entry's last run, found in the monitor's history: the newest task of its name, or, when the
scheduler recorded when it last sent the entry, the first task of that name that arrived since."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery_monitor.store.query import TaskQuery

SLACK = 5.0  # seconds a task's arrival may precede the scheduler's own record of the send (clocks differ)
LOOK_BACK = 20  # newest tasks of a name considered

Page = Callable[[TaskQuery], list[dict[str, Any]]]


def arrival(task: dict[str, Any]) -> float | None:
    """When the monitor first heard of the task: sent (if the sender reports it), else received."""
    times = [t for t in (task.get("sent"), task.get("received")) if isinstance(t, int | float)]
    return min(times) if times else None


def last_run(page: Page, task_name: str, scheduler_last_run: float | None) -> tuple[dict[str, Any] | None,
                                                                                  float | None]:
    """``{"uuid", "state", "time"}`` of the run the entry last produced (None if none is known), and
    when the newest task of the name arrived (what missed runs are judged from)."""
    tasks = page(TaskQuery(limit=LOOK_BACK, sort_by="received", descending=True, names=[task_name]))
    runs = [(at, task) for task in tasks if (at := arrival(task)) is not None]
    if not runs:
        return None, None
    runs.sort(key=lambda run: run[0], reverse=True)
    chosen = runs[0]
    if scheduler_last_run is not None:
        since = [run for run in runs if run[0] >= scheduler_last_run - SLACK]
        if since:
            chosen = since[-1]  # the first to arrive after the scheduler sent it
    at, task = chosen
    return {"uuid": task.get("uuid"), "state": task.get("state"), "time": at}, runs[0][0]
