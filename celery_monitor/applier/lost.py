"""LOST: the tasks a worker held when it was lost, by Celery's heartbeat rule or by a restart.

A worker that is killed (OOM, node loss, ``kill -9``) sends nothing more: its RECEIVED and STARTED
tasks would stay so for ever. The applier turns them LOST when the worker's heartbeat expires
(twice its interval after the last one, :meth:`WorkerRecord.is_online`) or when ``worker-online``
says the hostname runs a new process (another ``pid``). Only tasks whose state is older than the
loss are lost: a task the new process received again (a redelivery with ``acks_late``) is not.
LOST ranks below every state (:data:`celery_monitor.states.RANK`), so any later event takes over.
"""

from __future__ import annotations

import math
from typing import Any

from celery_monitor.state.models import TaskRecord, WorkerRecord
from celery_monitor.states import HELD_STATES, LOST

# Tasks taken from the history per lost worker and sweep (those the live view no longer holds);
# more wait for the worker's next loss, or for the monitor's next start.
MAX_FROM_HISTORY = 5000
# Workers swept per pass (one history query each): after a restart of the monitor, thousands of
# workers the history knows may be offline; they are swept a hundred a second.
MAX_WORKERS_PER_SWEEP = 100


def restarted(worker: WorkerRecord, event: dict[str, Any]) -> bool:
    """Whether a ``worker-online`` event comes from another process than the one the monitor knew.

    Celery's ``worker-online`` carries the process id (and the software, which a restart keeps),
    not a start time: a new ``pid`` is the sign. A consumer restarting its connection sends
    ``worker-online`` again from the same process, whose tasks go on.
    """
    pid = event.get("pid")
    return (event.get("type") == "worker-online" and worker.pid is not None and pid is not None
            and pid != worker.pid)


def is_lost(task: TaskRecord, hostname: str, before: float) -> bool:
    """Whether ``task`` is held by ``hostname`` in a state older than ``before`` (the worker's clock)."""
    if task.state not in HELD_STATES or task.worker != hostname:
        return False
    stamp = task.timestamp
    return before == math.inf or not isinstance(stamp, int | float) or stamp < before


def mark_lost(task: TaskRecord, reason: str, at: float) -> None:
    """Turn ``task`` LOST at ``at`` (the worker's clock), the reason recorded in its timeline.

    The transition's third element, which for an event names the worker that sent it, holds the
    reason: the monitor sent no event.
    """
    transitions = task.transitions
    if transitions and isinstance(last := transitions[-1][1], int | float):
        at = max(at, last)  # the timeline stays in time order whatever the worker's clock said
    at = round(at, 6)
    task.state = LOST
    task.timestamp = at
    transitions.append([LOST, at, reason])
