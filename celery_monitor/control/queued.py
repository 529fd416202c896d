"""Which waiting messages a task filter selects: /api/tasks's filters applied to a queued task.

A queued task is PENDING, has run on no worker, was received by none and has no result: a state
filter without PENDING, a worker filter or a received-time filter leaves every queued task out.
The search is matched by the history's own rules (:func:`celery_monitor.store.search.matches`) on
what the message's headers say: the task's id, name, ``argsrepr`` and ``kwargsrepr``.
"""

from __future__ import annotations

from typing import Any

from celery_monitor import states
from celery_monitor.broker.envelopes import QueuedTask
from celery_monitor.store import search
from celery_monitor.store.query import TaskQuery

PENDING = states.PENDING.casefold()


def may_be_queued(query: TaskQuery) -> bool:
    """Can this filter's fields (the search aside) select a task that still waits in a queue?"""
    if query.states and PENDING not in (s.casefold() for s in query.states):
        return False
    return not (query.workers or query.received_start is not None or query.received_end is not None)


def as_task(task: QueuedTask) -> dict[str, Any]:
    """The queued task in the history's shape, for the search."""
    return {"uuid": task.uuid, "name": task.name, "state": states.PENDING, "worker": None, "args": task.args,
            "kwargs": task.kwargs, "result": None}


def matches(task: QueuedTask, query: TaskQuery) -> bool:
    if not may_be_queued(query):
        return False
    if query.names and (task.name or "").casefold() not in (n.casefold() for n in query.names):
        return False
    return search.matches(query.search.expression, as_task(task))
