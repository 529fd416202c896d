"""Late start: the tasks workers already ran or held when the monitor started, from inspect replies.

At start-up and whenever a worker comes online the inspector asks it (or every worker) what it
runs (``active``), holds (``reserved``) and keeps for its ETA (``scheduled``). Each task listed
becomes an :class:`~celery_monitor.applier.settle.InspectedTask` for the applier: STARTED for an
active one, RECEIVED for the others (a scheduled one with its ``eta``). The applier decides what
it may change (nothing newer than the reply is overridden) and redacts the arguments as an
event's. Inspect replies carry the arguments as values (only ``active`` could give Celery's
``argsrepr``): they are shown as Celery's events show them, ``repr`` cut at 1,024 characters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from celery.utils.saferepr import saferepr

from celery_monitor.applier.settle import InspectedTask
from celery_monitor.states import RECEIVED, STARTED
from celery_monitor.supervision import Loop

REPR_LIMIT = 1024  # Celery's argsrepr_maxsize and kwargsrepr_maxsize defaults

Replies = dict[str, dict[str, Any]]


def _text(value: Any, as_tuple: bool = False) -> str | None:
    if value is None or isinstance(value, str):
        return value  # already a repr (an active task asked for safely)
    if as_tuple and isinstance(value, list):
        value = tuple(value)  # JSON made the args tuple a list: show it as the event would
    return saferepr(value, REPR_LIMIT)


def _requests(entry: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """(state, request, eta) for each task an inspect entry lists; malformed items are skipped."""
    for method, state in (("active", STARTED), ("reserved", RECEIVED)):
        items = entry.get(method)
        for request in items if isinstance(items, list) else ():
            if isinstance(request, dict):
                yield state, request, None
    scheduled = entry.get("scheduled")
    for item in scheduled if isinstance(scheduled, list) else ():
        if isinstance(item, dict) and isinstance(item.get("request"), dict):
            eta = item.get("eta")
            yield RECEIVED, item["request"], eta if isinstance(eta, str) else None


def inspected_tasks(replies: Replies, seen_at: float) -> list[InspectedTask]:
    """The tasks the replies list, per worker, as facts for the applier."""
    found: list[InspectedTask] = []
    for worker, entry in replies.items():
        if not isinstance(entry, dict):
            continue
        for state, request, eta in _requests(entry):
            uuid, name, started = request.get("id"), request.get("name"), request.get("time_start")
            if not isinstance(uuid, str) or not uuid:
                continue
            found.append(InspectedTask(
                uuid=uuid, worker=worker, state=state, seen_at=seen_at,
                name=name if isinstance(name, str) else None,
                args=_text(request.get("args"), as_tuple=True), kwargs=_text(request.get("kwargs")), eta=eta,
                started=float(started) if state == STARTED and isinstance(started, int | float) else None))
    return found


class LateStart:
    """Hands the tasks of watched inspect refreshes to the applier."""

    def __init__(self, submit: Callable[[list[InspectedTask]], None], loop: Loop) -> None:
        self.submit = submit
        self.loop = loop  # the inspector's: a failure here is counted with the replies it came from

    def watch(self, refresh: Future[Replies]) -> None:
        """Take the tasks of ``refresh`` once it answers, stamped with the time it was asked for
        (earlier than any reply: an event the applier has that is newer than it wins)."""
        asked_at = time.time()
        refresh.add_done_callback(lambda done: self._answered(done, asked_at))

    def _answered(self, refresh: Future[Replies], asked_at: float) -> None:
        if refresh.cancelled() or refresh.exception() is not None:
            return  # the inspector reports its own failures
        with self.loop.guard("late start"):
            facts = inspected_tasks(refresh.result(), asked_at)
            if facts:
                self.submit(facts)
