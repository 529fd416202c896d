"""OpenAPI links: where one answer names what another operation takes.

A client (or a fuzzer) follows them from a task just sent to its info and result, from a task to
its worker and its name, and from the task types to the controls taking a task name. The lists
keyed by id (``/api/tasks``, ``/api/workers``, in Flower's shape) have no place a runtime
expression can point into, so no link starts there.
"""

from __future__ import annotations

import re
from typing import Any

TASK_ID_TAKERS: tuple[str, ...] = ("get:/api/task/info/{task_id}", "get:/api/task/result/{task_id}",
                  "post:/api/task/revoke/{task_id}", "post:/api/task/abort/{task_id}",
                  "get:/api/task/rerun/{task_id}", "post:/api/task/rerun/{task_id}")
TASK_NAME_TAKERS: tuple[str, ...] = ("post:/api/task/apply/{name}", "post:/api/task/async-apply/{name}",
                    "post:/api/task/send-task/{name}", "post:/api/task/timeout/{name}",
                    "post:/api/task/rate-limit/{name}")
WORKER_TAKERS: tuple[str, ...] = ("post:/api/worker/shutdown/{name}", "post:/api/worker/pool/restart/{name}",
                 "post:/api/worker/pool/grow/{name}", "post:/api/worker/pool/shrink/{name}",
                 "post:/api/worker/pool/autoscale/{name}", "post:/api/worker/queue/add-consumer/{name}",
                 "post:/api/worker/queue/cancel-consumer/{name}")
SENT_TASK: list[tuple[str, tuple[str, ...], str]] = [("/task-id", TASK_ID_TAKERS, "task_id")]

# operationId -> (where the value is in its 200 answer, the operations taking it, as which parameter)
SOURCES: dict[str, list[tuple[str, tuple[str, ...], str]]] = {
    "post:/api/task/apply/{name}": SENT_TASK,
    "post:/api/task/async-apply/{name}": SENT_TASK,
    "post:/api/task/send-task/{name}": SENT_TASK,
    "post:/api/task/rerun/{task_id}": SENT_TASK,
    "get:/api/task/info/{task_id}": [
        ("/uuid", TASK_ID_TAKERS, "task_id"),
        ("/name", TASK_NAME_TAKERS, "name"),
        ("/name", ("get:/api/tasks",), "query.taskname"),
        ("/worker", WORKER_TAKERS, "name"),
        ("/worker", ("get:/api/workers", "get:/api/tasks"), "query.workername"),
    ],
    "get:/api/task/types": [("/task-types/0", TASK_NAME_TAKERS, "name")],
    "get:/api/queues/length": [("/active_queues/0/name", ("get:/api/queues/{queue}/tasks",), "queue")],
}


def _link_name(operation_id: str, parameter: str) -> str:
    """``get:/api/task/info/{task_id}`` -> ``get-task-info``; a query parameter adds ``-by-<name>``."""
    method, path = operation_id.split(":", 1)
    words = re.sub(r"{[^}]*}|^/api/", "", path)
    by = f" by {parameter.removeprefix('query.')}" if parameter.startswith("query.") else ""
    return re.sub(r"[^A-Za-z0-9]+", "-", f"{method} {words}{by}").strip("-")


def add_links(paths: dict[str, dict[str, Any]]) -> None:
    """Give each source operation's 200 answer its links to the operations present in ``paths``."""
    present = {op["operationId"]: op for operations in paths.values() for op in operations.values()}
    for source_id, sources in SOURCES.items():
        source = present.get(source_id)
        if source is None:
            continue
        links = {_link_name(target, parameter): {"operationId": target,
                                                  "parameters": {parameter: f"$response.body#{pointer}"}}
                 for pointer, targets, parameter in sources for target in targets if target in present}
        if links:
            answer = dict(source["responses"]["200"], links=links)
            source["responses"] = {**source["responses"], "200": answer}
