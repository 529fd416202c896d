"""The HTTP API's routes (paths relative to --url_prefix)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from celery_monitor.api import health, queues, tasks, workers
from celery_monitor.metrics.endpoint import metrics

ROUTES: list[BaseRoute] = [
    Route("/healthcheck", health.healthcheck),
    Route("/metrics", metrics),
    Route("/api/workers", workers.list_workers),
    Route("/api/tasks", tasks.list_tasks),
    Route("/api/task/types", tasks.task_types),
    Route("/api/task/info/{task_id:path}", tasks.task_info),
    Route("/api/queues/length", queues.queue_lengths),
    Route("/api/monitor/status", health.monitor_status),
]
