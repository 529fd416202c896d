"""A workflow (a canvas: chains, groups, chords, nested ones) as a graph, and revoking what is left of it.

``GET /api/workflow/<root_id>`` answers the graph :mod:`celery_monitor.http.workflow_graph` draws
from the tasks whose root is ``root_id``. Task data in it comes from the history, redacted on its
way in like everywhere else. ``POST /api/workflow/<root_id>/revoke`` revokes every task of it not
yet finished (``terminate`` also stops those running, so a chain sends no next step), audited.

A workflow lives in one cluster, its tasks' (``cluster`` in the graph: its root's, else its first
task's). ``cluster=`` names the clusters to look in: a workflow of another one is unknown (404), as it
is to an identity scoped to other clusters (``--cluster_access``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from celery_monitor import clusters
from celery_monitor.api.control_common import arguments, control_action
from celery_monitor.control.errors import ControlError
from celery_monitor.http import workflow_graph
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError, json_response
from celery_monitor.http.params import bool_arg, text_arg
from celery_monitor.http.scope import may_read, require_control
from celery_monitor.http.tasks import cluster_filter

if TYPE_CHECKING:
    from celery_monitor.service import Monitor

MAX_TASKS = 2000  # a bigger workflow is drawn from its first tasks, and says so ("truncated")
MAX_ROOT_ID = 255  # the longest id an event may carry
REVOKE_CHUNK = 500


def cluster_of(root_id: str, tasks: list[dict[str, Any]]) -> str:
    """The workflow's cluster: its root task's, else its first task's."""
    root = next((task for task in tasks if task.get("uuid") == root_id), tasks[0] if tasks else {})
    return str(root.get("cluster") or clusters.DEFAULT)


def read_workflow(monitor: Monitor, root_id: str) -> dict[str, Any]:
    tasks = monitor.workflow_tasks(root_id, MAX_TASKS + 1)
    truncated = len(tasks) > MAX_TASKS
    graph = workflow_graph.build(root_id, tasks[:MAX_TASKS], time.time(), truncated)
    return {"root_id": root_id, "cluster": cluster_of(root_id, tasks), **graph}


async def _graph(request: Request) -> dict[str, Any]:
    root_id = request.path_params["root_id"]
    if not root_id or len(root_id) > MAX_ROOT_ID:
        raise ApiError(400, f"Invalid workflow id: 1 to {MAX_ROOT_ID} characters")
    wanted = cluster_filter(request)
    graph = await run_in_threadpool(read_workflow, monitor_of(request), root_id)
    if (not graph["nodes"] or (wanted and graph["cluster"] not in wanted)
            or not may_read(request, graph["cluster"])):
        raise ApiError(404, f"Unknown workflow '{root_id}'")
    return graph


async def workflow(request: Request) -> Response:
    return json_response(await _graph(request))


@control_action("workflow.revoke", "root_id")
async def revoke(request: Request) -> dict[str, Any]:
    """POST /api/workflow/<root_id>/revoke?terminate=&signal=&dry_run="""
    args = await arguments(request)
    terminate = bool_arg(args, "terminate")
    signal = text_arg(args, "signal", "SIGTERM") or "SIGTERM"
    dry_run = bool_arg(args, "dry_run")
    graph = await _graph(request)
    require_control(request, graph["cluster"])
    task_ids: list[str] = graph["unfinished"]
    count = len(task_ids)
    if dry_run:
        return {"dry_run": True, "count": count, "task-ids": task_ids,
                "message": f"{count} task(s) of the workflow would be revoked"}
    if not count:
        return {"dry_run": False, "count": 0, "task-ids": [], "workers": 0,
                "message": "Every task of the workflow has finished: nothing to revoke"}
    plane = monitor_of(request).control
    if not plane.tasks.online_count():
        raise ControlError(409, f"No worker is online to take the revoke of {count} task(s): workers keep "
                                "revoked ids in memory, so it would reach nobody")
    acknowledged = 0
    for start in range(0, count, REVOKE_CHUNK):
        chunk = task_ids[start:start + REVOKE_CHUNK]
        acknowledged = max(acknowledged, await plane.run(plane.tasks.revoke, chunk, terminate, signal))
    return {"dry_run": False, "count": count, "task-ids": task_ids, "workers": acknowledged,
            "message": f"Revoked {count} task(s) of the workflow on {acknowledged} worker(s)"}
