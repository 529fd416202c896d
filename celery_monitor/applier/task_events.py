"""Celery's task event semantics: how one event changes one task.

Events can arrive out of order (several workers, several connections). A state is only replaced
by one that logically follows it; an earlier state's event still fills in the fields it alone
carries (a late ``task-received`` after ``task-succeeded`` still brings the name and args).
"""

from __future__ import annotations

from typing import Any

from celery_monitor.state.models import EVENT_TASK_FIELDS, TaskRecord
from celery_monitor.states import CUSTOM_RANK, EVENT_STATES, PENDING, RANK, RECEIVED, RETRY, STARTED

# What a state that arrives after a later one may still contribute.
_MERGE_ONLY: dict[str, frozenset[str]] = {
    RECEIVED: frozenset({"name", "args", "kwargs", "parent_id", "root_id", "retries", "eta", "expires"}),
}


def apply_task_event(task: TaskRecord, event: dict[str, Any]) -> str | None:
    """Apply ``event`` to ``task`` in place and return the state the event stands for; None when the
    task's timeline already held this very event (applied again all the same, not to be counted again).

    ``event`` has passed the boundary (:mod:`celery_monitor.applier.boundary`): every field it
    shares with the task has the task field's type.
    """
    event_type: str = event["type"]
    timestamp = event.get("timestamp")
    hostname = event.get("hostname")
    known = EVENT_STATES.get(event_type)
    state = known or (event_type[5:].upper() if event_type.startswith("task-") else event_type.upper())
    if known is not None:
        setattr(task, event_type[5:], timestamp)

    old_state = task.state
    takes_over = (old_state is None or state == RETRY or old_state == RETRY
                  or RANK.get(state, CUSTOM_RANK) <= RANK.get(old_state, CUSTOM_RANK))
    keep = None if takes_over else _MERGE_ONLY.get(state)

    # The set intersection runs in C over the event's keys: most events carry only a few task fields.
    copied = event.keys() & _COPIED if keep is None else event.keys() & keep
    for key in copied:
        value = event[key]
        if value is not None:
            setattr(task, key, value)
    if hostname and (takes_over or task.worker is None) and event_type != "task-sent":
        task.worker = hostname
    if event_type == "task-sent" and task.client is None and hostname:
        task.client = hostname
    if takes_over:
        task.state = state
        task.timestamp = timestamp
    if state not in _KNOWN_STATES:
        extra = {k: v for k, v in event.items() if k not in _ENVELOPE_KEYS}
        if extra:
            task.custom.setdefault(state, {}).update(extra)
    transitions = task.transitions
    entry = [state, timestamp, hostname]
    if isinstance(timestamp, int | float) and entry in transitions:
        # The same event again: a broker redelivering what a monitor killed before its flush had
        # read (RabbitMQ, replicas sharing a queue). Applying it again is harmless (and restores what
        # a repaired row lost); the timeline keeps it once, and the counters must not count it twice.
        return None
    if state == PENDING and _sent_before(transitions, entry):
        return state
    if transitions and isinstance(timestamp, int | float) and (
            not isinstance(last := transitions[-1][1], int | float) or last <= timestamp):
        transitions.append(entry)  # the usual case: in order
    else:
        _record_transition(transitions, entry)
    return state


# A worker receives a task after it was sent, but Celery stamps task-sent once the message is
# published, and a client's clock may run ahead of the workers': the sent event's time can come
# after the first events of the attempt it began. The timeline shows it before them all the same.
_AFTER_SENDING = frozenset({RECEIVED, STARTED})


def _sent_before(transitions: list[list[Any]], entry: list[Any]) -> bool:
    """Put a task-sent entry before the RECEIVED and STARTED entries at the timeline's end, unless
    there are none or they follow a send of their own (then this is a send again, kept in time
    order, as every other entry): whether it did."""
    index = len(transitions)
    while index > 0 and transitions[index - 1][0] in _AFTER_SENDING:
        index -= 1
    if index == len(transitions) or (index > 0 and transitions[index - 1][0] == PENDING):
        return False
    transitions.insert(index, entry)
    return True


def _record_transition(transitions: list[list[Any]], entry: list[Any]) -> None:
    """Keep the timeline in time order even when events arrive out of order."""
    timestamp = entry[1]
    index = len(transitions)
    if isinstance(timestamp, int | float):
        while index > 0:
            previous = transitions[index - 1][1]
            if not isinstance(previous, int | float) or previous <= timestamp:
                break
            index -= 1
    transitions.insert(index, entry)


# The state's own time is set only by the event that decides the state.
_COPIED = EVENT_TASK_FIELDS - {"timestamp"}
_KNOWN_STATES = frozenset(EVENT_STATES.values())

_ENVELOPE_KEYS = frozenset(
    {"type", "uuid", "hostname", "timestamp", "utcoffset", "pid", "clock", "local_received"}
)
