"""The store's narrow interface: everything the monitor keeps durably goes through these calls.

Two implementations provide it: SQLite (``sqlite.py``, the embedded default) and PostgreSQL
(``postgres.py``); ``target.py`` picks one from ``--db``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER
from celery_monitor.store.failures import GroupCounts
from celery_monitor.store.query import TaskQuery

TaskDict = dict[str, Any]


class StoreError(RuntimeError):
    """The history cannot be opened, or is not ours: one line for the operator, no secret in it."""


class Removed(dict[str, int]):
    """The tasks a trim deleted, by state (what the live view's state counts take off); those of
    clusters other than ``default`` also by cluster (``of_clusters``), for the counts per cluster."""

    def __init__(self) -> None:
        super().__init__()
        self.of_clusters: dict[str, dict[str, int]] = {}

    def add(self, cluster: str | None, state: str, count: int) -> None:
        self[state] = self.get(state, 0) + count
        if cluster:  # NULL in the history: ``default``
            counts = self.of_clusters.setdefault(cluster, {})
            counts[state] = counts.get(state, 0) + count

    def merge(self, other: Removed) -> None:
        for state, count in other.items():
            self[state] = self.get(state, 0) + count
        for cluster, counts in other.of_clusters.items():
            mine = self.of_clusters.setdefault(cluster, {})
            for state, count in counts.items():
                mine[state] = mine.get(state, 0) + count


class Store(Protocol):
    def write(
        self, tasks: Iterable[TaskDict], workers: Iterable[dict[str, Any]], meta: dict[str, Any]
    ) -> None:
        """Upsert tasks and workers and replace meta entries, atomically."""

    def get_task(self, uuid: str) -> TaskDict | None: ...

    def get_tasks(self, uuids: Iterable[str]) -> dict[str, TaskDict]: ...

    def workflow_tasks(self, root_id: str, limit: int) -> list[TaskDict]:
        """The first ``limit`` tasks whose ``root_id`` is ``root_id``, in the order first seen."""

    def query_tasks(self, query: TaskQuery, excluding: Sequence[int] = ()) -> list[TaskDict]:
        """The query's page (past its cursor, ``query.after``, if any), leaving out the rows whose seq
        is in ``excluding``."""

    def count_tasks(self, query: TaskQuery, excluding: Sequence[int] = (), cap: int | None = None) -> int:
        """How many rows the query selects (its cursor and page aside); with ``cap``, ``cap + 1`` when
        more than ``cap`` (counted no further)."""

    # Lists lay the writer's pending tasks over these (store/overlay.py).

    def snapshot(self) -> AbstractContextManager[None]:
        """One read transaction for several reads that must agree."""

    def seqs_of(self, uuids: Iterable[str]) -> dict[str, int]: ...

    def ordered_seqs(self, query: TaskQuery, excluding: Sequence[int] = ()) -> list[int]: ...

    def tasks_in_order(self, seqs: Sequence[int]) -> list[tuple[int, TaskDict]]: ...

    def task_names(self) -> list[str]: ...

    def state_counts(self) -> dict[str, int]: ...

    def cluster_state_counts(self) -> dict[str, dict[str, int]]:
        """The tasks of each cluster other than ``default``, by state (none for a one-cluster history)."""

    def load_workers(self) -> list[dict[str, Any]]: ...

    def delete_workers(self, hostnames: Iterable[str]) -> None: ...

    def load_meta(self, key: str) -> Any: ...

    def trim(self, max_tasks: int) -> Removed:
        """Delete the oldest tasks beyond ``max_tasks``; return how many were removed per state."""

    def trim_age(self, cutoff: float) -> Removed:
        """Delete the oldest tasks first seen before ``cutoff`` (epoch seconds), a prefix of seq up to the
        first seen at or after it; return how many were removed per state."""

    def task_count(self) -> int: ...

    # Failure groups (store/failures.py): failed tasks kept apart, trimmed by themselves.

    def trim_failures(self, max_failed: int) -> int:
        """Delete the oldest failures beyond ``max_failed``; how many went."""

    def trim_failures_age(self, cutoff: float) -> int:
        """Delete the failures that failed before ``cutoff``; how many went."""

    # A group is (cluster, task name, exception type). ``clusters``: the clusters' names (none: every
    # cluster for the lists; a group's tasks and count are of the clusters named).

    def failure_groups(self, since: float, width: float, clusters: Sequence[str] = ()) -> list[GroupCounts]:
        """Every group with its counts, and its counts per ``width`` seconds from ``since``."""

    def failure_sample(self, name: str, exception_type: str, cluster: str = DEFAULT_CLUSTER) -> TaskDict | None: ...

    def failure_tasks(self, name: str, exception_type: str, limit: int | None = None, offset: int = 0,
                      clusters: Sequence[str] = (DEFAULT_CLUSTER,)) -> list[TaskDict]: ...

    def failure_count(self, name: str, exception_type: str, clusters: Sequence[str] = (DEFAULT_CLUSTER,)) -> int: ...

    def failures_after(self, seq: int, limit: int) -> list[tuple[int, TaskDict]]:
        """Kept failures past ``seq`` (the failures table's own order), for a copy of the history."""

    def keep_failures(self, tasks: Iterable[TaskDict]) -> None:
        """Put failed tasks in the failures table alone: a copy's failures trimmed from the tasks."""

    def failure_total(self, clusters: Sequence[str] = ()) -> int: ...

    def index_search(self, budget_seconds: float = 0.05, until: Callable[[], bool] | None = None) -> int:
        """Bring the search index closer to the history, for about ``budget_seconds`` or until ``until()``."""
        ...

    def size_bytes(self) -> int: ...

    def release_memory(self) -> None:
        """Let go of what the store caches in this process (called by the writer once it is idle)."""

    def set_aside(self, kind: str, key: str, problem: str, raw: bytes) -> None:
        """Keep the original of a damaged record (a task, a worker, a meta entry) and report it."""

    def quarantined(self) -> dict[str, Any]:
        """Rows found damaged when read and set aside: ``{"rows": n, "latest": [...]}``."""

    def add_audit(self, entry: dict[str, Any]) -> int:
        """Append one control action to the audit trail; returns its id."""

    def audit_entries(self, limit: int = 50, offset: int = 0, user: str | None = None,
                      action: str | None = None, target: str | None = None, since: float | None = None,
                      until: float | None = None, clusters: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Audit entries, newest first; ``clusters``: only the actions that reached one of them
        (an entry of a monitor older than clusters counts as ``default``'s)."""

    def audit_count(self, user: str | None = None, action: str | None = None, target: str | None = None,
                    since: float | None = None, until: float | None = None, clusters: Sequence[str] = ()) -> int: ...

    def audit_facets(self, clusters: Sequence[str] = ()) -> dict[str, list[str]]:
        """The users and actions the audit trail holds (of these clusters' entries)."""

    def close(self) -> None: ...
