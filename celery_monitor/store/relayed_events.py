"""Flower's task events on a standby replica, rebuilt from the task rows the leader wrote.

A standby reads no events: it learns from the leader's notification which tasks changed and reads
them back (``replica.Replica._relay``). Each transition of a task's timeline the standby has not
relayed yet is one event the leader applied: its type, time and worker come from the transition,
its fields from the task as the history holds it (so redacted as the history is). What the event
alone carried and the task does not keep is missing: Celery's clock, the worker's pid and
utcoffset. Transitions the monitor made itself (a task turned LOST, settled from the result
backend, seen in an inspect reply) were no events, and are not told as events here either.

A task this replica has not relayed before tells only its transitions of the last ``FRESH_SECONDS``:
older ones were told before this replica listened (or while it was down).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER
from celery_monitor.states import EVENT_STATES, LOST, MONITOR_REASONS

REMEMBERED_TASKS = 10_000  # tasks whose relayed transitions are remembered
FRESH_SECONDS = 10.0
_EVENT_OF_STATE = {state: event for event, state in EVENT_STATES.items()}
# What each event type carries besides uuid, hostname and timestamp, as far as the task keeps it.
_FIELDS: dict[str, tuple[str, ...]] = {
    "task-sent": ("name", "args", "kwargs", "retries", "eta", "expires", "queue", "exchange", "routing_key",
                  "root_id", "parent_id"),
    "task-received": ("name", "args", "kwargs", "retries", "eta", "expires", "root_id", "parent_id"),
    "task-succeeded": ("result", "runtime"),
    "task-failed": ("exception", "traceback"),
    "task-retried": ("exception", "traceback"),
}


class EventRebuilder:
    def __init__(self, remember: int = REMEMBERED_TASKS) -> None:
        self._relayed: OrderedDict[str, set[tuple[Any, ...]]] = OrderedDict()
        self._remember = remember

    def events(self, task: dict[str, Any], now: float | None = None) -> list[dict[str, Any]]:
        """The events of ``task``'s transitions not relayed before, oldest first."""
        uuid = task.get("uuid")
        transitions = task.get("transitions")
        if not isinstance(uuid, str) or not isinstance(transitions, list):
            return []
        known = self._relayed.pop(uuid, None)
        fresh_after = (time.time() if now is None else now) - FRESH_SECONDS if known is None else None
        relayed = known if known is not None else set()
        events = []
        for entry in transitions:
            if not isinstance(entry, list) or len(entry) < 3:
                continue
            key = tuple(entry[:3])
            if key in relayed:
                continue
            relayed.add(key)
            state, at, hostname = key
            if fresh_after is not None and not (isinstance(at, int | float) and at >= fresh_after):
                continue
            event = _event(task, uuid, state, at, hostname)
            if event is not None:
                events.append(event)
        self._relayed[uuid] = relayed
        while len(self._relayed) > self._remember:
            self._relayed.popitem(last=False)
        return events


def _event(task: dict[str, Any], uuid: str, state: Any, at: Any, hostname: Any) -> dict[str, Any] | None:
    if not isinstance(state, str) or state == LOST or hostname in MONITOR_REASONS:
        return None
    event_type = _EVENT_OF_STATE.get(state) or f"task-{state.lower()}"
    event: dict[str, Any] = {"type": event_type, "uuid": uuid, "hostname": hostname, "timestamp": at}
    cluster = task.get("cluster")
    if isinstance(cluster, str) and cluster != DEFAULT_CLUSTER:  # as the leader's applier marks them
        event["cluster"] = cluster
    for name in _FIELDS.get(event_type, ()):
        value = task.get(name)
        if value is not None:
            event[name] = value
    custom = (task.get("custom") or {}).get(state)
    if isinstance(custom, dict):  # a custom event (task-progress...): the data it brought
        event.update({k: v for k, v in custom.items() if k not in event})
    return event
