"""What every control endpoint shares: request arguments, the read-only switch and the audit record.

Arguments are read like Flower reads them: the query string, then a form or JSON object body on
top (the arguments parsed by :mod:`celery_monitor.http.params`). Handlers return a dict and raise
:class:`ControlError`/:class:`ApiError`; :func:`control_action`
turns either into the JSON answer and records the outcome in the audit trail.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from celery_monitor import clusters
from celery_monitor.auth import redact_replies
from celery_monitor.control.errors import ControlError
from celery_monitor.http.context import monitor_of, redactor_of, user_of
from celery_monitor.http.errors import ApiError, json_response
from celery_monitor.http.params import text_arg
from celery_monitor.http.scope import require_control, scope_of
from celery_monitor.http.tasks import cluster_filter

log = logging.getLogger(__name__)

READ_ONLY = "Read-only mode: control actions are disabled (--read_only)"
TASK_CALLS = frozenset({"task.apply", "task.async_apply", "task.send_task"})
WORKER_LIMITS = frozenset({"task.timeout", "task.rate_limit"})  # one worker (workername) or all
# The handler narrows what it acts on to the controllable clusters.
SCOPED_BY_HANDLER = frozenset({"tasks.revoke", "failures.revoke", "failures.rerun", "workflow.revoke"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

Handler = Callable[[Request], Awaitable[dict[str, Any]]]
Endpoint = Callable[[Request], Awaitable[Response]]


def require_writable(request: Request) -> None:
    """The auth gate refuses read-only identities first; this holds even where no gate runs."""
    if monitor_of(request).settings.read_only:
        raise ApiError(403, READ_ONLY)
    state = request.scope.get("state") or {}
    if state.get("role") == "read-only":
        raise ApiError(403, "Read-only access: this identity may not change anything")


async def body_of(request: Request) -> tuple[dict[str, Any], bool]:
    """The body as a dict, and whether it was a form; 400 for anything but an object."""
    cached = request.scope.get("control.body")
    if cached is not None:
        earlier: tuple[dict[str, Any], bool] = cached  # stored below, on the first read
        return earlier
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        try:
            form = await request.form()
        except Exception as exc:  # a malformed multipart body
            raise ApiError(400, f"Invalid form body: {exc}") from None
        parsed: tuple[dict[str, Any], bool] = ({key: value for key, value in form.items() if isinstance(value, str)},
                                               True)
    else:
        raw = await request.body()
        if not raw.strip():
            parsed = ({}, False)
        else:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ApiError(400, f"Invalid JSON body: {exc}") from None
            if not isinstance(data, dict):
                raise ApiError(400, "Invalid JSON body: must be an object")
            parsed = (data, False)
    request.scope["control.body"] = parsed
    return parsed


async def call_body(request: Request) -> tuple[dict[str, Any], bool]:
    """The body of a task call. Like Flower, a JSON object is read as JSON whatever the content
    type says: ``curl -d '{"args":[1,2]}'`` sends it as a form."""
    if request.scope.get("control.body") is None:
        raw = (await request.body()).strip()
        if raw.startswith(b"{"):
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                request.scope["control.body"] = (data, False)  # what the audit record reads, too
    return await body_of(request)


async def call_cluster(request: Request) -> str:
    """The cluster a task call goes to: ``cluster=`` in the query or the body. Without it, the only
    cluster; with several, a 400 naming them (a call sent to the wrong cluster runs there)."""
    monitor = monitor_of(request)
    watched = monitor.cluster_names
    raw: Any = request.query_params.get("cluster")
    if raw is None:
        body, _ = await call_body(request)
        raw = body.get("cluster")
    scope = scope_of(request)
    offered = ", ".join(name for name in watched if scope is None or scope.may_control(name)) or "none"
    if raw is None or raw == "":
        if len(watched) == 1:
            return watched[0]
        raise ApiError(400, f"Name the cluster to send to: this monitor watches several (cluster= one of {offered})")
    if not isinstance(raw, str):
        raise ApiError(400, "Invalid 'cluster': must be one cluster's name")
    try:
        clusters.check_name(raw)
    except clusters.BadClusters as exc:
        raise ApiError(400, f"Invalid 'cluster': {exc}") from None
    if raw not in watched:
        raise ApiError(400, f"Unknown cluster '{raw}' (one of {offered})")
    return raw


async def arguments(request: Request) -> dict[str, Any]:
    """Query parameters with the body's values on top."""
    body, _ = await body_of(request)
    return {**dict(request.query_params), **body}


async def _audit_params(request: Request, task_name: str | None) -> dict[str, Any]:
    """The request's parameters as the audit trail keeps them: a task call's args and kwargs redacted."""
    params: dict[str, Any] = dict(request.query_params)
    try:
        body, _ = await body_of(request)
    except ApiError:
        body = {}
    params.update(body)
    return redact_replies.task_call(redactor_of(request), params, task_name)


async def target_cluster(request: Request, action: str, target: str | None) -> str | None:
    """The cluster an action reaches: its worker's, its task's (None: every cluster, or not known)."""
    monitor = monitor_of(request)
    name = str(request.path_params.get(target, "")) if target else ""
    if action.startswith("worker."):
        return monitor.cluster_of(name)
    if action.startswith("schedule."):  # an entry's key is qualified by its cluster, as a worker's name
        return monitor.schedules.cluster_of(name)
    if target == "task_id":
        task = await run_in_threadpool(monitor.get_task, name)
        return str(task.get("cluster") or clusters.DEFAULT) if task else None
    if action in TASK_CALLS:  # sent through the chosen cluster's app
        return await call_cluster(request)
    if action == "workflow.revoke":  # its tasks' cluster
        root = await run_in_threadpool(monitor.get_task, name)
        if root is None:
            tasks = await run_in_threadpool(monitor.workflow_tasks, name, 1)
            root = tasks[0] if tasks else None
        return str(root.get("cluster") or clusters.DEFAULT) if root else None
    if action.startswith("failures."):  # a group of the one cluster named, or of several
        named = cluster_filter(request)
        return named[0] if len(named) == 1 else None
    if action in WORKER_LIMITS:
        workername = text_arg(await arguments(request), "workername")
        return monitor.cluster_of(workername) if workername else None
    return None


def control_action(action: str, target: str | None = None, mutating: bool = True) -> Callable[[Handler], Endpoint]:
    """Make ``handler`` an audited endpoint; ``mutating`` ones answer 403 in read-only mode.

    The audit record names the cluster the action reached (None: every cluster); an identity scoped
    to some clusters (--cluster_access) is refused an action on another, and the refusal recorded.
    """
    def decorate(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            monitor = monitor_of(request)
            status = 200
            cluster: str | None = None
            try:
                if mutating:
                    require_writable(request)
                cluster = await target_cluster(request, action, target)
                if action not in SCOPED_BY_HANDLER:
                    require_control(request, cluster)
                body = await handler(request)
            except (ControlError, ApiError) as exc:
                status, body = exc.status, {"error": exc.reason}
            name = str(request.path_params.get(target, "")) if target else request.url.query
            task_name = name if target == "name" and action.startswith("task.") else None
            params = await _audit_params(request, task_name)
            await monitor.control.run(monitor.audit.record, user_of(request), action, name, params, status, body,
                                      cluster)
            return json_response(body, status)

        return endpoint

    return decorate


def control_read(handler: Handler) -> Endpoint:
    """A control endpoint that changes nothing: errors translated, no audit record."""
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            body = await handler(request)
        except ControlError as exc:
            raise ApiError(exc.status, exc.reason) from None
        return json_response(body)

    return endpoint
