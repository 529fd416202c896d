"""The web pages' routes and the JSON they fetch."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from celery_monitor.http import path_text  # noqa: F401  (registers {name:text}, used below)
from celery_monitor.web import data, pages

ROUTES: list[BaseRoute] = [
    Route("/", pages.workers),
    Route("/workers", pages.workers),
    Route("/worker/{name:text}", pages.worker),
    Route("/tasks", pages.tasks),
    Route("/task/{task_id:text}", pages.task),
    Route("/workflow/{root_id}", pages.workflow),
    Route("/broker", pages.broker),
    Route("/graphs", pages.graphs),
    Route("/monitor", pages.old_graphs),
    Route("/audit", pages.audit),
    Route("/schedules", pages.schedules),
    Route("/failures", pages.failures),
    Route("/notifications", pages.notifications),
    Route("/live", data.live),
    Route("/ui/workers.json", data.workers),
    Route("/ui/worker/{name:text}/limits.json", data.worker_limits),
    Route("/ui/worker/{name:text}.json", data.worker),
    Route("/ui/tasks.json", data.tasks),
    Route("/ui/task/{task_id:text}.json", data.task),
    Route("/ui/broker.json", data.broker),
    Route("/ui/graphs.json", data.timeline),
    Route("/ui/audit.json", data.audit),
    Route("/ui/schedules.json", data.schedules),
    Route("/ui/failures.json", data.failure_groups),
    Route("/ui/failures/tasks.json", data.failure_tasks),
    Route("/ui/notifications.json", data.notifications),
]
