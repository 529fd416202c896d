"""The HTTP API's routes (paths relative to --url_prefix)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from celery_monitor.api import (
    audit,
    control_tasks,
    control_workers,
    failures,
    health,
    notifications,
    openapi,
    queue_tasks,
    queues,
    schedules,
    tasks,
    websocket,
    workers,
    workflows,
)
from celery_monitor.http import path_text  # noqa: F401  (registers {name:text}, used below)
from celery_monitor.metrics.endpoint import metrics

ROUTES: list[BaseRoute] = [
    Route("/healthcheck", health.healthcheck),
    Route("/livez", health.livez),
    Route("/readyz", health.readyz),
    Route("/metrics", metrics),
    Route("/api/workers", workers.list_workers),
    Route("/api/tasks", tasks.list_tasks),
    Route("/api/task/types", tasks.task_types),
    Route("/api/task/info/{task_id:text}", tasks.task_info),
    Route("/api/queues/length", queues.queue_lengths),
    Route("/api/queues/backlog", queues.queue_backlog),
    Route("/api/queues/{queue:text}/tasks", queue_tasks.queued_tasks, methods=["GET"]),
    Route("/api/monitor/status", health.monitor_status),
    WebSocketRoute("/api/ws", websocket.page_updates),
    WebSocketRoute("/api/task/events/{event_type}/", websocket.task_events),
    WebSocketRoute("/api/task/events/{event_type}/{task_id:text}", websocket.task_events),
]

# Control (Flower's paths and methods), re-run, bulk revoke and the audit trail.
ROUTES += [
    Route("/api/worker/shutdown/{name}", control_workers.shutdown, methods=["POST"]),
    Route("/api/worker/pool/restart/{name}", control_workers.pool_restart, methods=["POST"]),
    Route("/api/worker/pool/grow/{name}", control_workers.pool_grow, methods=["POST"]),
    Route("/api/worker/pool/shrink/{name}", control_workers.pool_shrink, methods=["POST"]),
    Route("/api/worker/pool/autoscale/{name}", control_workers.pool_autoscale, methods=["POST"]),
    Route("/api/worker/queue/add-consumer/{name}", control_workers.add_consumer, methods=["POST"]),
    Route("/api/worker/queue/cancel-consumer/{name}", control_workers.cancel_consumer, methods=["POST"]),
    Route("/api/task/apply/{name}", control_tasks.apply, methods=["POST"]),
    Route("/api/task/async-apply/{name}", control_tasks.async_apply, methods=["POST"]),
    Route("/api/task/send-task/{name}", control_tasks.send_task, methods=["POST"]),
    Route("/api/task/result/{task_id:text}", control_tasks.result, methods=["GET"]),
    Route("/api/task/abort/{task_id:text}", control_tasks.abort, methods=["POST"]),
    Route("/api/task/revoke/{task_id:text}", control_tasks.revoke, methods=["POST"]),
    Route("/api/task/timeout/{name}", control_tasks.time_limit, methods=["POST"]),
    Route("/api/task/rate-limit/{name}", control_tasks.rate_limit, methods=["POST"]),
    Route("/api/task/rerun/{task_id:text}", control_tasks.rerun, methods=["POST"]),
    Route("/api/task/rerun/{task_id:text}", control_tasks.rerun_check, methods=["GET"]),
    Route("/api/tasks/revoke", control_tasks.bulk_revoke, methods=["POST"]),
    Route("/api/audit", audit.list_audit, methods=["GET"]),
]

# Periodic tasks: the beat entries the monitor sees, and enable, disable and run-now on one.
ROUTES += [
    Route("/api/schedules", schedules.list_schedules, methods=["GET"]),
    Route("/api/schedule/enable/{entry:text}", schedules.enable, methods=["POST"]),
    Route("/api/schedule/disable/{entry:text}", schedules.disable, methods=["POST"]),
    Route("/api/schedule/run/{entry:text}", schedules.run_now, methods=["POST"]),
]

# Failure groups: reads, and the group's audited bulk actions.
ROUTES += [
    Route("/api/failures", failures.list_groups, methods=["GET"]),
    Route("/api/failures/tasks", failures.group_tasks, methods=["GET"]),
    Route("/api/failures/revoke", failures.revoke_group, methods=["POST"]),
    Route("/api/failures/rerun", failures.rerun_group, methods=["POST"]),
]

# Workflows: a canvas as a graph, and revoking what is left of it.
ROUTES += [
    Route("/api/workflow/{root_id}", workflows.workflow, methods=["GET"]),
    Route("/api/workflow/{root_id}/revoke", workflows.revoke, methods=["POST"]),
]

# Notifications: rules, channels, the delivery log and a test message (docs/notifications.md).
ROUTES += [
    Route("/api/notifications", notifications.overview, methods=["GET"]),
    Route("/api/notifications/deliveries", notifications.deliveries, methods=["GET"]),
    Route("/api/notifications/channels/{name}/test", notifications.send_test, methods=["POST"]),
    Route("/api/notifications/{kind}/{name}", notifications.put, methods=["PUT"]),
    Route("/api/notifications/{kind}/{name}", notifications.delete, methods=["DELETE"]),
]

# The OpenAPI description of everything above.
ROUTES += [Route("/api/openapi.json", openapi.openapi, methods=["GET"])]
