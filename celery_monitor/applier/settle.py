"""What the monitor learns of a task elsewhere than in its events, and how it changes the task.

Two sources, each a fact handed to the applier (the one writer of the live view) by a background
part of the monitor:

- :class:`BackendOutcome`: the final state the result backend holds for a task whose final event
  was missed (the monitor was down, the stream broke). It settles a task only if the task is still
  unfinished and nothing the monitor heard of it (an event, an inspect reply) is newer than the
  outcome (a task sent again under the same id keeps its new run).
- :class:`InspectedTask`: a task a worker's inspect reply says it runs (STARTED), holds (RECEIVED)
  or keeps for its ETA (RECEIVED, with ``eta``) — the tasks that were already there when the
  monitor started. It fills in what the monitor did not know and moves the state only where
  Celery's precedence lets it and no event is newer than the reply.

Each change of state is a transition whose third element says where it came from
(:data:`celery_monitor.states.MONITOR_REASONS`), where an event's names its worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from celery_monitor.state.models import TaskRecord
from celery_monitor.states import (
    CUSTOM_RANK,
    FAILURE,
    FINISHED_STATES,
    INSPECTED,
    MONITOR_REASONS,
    RANK,
    RECONCILED,
    RETRY,
    REVOKED,
    STARTED,
    SUCCESS,
)

# The task field that holds the time of each final state the backend may report.
_DONE_FIELDS = {SUCCESS: "succeeded", FAILURE: "failed", REVOKED: "revoked"}
# The monitor's own transitions that say nothing new of the task's run.
_NOT_HEARD = MONITOR_REASONS - {INSPECTED}
# What the backend may tell of a task the events did not (with result_extended), and late start too.
_FILLED = ("name", "args", "kwargs", "worker")


@dataclass(frozen=True, slots=True)
class BackendOutcome:
    """A task's final state as the result backend holds it; texts as Celery's events carry them."""

    uuid: str
    state: str  # SUCCESS, FAILURE or REVOKED
    done_at: float | None = None  # the backend's date_done (the worker's clock), when it says
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    name: str | None = None
    args: str | None = None
    kwargs: str | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class InspectedTask:
    """A task one worker's inspect reply listed (active, reserved or scheduled)."""

    uuid: str
    worker: str
    state: str  # STARTED (active) or RECEIVED (reserved, scheduled)
    seen_at: float  # when the reply came (the monitor's clock)
    name: str | None = None
    args: str | None = None
    kwargs: str | None = None
    eta: str | None = None
    started: float | None = None  # when the worker started it (its clock), for an active task


Fact = BackendOutcome | InspectedTask
FactT = TypeVar("FactT", BackendOutcome, InspectedTask)


def latest_event_time(task: TaskRecord) -> float | None:
    """When the monitor last heard of the task's run: its events, and inspect replies (the worker
    itself said so), not the states it judged (LOST) or read back (reconciled)."""
    latest: float | None = None
    for transition in task.transitions:
        at = transition[1] if len(transition) > 1 else None
        why = transition[2] if len(transition) > 2 else None
        if isinstance(at, int | float) and why not in _NOT_HEARD and (latest is None or at > latest):
            latest = float(at)
    return latest


def _last_transition_time(task: TaskRecord) -> float | None:
    times = [t[1] for t in task.transitions if len(t) > 1 and isinstance(t[1], int | float)]
    return max(times) if times else None


def _append(task: TaskRecord, state: str, at: float, reason: str) -> None:
    """Record the monitor's transition at the end of the timeline (kept in time order)."""
    last = _last_transition_time(task)
    at = round(at if last is None else max(at, last), 6)
    task.state = state
    task.timestamp = at
    task.transitions.append([state, at, reason])


def settles(task: TaskRecord, outcome: BackendOutcome) -> bool:
    """Whether the backend's outcome is news: the task is known, unfinished, and no event is newer."""
    if not task.transitions or task.state in FINISHED_STATES:
        return False
    latest = latest_event_time(task)
    return outcome.done_at is None or latest is None or latest <= outcome.done_at


def apply_outcome(task: TaskRecord, outcome: BackendOutcome, now: float) -> dict[str, Any]:
    """Settle ``task`` with the backend's outcome (check :func:`settles` first).

    Returns what it brought as an event would carry it, for the redactor to apply the same rules.
    ``now`` (the worker's clock) stands in for a ``date_done`` the backend did not keep.
    """
    state = outcome.state
    done_at = outcome.done_at if outcome.done_at is not None else now
    brought: dict[str, Any] = {"type": f"task-{_DONE_FIELDS[state]}"}
    setattr(task, _DONE_FIELDS[state], done_at)
    for field in ("result", "exception", "traceback"):
        value = getattr(outcome, field)
        if value is not None:
            setattr(task, field, value)
            brought[field] = value
    for field in _FILLED:
        value = getattr(outcome, field)
        if value is not None and getattr(task, field) is None:
            setattr(task, field, value)
            brought[field] = value
    _append(task, state, done_at, RECONCILED)
    return brought


def apply_inspected(task: TaskRecord, seen: InspectedTask, at: float) -> tuple[bool, dict[str, Any]]:
    """Let an inspect reply fill in ``task`` and, where nothing newer says otherwise, set its state.

    ``at`` is when the reply came, on the worker's clock. Returns whether anything changed, and
    the fields it brought as an event would carry them (for the redactor).
    """
    brought: dict[str, Any] = {"type": "task-received"}
    for field in ("name", "args", "kwargs", "eta"):
        value = getattr(seen, field)
        if value is not None and getattr(task, field) is None:
            setattr(task, field, value)
            brought[field] = value
    old = task.state
    last = _last_transition_time(task)
    newer = last is not None and last > at
    moves = old != seen.state and not newer and (
        old is None or old == RETRY or RANK.get(seen.state, CUSTOM_RANK) <= RANK.get(old, CUSTOM_RANK))
    changed = moves or len(brought) > 1 or task.worker is None
    if moves or task.worker is None:
        task.worker = seen.worker
    if moves:
        since = at
        if seen.state == STARTED and seen.started is not None:
            since = min(at, seen.started)  # the worker says when it started the task
            if task.started is None:
                task.started = seen.started
        _append(task, seen.state, since, INSPECTED)
    return changed, brought
