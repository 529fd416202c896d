"""Bulk actions from a task filter, for the runbook "revoke every queued instance of a bad task".

The filter is /api/tasks's. Without a state filter only unfinished tasks are chosen (revoking a
finished task does nothing but fill the workers' revoked lists). A dry run answers the count the
real run would revoke; a filter that selects the whole history is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from celery import states

from celery_monitor.control.errors import bad_request
from celery_monitor.control.task_control import TaskControl, signal_name
from celery_monitor.store.query import TaskQuery

UNFINISHED_STATES: tuple[str, ...] = (states.PENDING, states.RECEIVED, states.STARTED, states.RETRY)
CHUNK = 500
SAMPLE = 20


def has_filter(query: TaskQuery) -> bool:
    terms = query.search
    return bool(query.workers or query.names or query.states or query.received_start is not None
                or query.received_end is not None or terms.any or terms.args or terms.result or terms.names
                or terms.workers or terms.kwargs or terms.states)


class BulkActions:
    def __init__(self, tasks: TaskControl, query_tasks: Callable[[TaskQuery], list[dict[str, Any]]],
                 count_tasks: Callable[[TaskQuery], int]) -> None:
        self.tasks = tasks
        self.query_tasks = query_tasks
        self.count_tasks = count_tasks

    def selection(self, query: TaskQuery) -> TaskQuery:
        if not has_filter(query):
            raise bad_request("A bulk action needs a filter (taskname, state, workername, search or received_*)")
        if not query.states and not query.search.states:
            query = dataclasses.replace(query, states=list(UNFINISHED_STATES))
        return query

    def revoke(self, query: TaskQuery, terminate: bool, signal: str, dry_run: bool) -> dict[str, Any]:
        signal = signal_name(signal)
        query = self.selection(query)
        if dry_run:
            count = self._count(query)
            sample = [task["uuid"] for task in self.query_tasks(dataclasses.replace(query, limit=SAMPLE))]
            return {"dry_run": True, "count": count, "sample": sample,
                    "message": f"{count} task(s) would be revoked"}
        task_ids = [task["uuid"] for task in self.query_tasks(query)]
        acknowledged = 0
        for start in range(0, len(task_ids), CHUNK):
            acknowledged = max(acknowledged, self.tasks.revoke(task_ids[start:start + CHUNK], terminate, signal))
        return {"dry_run": False, "count": len(task_ids), "task-ids": task_ids, "workers": acknowledged,
                "message": f"Revoked {len(task_ids)} task(s)"}

    def _count(self, query: TaskQuery) -> int:
        total = self.count_tasks(dataclasses.replace(query, limit=None, offset=0)) - query.offset
        total = max(0, total)
        return total if query.limit is None else min(total, query.limit)
