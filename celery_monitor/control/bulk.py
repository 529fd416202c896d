"""Bulk actions from a task filter, for the runbook "revoke every queued instance of a bad task".

The filter is /api/tasks's. Two places know which tasks it selects:

- the history, which knows a task once an event names it. Without a state filter only unfinished
  tasks are chosen (revoking a finished task does nothing but fill the workers' revoked lists);
- the broker, which alone knows a task that only waits in a queue: Celery sends no ``task-sent``
  event unless ``task_send_sent_event`` is on, so with its defaults a backlog has no history.
  Every known queue is read (or only ``queue``), on each cluster's own broker (those of the
  filter's ``cluster``, else every one), without taking anything from it
  (:mod:`celery_monitor.broker.messages`), up to a cap per queue that the answer reports.

A dry run answers the count the real run would revoke, and where the tasks were found; a filter
that selects the whole history is refused. A revoke is a broadcast to the workers online: they keep
the ids in memory (and pass them to workers that start later, through Celery's start-up sync,
"mingle"), so with no worker online it would reach nobody and is refused instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from celery_monitor.broker.messages import QueueMessages, QueueScan
from celery_monitor.control import queued
from celery_monitor.control.errors import ControlError, bad_request
from celery_monitor.control.task_control import TaskControl, signal_name
from celery_monitor.states import UNFINISHED_STATES
from celery_monitor.store.query import TaskQuery

CHUNK = 500
SAMPLE = 20
# Celery workers remember at most this many revoked ids (CELERY_WORKER_REVOKES_MAX), for 3 hours.
WORKER_REVOKES_MAX = 50_000


def has_filter(query: TaskQuery) -> bool:
    return bool(query.workers or query.names or query.states or query.received_start is not None
                or query.received_end is not None or query.search)


@dataclasses.dataclass(slots=True)
class Selection:
    task_ids: list[str]
    in_history: int
    scans: list[QueueScan]

    @property
    def queued(self) -> int:
        return sum(len(scan.matched) for scan in self.scans)

    def warnings(self) -> list[str]:
        notes = [f"Queue '{s.shown}': {s.error}" for s in self.scans if s.error]
        notes += [f"Queue '{s.shown}': only the first {s.scanned:,} of {s.total:,} messages were read; run again "
                  "once those are revoked" for s in self.scans if not s.error and not s.complete]
        if len(self.task_ids) > WORKER_REVOKES_MAX:
            notes.append(f"Workers remember at most {WORKER_REVOKES_MAX:,} revoked ids by default "
                         "(CELERY_WORKER_REVOKES_MAX): revoke in smaller steps")
        return notes

    def where(self) -> dict[str, Any]:
        return {"in_history": self.in_history, "queued": self.queued, "queues": [s.as_dict() for s in self.scans]}


class BulkActions:
    def __init__(self, tasks: TaskControl, query_tasks: Callable[[TaskQuery], list[dict[str, Any]]],
                 count_tasks: Callable[[TaskQuery], int], messages: QueueMessages | None = None,
                 queue_names: Callable[..., list[str]] = lambda *_: [],
                 cluster_messages: dict[str, QueueMessages] | None = None) -> None:
        """``cluster_messages``: each cluster's queued messages (its broker), read for the clusters the
        query names (none: every one); ``queue_names(cluster)`` the queues measured there."""
        self.tasks = tasks
        self.query_tasks = query_tasks
        self.count_tasks = count_tasks
        self.messages = messages
        self.queue_names = queue_names
        self.cluster_messages = cluster_messages or {}

    def _queue_readers(self, query: TaskQuery) -> list[tuple[str | None, QueueMessages]]:
        if not self.cluster_messages:
            return [] if self.messages is None else [(None, self.messages)]
        return [(name, messages) for name, messages in self.cluster_messages.items()
                if not query.clusters or name in query.clusters]

    def selection(self, query: TaskQuery, queue: str | None = None) -> TaskQuery:
        if not has_filter(query) and not queue:
            raise bad_request("A bulk action needs a filter (taskname, state, workername, search, received_* "
                              "or queue)")
        if not query.states and not query.search.states:
            query = dataclasses.replace(query, states=list(UNFINISHED_STATES))
        return query

    def select(self, query: TaskQuery, queue: str | None = None) -> Selection:
        """The ids the filter selects: from the history (unless one queue is named) and the queues."""
        query = self.selection(query, queue)
        ids: dict[str, None] = {}
        in_history = 0
        if not queue:
            for task in self.query_tasks(query):
                ids.setdefault(task["uuid"])
            in_history = len(ids)
        scans = []
        if queued.may_be_queued(query):
            for cluster, messages in self._queue_readers(query):
                names = [queue] if queue else (self.queue_names(cluster) if cluster else self.queue_names())
                for name in names:
                    scan = messages.scan(name, lambda task: queued.matches(task, query))
                    scan.cluster = cluster
                    scans.append(scan)
                    for queued_task in scan.matched:
                        ids.setdefault(queued_task.uuid)
        task_ids = list(ids)
        if query.limit is not None:
            task_ids = task_ids[:query.limit]
        return Selection(task_ids, in_history, scans)

    def revoke(self, query: TaskQuery, terminate: bool, signal: str, dry_run: bool,
               queue: str | None = None) -> dict[str, Any]:
        signal = signal_name(signal)
        chosen = self.select(query, queue)
        count = len(chosen.task_ids)
        answer: dict[str, Any] = {"dry_run": dry_run, "count": count, **chosen.where(),
                                  "warnings": chosen.warnings()}
        if dry_run:
            return {**answer, "sample": chosen.task_ids[:SAMPLE],
                    "message": f"{count} task(s) would be revoked ({chosen.in_history} known from events, "
                               f"{chosen.queued} waiting in queues)"}
        if count and not self.tasks.online_count():
            raise ControlError(409, f"No worker is online to take the revoke of {count} task(s): workers keep "
                                    "revoked ids in memory, so it would reach nobody and the tasks would run when "
                                    "a worker starts. Revoke once a worker is online (it need not consume the "
                                    "queue: workers that start later learn revoked ids from it, unless they run "
                                    "--without-mingle).")
        acknowledged = 0
        for start in range(0, count, CHUNK):
            acknowledged = max(acknowledged, self.tasks.revoke(chosen.task_ids[start:start + CHUNK], terminate,
                                                               signal))
        return {**answer, "task-ids": chosen.task_ids, "workers": acknowledged,
                "message": f"Revoked {count} task(s) on {acknowledged} worker(s)"}
