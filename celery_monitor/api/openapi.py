"""The API's OpenAPI 3.1 description, served at ``/api/openapi.json``.

Built from the routing table when first asked for, so every HTTP route under ``/api`` (and the
health probes beside it) appears with its methods and path parameters; the query parameters and
bodies each route reads are listed in the tables below. WebSocket routes (``/api/ws``,
``/api/task/events/...``) have no place in OpenAPI and are named in the description instead.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from celery_monitor import __version__, values
from celery_monitor.api import links
from celery_monitor.http.errors import json_response

_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")

STRING: dict[str, Any] = {"type": "string"}
# The words values.parse_bool reads (case aside): the description says what the parser accepts.
BOOLEAN: dict[str, Any] = {"type": "string", "enum": sorted(values.TRUE_WORDS | values.FALSE_WORDS)}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
SECONDS: dict[str, Any] = {"type": "number", "minimum": 0}
TIME: dict[str, Any] = {"type": "string", "description": "ISO 8601 date-time or seconds since the epoch"}
SORT_BY: dict[str, Any] = {"type": "string", "description": "a task field, '-' first for descending order"}

CLUSTER: dict[str, Any] = {"type": "string", "description": "cluster names, comma-separated or repeated (all "
                                                           "clusters when absent)"}
# Where a task call goes (also a body field): needed when the monitor watches several clusters.
CALL_CLUSTER: dict[str, Any] = {"type": "string", "description": "the cluster to send to (needed with several "
                                                                "clusters; also a body field)"}
GROUP_CLUSTER: dict[str, Any] = {"type": "string", "description": "the group's cluster (comma-separated or repeated "
                                                                 "for several; every cluster when absent)"}
WORKFLOW_CLUSTER: dict[str, Any] = {"type": "string", "description": "the clusters to look in, comma-separated or "
                                                                    "repeated (a workflow of another one: 404)"}
TASK_FILTERS: dict[str, dict[str, Any]] = {
    "limit": COUNT, "offset": COUNT, "sort_by": SORT_BY, "workername": STRING, "taskname": STRING,
    "state": STRING, "received_start": TIME, "received_end": TIME, "search": STRING, "cluster": CLUSTER,
}  # fmt: skip

QUERY: dict[str, dict[str, dict[str, Any]]] = {
    "/api/workers": {"refresh": BOOLEAN, "status": BOOLEAN, "workername": STRING, "cluster": CLUSTER},
    "/api/tasks": {**TASK_FILTERS, "after": {
        "type": "string", "description": "a cursor from a Link rel=\"next\" header: the page just past that task"}},
    "/api/task/result/{task_id}": {"timeout": SECONDS},
    "/api/task/apply/{name}": {"timeout": SECONDS, "cluster": CALL_CLUSTER},
    "/api/task/async-apply/{name}": {"cluster": CALL_CLUSTER},
    "/api/task/send-task/{name}": {"cluster": CALL_CLUSTER},
    "/api/task/types": {"cluster": CLUSTER},
    "/api/tasks/revoke": {**TASK_FILTERS, "queue": STRING, "dry_run": BOOLEAN, "terminate": BOOLEAN,
                          "signal": STRING},
    "/api/schedules": {"cluster": CLUSTER},
    "/api/audit": {"limit": {"type": "integer", "minimum": 1, "maximum": 1000}, "offset": COUNT,
                   "user": STRING, "action": STRING, "target": STRING, "since": TIME, "until": TIME,
                   "cluster": CLUSTER},
    "/api/queues/{queue}/tasks": {"limit": {"type": "integer", "minimum": 1, "maximum": 500}, "offset": COUNT,
                                  "cluster": {**STRING, "description": "the queue's cluster (needed when the "
                                                                       "monitor watches several)"}},
    "/api/queues/length": {"cluster": CLUSTER},
    "/api/queues/backlog": {"queue": {**STRING, "description": "a queue to sum up, by name (in every cluster "
                                                                 "shown) or `<cluster>:<queue>` (repeat for several; "
                                                                 "all measured queues when absent)"},
                            "cluster": CLUSTER},
    "/api/task/rerun/{task_id}": {"force": BOOLEAN},
    "/api/failures": {"window": {"type": "number", "minimum": 60}, "buckets": {"type": "integer", "minimum": 2,
                                                                               "maximum": 120}, "cluster": CLUSTER},
    "/api/failures/tasks": {"name": STRING, "exception": STRING, "cluster": GROUP_CLUSTER, "offset": COUNT,
                            "limit": {"type": "integer", "minimum": 1, "maximum": 500}},
    "/api/failures/revoke": {"name": STRING, "exception": STRING, "cluster": GROUP_CLUSTER, "dry_run": BOOLEAN,
                             "terminate": BOOLEAN, "signal": STRING},
    "/api/failures/rerun": {"name": STRING, "exception": STRING, "cluster": GROUP_CLUSTER, "dry_run": BOOLEAN,
                            "limit": COUNT},
    "/api/workflow/{root_id}": {"cluster": WORKFLOW_CLUSTER},
    "/api/workflow/{root_id}/revoke": {"terminate": BOOLEAN, "signal": STRING, "dry_run": BOOLEAN,
                                       "cluster": WORKFLOW_CLUSTER},
    "/api/notifications/deliveries": {"limit": {"type": "integer", "minimum": 1, "maximum": 1000}, "offset": COUNT},
}

# Control arguments may come in the query string or in a form or JSON object body (as in Flower).
CALL_BODY: dict[str, Any] = {"type": "object", "properties": {
    "args": {"type": "array"}, "kwargs": {"type": "object"}, "queue": STRING, "countdown": SECONDS,
    "eta": STRING, "expires": STRING, "priority": {"type": "integer", "minimum": 0, "maximum": 255},
    "cluster": STRING,
}}  # fmt: skip
BODIES: dict[str, dict[str, Any]] = {
    # A channel ({"kind": "slack", "url": ...}) or a rule ({"kind": "task_failed", "channels": [...]}):
    # docs/notifications.md lists the fields of each kind.
    "/api/notifications/{kind}/{name}": {"type": "object", "properties": {
        "kind": STRING, "channels": {"type": "array"}, "url": STRING, "secret": STRING, "window": SECONDS,
        "severity": STRING,
    }},
    "/api/task/apply/{name}": CALL_BODY,
    "/api/task/async-apply/{name}": CALL_BODY,
    "/api/task/send-task/{name}": CALL_BODY,
    "/api/task/revoke/{task_id}": {"type": "object", "properties": {"terminate": {"type": "boolean"},
                                                                     "signal": STRING}},
    "/api/task/timeout/{name}": {"type": "object", "properties": {"soft": SECONDS, "hard": SECONDS,
                                                                   "workername": STRING}},
    "/api/task/rate-limit/{name}": {"type": "object", "properties": {"ratelimit": STRING, "workername": STRING}},
    "/api/task/rerun/{task_id}": {"type": "object", "properties": {"force": {"type": "boolean"}}},
    "/api/workflow/{root_id}/revoke": {"type": "object", "properties": {
        "terminate": {"type": "boolean"}, "signal": STRING, "dry_run": {"type": "boolean"}}},
    "/api/worker/pool/grow/{name}": {"type": "object", "properties": {"n": COUNT}},
    "/api/worker/pool/shrink/{name}": {"type": "object", "properties": {"n": COUNT}},
    "/api/worker/pool/autoscale/{name}": {"type": "object", "properties": {"min": COUNT, "max": COUNT},
                                          "required": ["min", "max"]},
    "/api/worker/queue/add-consumer/{name}": {"type": "object", "properties": {"queue": STRING}},
    "/api/worker/queue/cancel-consumer/{name}": {"type": "object", "properties": {"queue": STRING}},
}

ERROR: dict[str, Any] = {"type": "object", "properties": {"error": STRING}, "required": ["error"]}
RESPONSES: dict[str, Any] = {
    "200": {"description": "the answer", "content": {"application/json": {"schema": {}}}},
    "400": {"description": "a bad parameter", "content": {"application/json": {"schema": ERROR}}},
    "401": {"description": "credentials needed", "content": {"application/json": {"schema": ERROR}}},
    "403": {"description": "not allowed (read-only, cross-site)", "content": {"application/json": {"schema": ERROR}}},
    "404": {"description": "no such task or worker", "content": {"application/json": {"schema": ERROR}}},
    "409": {"description": "not now: the task cannot be re-run, the action conflicts",
            "content": {"application/json": {"schema": ERROR}}},
    "429": {"description": "too many failed logins", "content": {"application/json": {"schema": ERROR}}},
    "503": {"description": "the broker or result backend is unavailable or not configured",
            "content": {"application/json": {"schema": ERROR}}},
    "504": {"description": "no worker replied within --inspect_timeout",
            "content": {"application/json": {"schema": ERROR}}},
}


SUMMARIES: dict[str, str] = {
    "/api/audit": "The audit trail of control actions, newest first (user, action, target, params, result, "
                  "the cluster reached); filters: `user`, `action`, `target`, `since`, `until`, `cluster`.",
    "/api/failures": "Failures grouped by cluster, task name and exception type, the largest first: count, first "
                     "and last seen, counts per bucket over `window` seconds with a status (new, growing, falling, "
                     "steady, quiet), and the latest failure as a sample. Each group says its `cluster`.",
    "/api/failures/tasks": "The failed tasks of one group (`name`, `exception`, `cluster`), the latest first, paged.",
    "/api/failures/revoke": "Revoke the tasks of one failure group; `dry_run=true` only counts. Audited.",
    "/api/failures/rerun": "Re-run the tasks of one failure group with their exact arguments (at most 1,000 at "
                           "once); `dry_run=true` counts and checks a sample. Audited.",
    "/api/monitor/status": "The monitor's own health: event receiver, hand-off backlog, store, inspector; "
                           "its replica role (leader or standby).",
    "/api/openapi.json": "This description.",
    "/api/queues/backlog": "What to scale workers on, per queue and summed over the selected queues (`queue`): "
                           "`waiting` in the broker (Redis priority sub-queues included), `reserved` by workers "
                           "(prefetched, not started) and `backlog`, their sum; from the latest background poll "
                           "(503 when it failed or is old, 404 for a queue not measured). Keyed by the queue's "
                           "name, qualified `<cluster>:<queue>` outside the cluster `default`; each says its "
                           "`cluster`.",
    "/api/queues/length": "Messages waiting per queue, read from each cluster's broker (Flower's shape; each queue "
                          "says its `cluster`, and `unavailable` the clusters whose broker did not answer).",
    "/api/queues/{queue}/tasks": "The tasks waiting in a queue, next out first, read from the broker without "
                                 "consuming (RabbitMQ: marked redelivered); args previews redacted.",
    "/api/schedules": "Every beat entry the monitor sees (the app's beat_schedule, django-celery-beat, RedBeat): "
                      "schedule in words, next run, last run and outcome, enabled, missed runs; args redacted.",
    "/api/schedule/enable/{entry}": "Enable a django-celery-beat or RedBeat entry (`<source>:<name>`); 409 for "
                                    "the app's own entries.",
    "/api/schedule/disable/{entry}": "Disable a django-celery-beat or RedBeat entry (`<source>:<name>`); 409 for "
                                     "the app's own entries.",
    "/api/schedule/run/{entry}": "Send an entry's task now with its args, kwargs and options (`<source>:<name>`); "
                                 "its schedule is untouched.",
    "/api/task/abort/{task_id}": "Abort a running task (an AbortableTask); needs a result backend.",
    "/api/task/apply/{name}": "Run a task by name and wait for its result.",
    "/api/task/async-apply/{name}": "Run a task by name without waiting (apply_async options in `options`).",
    "/api/task/info/{task_id}": "One task: every field, its state transitions and custom event data.",
    "/api/task/rate-limit/{name}": "Set a task's rate limit on every worker or one (`workername`).",
    "/api/task/rerun/{task_id}": "Send a finished task again with exactly its original args and kwargs (from the "
                                 "result backend with result_extended, or its queued message); 409 with the reason "
                                 "otherwise. GET answers whether it could, without sending.",
    "/api/task/result/{task_id}": "A task's state and result from the result backend (`timeout` to wait).",
    "/api/task/revoke/{task_id}": "Revoke a task; `terminate=true` (and `signal`) also kills it if running.",
    "/api/task/send-task/{name}": "Send a task by name without its code being importable here.",
    "/api/task/timeout/{name}": "Set a task's soft and hard time limits on every worker or one.",
    "/api/task/types": "Task names seen so far.",
    "/api/tasks": "Tasks, newest first, with Flower's filters, sort and search syntax.",
    "/api/tasks/revoke": "Revoke every task matching the /api/tasks filters, known from events or waiting in the "
                         "broker's queues (`queue` reads only that one); `dry_run=true` only counts.",
    "/api/worker/pool/autoscale/{name}": "Set a worker's autoscaler range (`min`, `max`).",
    "/api/worker/pool/grow/{name}": "Add `n` processes to a worker's pool.",
    "/api/worker/pool/restart/{name}": "Restart a worker's pool processes (needs worker_pool_restarts).",
    "/api/worker/pool/shrink/{name}": "Remove `n` processes from a worker's pool.",
    "/api/worker/queue/add-consumer/{name}": "Make a worker consume from `queue`.",
    "/api/worker/queue/cancel-consumer/{name}": "Make a worker stop consuming from `queue`.",
    "/api/worker/shutdown/{name}": "Shut a worker down.",
    "/api/workflow/{root_id}": "A workflow (chain, group, chord, nested canvases) as a graph: the tasks whose root "
                               "is `root_id` with their states and durations, edges, groups and the slowest path; "
                               "`cluster` is its tasks' cluster.",
    "/api/workflow/{root_id}/revoke": "Revoke every task of a workflow not yet finished; `terminate=true` (and "
                                      "`signal`) also kills those running; `dry_run=true` only counts.",
    "/api/workers": "Workers with their inspect details, status and freshness (Flower's shape).",
    "/healthcheck": "Flower's health check: `OK` while the server answers, whatever the monitor's state. No login.",
    "/livez": "Liveness: 503 when ingestion has stopped (a loop dead or stuck, the broker away for minutes), "
              "with the reasons; the warnings say what is degraded. No login.",
    "/readyz": "Readiness: 200 once the history is open and the monitor started, 503 while starting or "
               "shutting down. No login.",
}

# Outside /api but described: the probes, open to anyone (the auth gate's public paths).
PROBES = ("/healthcheck", "/livez", "/readyz")
PROBE: dict[str, Any] = {"type": "object", "properties": {
    "live": {"type": "boolean"}, "ready": {"type": "boolean"},
    "problems": {"type": "array", "items": STRING}, "warnings": {"type": "array", "items": STRING},
    "error": STRING,
}}  # fmt: skip
PROBE_RESPONSES: dict[str, dict[str, Any]] = {
    "/healthcheck": {"200": {"description": "the server answers", "content": {"text/plain": {"schema": STRING}}}},
    "/livez": {"200": {"description": "alive", "content": {"application/json": {"schema": PROBE}}},
               "503": {"description": "ingestion has stopped", "content": {"application/json": {"schema": PROBE}}}},
    "/readyz": {"200": {"description": "ready", "content": {"application/json": {"schema": PROBE}}},
                "503": {"description": "starting or shutting down",
                        "content": {"application/json": {"schema": PROBE}}}},
}


def _operation(path: str, method: str, endpoint: Any) -> dict[str, Any]:
    docstring = (getattr(endpoint, "__doc__", None) or "").strip().splitlines()
    summary = [SUMMARIES[path]] if path in SUMMARIES else docstring
    parameters = [{"name": name, "in": "path", "required": True, "schema": STRING}
                  for name in _PATH_PARAM.findall(path)]
    parameters += [{"name": name, "in": "query", "required": False, "schema": schema}
                   for name, schema in QUERY.get(path, {}).items()]
    operation: dict[str, Any] = {
        "operationId": f"{method}:{path}",
        "summary": summary[0] if summary else f"{method.upper()} {path}",
        "parameters": parameters,
        "responses": PROBE_RESPONSES.get(path, RESPONSES),
    }
    if path in PROBES:
        operation["security"] = [{}]
    if method in ("post", "put", "patch") and path in BODIES:
        operation["requestBody"] = {"required": False, "content": {
            "application/json": {"schema": BODIES[path]},
            "application/x-www-form-urlencoded": {"schema": BODIES[path]},
        }}
    return operation


def describe(routes: list[BaseRoute], prefix: str = "") -> dict[str, Any]:
    """The OpenAPI document for the HTTP routes under /api in ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    sockets: list[str] = []
    for route in routes:
        path = _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", getattr(route, "path", ""))  # without convertors
        if isinstance(route, WebSocketRoute) and route.path.startswith("/api"):
            sockets.append(path)
        if not isinstance(route, Route) or not (route.path.startswith("/api") or route.path in PROBES):
            continue
        for method in sorted(route.methods or {"GET"}):
            if method in ("HEAD", "OPTIONS"):
                continue
            paths.setdefault(path, {})[method.lower()] = _operation(path, method.lower(), route.endpoint)
    # Nothing shared, as if read from JSON: the operations take their parts from the tables above, and
    # a reader (a client generator, schemathesis inferring links) may annotate what it is given.
    paths = orjson.loads(orjson.dumps(paths))
    links.add_links(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Celery Monitor API", "version": __version__,
                 "description": "Flower-compatible task and worker API. WebSockets: " + ", ".join(sockets)},
        "servers": [{"url": prefix or "/"}],
        "components": {"securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "token": {"type": "http", "scheme": "bearer", "description": "an --api_tokens token"},
        }},
        "security": [{"basic": []}, {"token": []}, {}],
        "paths": paths,
    }


def served_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes an app serves, those under its --url_prefix mount included (paths relative to it)."""
    served: list[BaseRoute] = []
    for route in routes:
        served.extend(route.routes if isinstance(route, Mount) else [route])
    return served


async def openapi(request: Request) -> Response:
    """The description of the app that serves it (its own routing table: no import of the routes)."""
    document = getattr(request.app.state, "openapi", None)
    if document is None:
        settings = getattr(request.app.state, "settings", None)
        document = describe(served_routes(request.app.routes), settings.prefix if settings else "")
        request.app.state.openapi = document
    return json_response(document)
