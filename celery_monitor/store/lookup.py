"""Where a task is found: the live view, then the writer's pending changes, then the history.

The one place that knows this order. The applier hands a batch's changed tasks to the writer
before it lets readers see the batch in the live view, so a task the live view holds is either
pending or committed; a task it no longer holds is in the pending set until its transaction
commits, and in the history after that. Lists lay the pending tasks over the history the same way
(:mod:`celery_monitor.store.overlay`), reading the pending set before the history, so that they
agree with a lookup of one task.
"""

from __future__ import annotations

from celery_monitor.state.live import LiveView
from celery_monitor.store import overlay
from celery_monitor.store.base import Store, TaskDict
from celery_monitor.store.query import Cursor, TaskQuery
from celery_monitor.store.writer import StoreWriter


class TaskLookup:
    def __init__(self, live: LiveView, writer: StoreWriter, store: Store) -> None:
        self.live = live
        self.writer = writer
        self.store = store

    def get(self, uuid: str) -> TaskDict | None:
        """One task as readers see it (a copy), wherever it is; None when nothing knows it."""
        found = self.live.task_dict(uuid)
        if found is None:
            found = self.behind_live(uuid)
        return found

    def behind_live(self, uuid: str) -> TaskDict | None:
        """A task the live view does not hold: its pending version, else its committed one (a copy)."""
        pending = self.writer.pending_task(uuid)
        return dict(pending) if pending is not None else self.store.get_task(uuid)

    def many_behind_live(self, uuids: set[str]) -> dict[str, TaskDict]:
        """:meth:`behind_live` for many tasks at once (one lock of the pending set, one query per 500
        of the rest), for the applier: tasks found nowhere are left out, and pending versions come
        as the writer holds them, to be read only (the applier builds records of its own from them)."""
        found = self.writer.pending_tasks(uuids)
        rest = uuids.difference(found)
        if rest:
            found.update(self.store.get_tasks(rest))
        return found

    def workflow(self, root_id: str, limit: int) -> list[TaskDict]:
        """The tasks whose root is ``root_id``, and the root itself: at most ``limit`` from the history,
        with the pending versions over them (read first, as lists do, so none falls between the two)."""
        pending = self.writer.pending_snapshot()
        found = {task["uuid"]: task for task in self.store.workflow_tasks(root_id, limit)}
        for uuid, task in pending.items():
            if uuid in found or task.get("root_id") == root_id:
                found[uuid] = dict(task)
        if root_id not in found and (root := self.get(root_id)) is not None:
            found[root_id] = root
        return list(found.values())

    # -- lists ----------------------------------------------------------------------------------

    def page(self, query: TaskQuery) -> list[TaskDict]:
        return overlay.page(self.store, query, self.writer.pending_snapshot())

    def count(self, query: TaskQuery, cap: int | None = None) -> int:
        return overlay.count(self.store, query, self.writer.pending_snapshot(), cap)

    def cursors(self, query: TaskQuery, tasks: list[TaskDict]) -> list[Cursor]:
        """The cursor just past each of these tasks in the query's order (keyset paging)."""
        return overlay.cursors(self.store, query, tasks)

    def stream(self, query: TaskQuery) -> overlay.TaskStream:
        """Every task the query selects, a chunk at a time (for lists without a limit)."""
        return overlay.TaskStream(self.store, query, self.writer.pending_snapshot())

    def names(self, clusters: list[str] | None = None) -> list[str]:
        """Every task name seen, or seen on ``clusters`` (the live view keeps them, restored from the
        history at start)."""
        return self.live.task_names(clusters)
