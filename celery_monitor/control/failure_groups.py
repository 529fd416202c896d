"""Bulk actions on a failure group (a task name and an exception type in a cluster): re-run or
revoke its tasks.

The endpoint names the clusters (``cluster=``, or every one the identity may control): the
group's tasks are taken from those alone, and a revoke goes to their clusters' workers alone.

Both take the group's tasks from the failures table (``store/failures.py``), the latest first, up
to a cap the answer reports. A dry run answers the count the real run would act on and sends
nothing. A re-run sends each task again exactly as :meth:`TaskControl.rerun` does (arguments from
the result backend or the queued message, never from the events' reprs); the tasks it cannot
re-run are counted with their reasons. A revoke is a broadcast of the group's ids to the workers
online: a copy of a failed task still waiting somewhere (a redelivery, a retry sent under the same
id) is then discarded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from celery_monitor.control.bulk import CHUNK, SAMPLE
from celery_monitor.control.errors import ControlError, bad_request
from celery_monitor.control.task_control import TaskControl, signal_name
from celery_monitor.store.base import Store

RERUN_MAX = 1000  # tasks one re-run sends at most: each is a message and a result-backend read
REVOKE_MAX = 50_000  # Celery workers remember at most this many revoked ids by default
REASONS = 5  # distinct refusal reasons an answer lists


class FailureGroupActions:
    def __init__(self, tasks: TaskControl, store: Store) -> None:
        self.tasks = tasks
        self.store = store

    def _ids(self, name: str, exception_type: str, clusters: Sequence[str], cap: int) -> tuple[list[str], int]:
        """The group's task ids in ``clusters`` (the latest first, at most ``cap``) and how many it
        holds there in all."""
        total = self.store.failure_count(name, exception_type, clusters)
        if not total:
            raise ControlError(404, f"No failure group '{name}' / '{exception_type}'"
                                    + (f" in the cluster '{clusters[0]}'" if len(clusters) == 1 else ""))
        ids = [task["uuid"] for task in self.store.failure_tasks(name, exception_type, limit=cap, clusters=clusters)]
        return ids, total

    @staticmethod
    def _left(total: int, chosen: int) -> list[str]:
        if total <= chosen:
            return []
        return [f"Only the latest {chosen:,} of the group's {total:,} tasks are taken in one action: run it again "
                "for the rest"]

    def revoke(self, name: str, exception_type: str, clusters: Sequence[str], terminate: bool, signal: str,
               dry_run: bool) -> dict[str, Any]:
        signal = signal_name(signal)
        ids, total = self._ids(name, exception_type, clusters, REVOKE_MAX)
        answer: dict[str, Any] = {"dry_run": dry_run, "count": len(ids), "group_total": total,
                                  "warnings": self._left(total, len(ids))}
        if dry_run:
            return {**answer, "sample": ids[:SAMPLE], "message": f"{len(ids)} task(s) would be revoked"}
        if not self.tasks.online_count():
            raise ControlError(409, f"No worker is online to take the revoke of {len(ids)} task(s): workers keep "
                                    "revoked ids in memory, so it would reach nobody")
        acknowledged = 0
        for start in range(0, len(ids), CHUNK):
            acknowledged = max(acknowledged, self.tasks.revoke(ids[start:start + CHUNK], terminate, signal))
        return {**answer, "task-ids": ids, "workers": acknowledged,
                "message": f"Revoked {len(ids)} task(s) on {acknowledged} worker(s)"}

    def rerun(self, name: str, exception_type: str, clusters: Sequence[str], dry_run: bool,
              limit: int | None = None) -> dict[str, Any]:
        cap = RERUN_MAX if limit is None else min(limit, RERUN_MAX)
        if cap < 1:
            raise bad_request("Invalid 'limit': must be at least 1")
        ids, total = self._ids(name, exception_type, clusters, cap)
        answer: dict[str, Any] = {"dry_run": dry_run, "count": len(ids), "group_total": total,
                                  "warnings": self._left(total, len(ids))}
        if dry_run:
            checks = [self.tasks.rerun_check(task_id) for task_id in ids[:SAMPLE]]
            why_not = Counter(check["reason"] for check in checks if not check["rerunnable"])
            able = len(checks) - sum(why_not.values())
            return {**answer, "sample": ids[:SAMPLE], "sample_rerunnable": able,
                    "sample_refused": [{"reason": why, "count": n} for why, n in why_not.most_common(REASONS)],
                    "message": f"{len(ids)} task(s) would be re-run (of the first {len(checks)} checked, "
                               f"{able} can be)"}
        sent: list[dict[str, str]] = []
        refused: Counter[str] = Counter()
        for task_id in ids:
            try:
                result = self.tasks.rerun(task_id)
            except ControlError as exc:
                if exc.status != 409:
                    raise
                refused[exc.reason.partition("': ")[2] or exc.reason] += 1
                continue
            sent.append({"task-id": result["task-id"], "rerun-of": task_id})
        return {**answer, "sent": len(sent), "refused": sum(refused.values()), "reruns": sent,
                "refused_reasons": [{"reason": why, "count": n} for why, n in refused.most_common(REASONS)],
                "message": f"Re-ran {len(sent)} of {len(ids)} task(s)"
                           + (f"; {sum(refused.values())} could not be re-run" if refused else "")}
