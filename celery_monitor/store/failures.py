"""Failure groups: failed tasks kept apart, grouped by cluster, task name and exception type.

Every task whose state is FAILURE is also kept in a table of its own (``failures``), keyed by its
id, with its cluster (empty for ``default``), its name, its exception type and when it failed as
indexed columns and the whole task as JSON. A group belongs to one cluster: the same exception of
the same task in two clusters is two groups (two deployments of the code, two incidents).
The groups are then aggregates over one index, and trimming the history to ``--max_tasks``
leaves failures alone: they are trimmed to ``--max_failed_tasks`` by themselves, oldest first, so
failures can be kept longer than successes. A task that leaves FAILURE (a redelivery, a late
event) leaves the table in the same transaction that writes its new state.

Both stores write and read the table through the helpers here, so they answer the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER
from celery_monitor.states import FAILURE

MAX_GROUPS = 500  # groups one answer lists (the largest first): more is noise during an incident
MAX_TYPE = 200  # characters of an exception type kept (a type is a class name, not a message)

# uuid, name, exception type, failed, cluster (the column's value: empty for default), task
FailureRow = tuple[str, str, str, float, str, dict[str, Any]]


def column(cluster: str) -> str:
    """The failures tables' cluster column for a cluster's name: empty for ``default``."""
    return "" if cluster == DEFAULT_CLUSTER else cluster


def cluster_of(value: str | None) -> str:
    """A cluster's name from the failures tables' column."""
    return value or DEFAULT_CLUSTER


def exception_type(exception: Any) -> str:
    """The class of a failure as Celery's event shows it: ``ValueError('bad')`` -> ``ValueError``."""
    if not isinstance(exception, str) or not exception:
        return ""
    head = exception.split("(", 1)[0].strip()
    return head[:MAX_TYPE]


def failure_row(task: dict[str, Any]) -> FailureRow | None:
    """The failures table's row of a failed task; None for any other."""
    uuid = task.get("uuid")
    if task.get("state") != FAILURE or not isinstance(uuid, str):
        return None
    name = task.get("name") if isinstance(task.get("name"), str) else ""
    failed = task.get("failed")
    if not isinstance(failed, int | float) or isinstance(failed, bool):
        failed = task.get("timestamp") if isinstance(task.get("timestamp"), int | float) else 0.0
    cluster = task.get("cluster") if isinstance(task.get("cluster"), str) else ""
    return uuid, name or "", exception_type(task.get("exception")), float(failed or 0.0), column(cluster or ""), task


def split(tasks: Iterable[dict[str, Any]]) -> tuple[list[FailureRow], list[str]]:
    """Rows to upsert into the failures table, and the ids of the other tasks (to delete from it)."""
    rows: list[FailureRow] = []
    others: list[str] = []
    for task in tasks:
        row = failure_row(task)
        if row is not None:
            rows.append(row)
        elif isinstance(task.get("uuid"), str):
            others.append(task["uuid"])
    return rows, others


@dataclass(slots=True)
class GroupCounts:
    """One group as a store counts it: totals, and counts per time bucket since ``since``."""

    cluster: str  # the cluster's name (``default``, not the column's empty value)
    name: str
    exception_type: str
    count: int
    first_seen: float
    last_seen: float
    buckets: dict[int, int] = field(default_factory=dict)



SAMPLE_FIELDS = ("uuid", "failed", "worker", "exception", "traceback", "args", "kwargs", "retries")


def trend(group: GroupCounts, since: float, buckets: int) -> dict[str, Any]:
    """Counts per bucket (oldest first) and what they say: ``new`` (first seen in the window),
    ``growing`` (more in the window's second half than in its first), ``falling``, ``steady`` or ``quiet``."""
    counts = [0] * buckets
    for index, count in group.buckets.items():
        counts[min(max(index, 0), buckets - 1)] += count
    half = buckets // 2
    earlier, recent = sum(counts[:half]), sum(counts[half:])
    if group.first_seen >= since:
        status = "new"
    elif recent > earlier:
        status = "growing"
    elif recent == earlier == 0:
        status = "quiet"
    elif recent < earlier:
        status = "falling"
    else:
        status = "steady"
    return {"counts": counts, "in_window": earlier + recent, "earlier": earlier, "recent": recent, "status": status}


def summary(group: GroupCounts, since: float, buckets: int, sample: dict[str, Any] | None) -> dict[str, Any]:
    """A group as the API answers it."""
    return {
        "cluster": group.cluster, "name": group.name, "exception_type": group.exception_type, "count": group.count,
        "first_seen": group.first_seen, "last_seen": group.last_seen, "trend": trend(group, since, buckets),
        "sample": {key: sample.get(key) for key in SAMPLE_FIELDS} if sample else None,
    }
