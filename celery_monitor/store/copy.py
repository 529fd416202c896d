"""Copy a whole history from one store into an empty one (``celery-monitor db copy``).

Users who outgrow the embedded SQLite file move to PostgreSQL without losing what they have. The
copy goes through the ``Store`` interface only, so whatever either store derives from a task (sort
columns, the search index, the task names) is rebuilt on the target exactly as the monitor's own
writes would build it, and a copy back from PostgreSQL to a file works the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery_monitor.store.base import Store, StoreError
from celery_monitor.store.meta_keys import TIMELINE_KEYS
from celery_monitor.store.query import TaskQuery

# The meta entries that describe the history itself: the counters and the graphs' last hour. The
# spool position is left behind: it points into a spool directory of the source's monitor, which the
# target's monitor does not read.
COPIED_META = ("stats", *TIMELINE_KEYS)
TASK_BATCH = 2_000
AUDIT_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class CopyReport:
    tasks: int
    workers: int
    audit_entries: int
    failures: int = 0  # failures kept (--max_failed_tasks), trimmed from the tasks or not


def copy_history(source: Store, target: Store, progress: Callable[[int, int], None] | None = None,
                 batch: int = TASK_BATCH) -> CopyReport:
    """Write every task, kept failure, worker, audit entry and the saved counters of ``source`` into ``target``.

    The target must hold no history: merging two histories would renumber one of them under the
    other's tasks. Tasks go in the source's order (oldest first), so ``--max_tasks`` trims the
    same ones on either side. ``progress(done, total)`` is called after each batch of tasks.
    """
    if target.task_count() or target.audit_count() or target.failure_total():
        raise StoreError("the target already holds a history (tasks, failures or audit entries): "
                         "copy into an empty one")
    # The failures first, in their own order: failures outlive their tasks (--max_failed_tasks), so
    # some are nowhere else, and trimming them goes by that order. The tasks written next update
    # their rows in place.
    kept_failures = _copy_failures(source, target, batch)
    with source.snapshot():
        seqs = source.ordered_seqs(TaskQuery(descending=False))
    copied = 0
    for start in range(0, len(seqs), batch):
        tasks = [task for _seq, task in source.tasks_in_order(seqs[start:start + batch])]
        target.write(tasks, (), {})
        copied += len(tasks)
        if progress is not None:
            progress(copied, len(seqs))
    workers = source.load_workers()
    meta = {key: value for key in COPIED_META if (value := source.load_meta(key)) is not None}
    target.write((), workers, meta)
    entries = _audit_oldest_first(source)
    for entry in entries:
        target.add_audit(entry)
    return CopyReport(copied, len(workers), len(entries), kept_failures)


def _copy_failures(source: Store, target: Store, batch: int) -> int:
    copied, last = 0, 0
    while page := source.failures_after(last, batch):
        target.keep_failures(task for _seq, task in page)
        copied += len(page)
        last = page[-1][0]
    return copied


def _audit_oldest_first(source: Store) -> list[dict[str, Any]]:
    """The whole audit trail, oldest first, without the source's ids (the target numbers its own)."""
    newest_first: list[dict[str, Any]] = []
    while page := source.audit_entries(limit=AUDIT_PAGE, offset=len(newest_first)):
        newest_first.extend(page)
    for entry in newest_first:
        entry.pop("id", None)
    return newest_first[::-1]
