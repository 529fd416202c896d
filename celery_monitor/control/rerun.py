"""Where a re-run takes the arguments it sends: only from a place that holds them exactly.

The args and kwargs events carry are Celery's ``argsrepr``/``kwargsrepr``: a repr cut at 1,024
characters (``'xxx...'`` inside the quotes, often still a valid literal of another value), or
whatever text the sender chose to show. Re-running from them can send a different payload than
the original, so they are never used. The exact arguments live in two places:

- the **result backend**, when the workers run with ``result_extended`` (Celery stores the args and
  kwargs the worker received beside the result);
- the task's **message**, while it still waits in a queue (read without taking it, JSON only).

With several clusters (``--clusters``) both are the task's own cluster's: its result backend, and its
queues on its broker.

Anything else is refused with 409 and the reason, which the task page shows on its re-run button.
Arguments the monitor redacts (``--redact``, ``format_task``) are refused too, whatever holds them:
whoever re-runs could not see what would be sent.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.backends.base import DisabledBackend
from celery.backends.rpc import RPCBackend

from celery_monitor.applier.boundary import cut
from celery_monitor.auth.redact import MASK, contains_mask
from celery_monitor.broker.envelopes import Undecodable, exact_call
from celery_monitor.broker.messages import BrokerUnreachable, QueueMessages, QueueUnreadable
from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER
from celery_monitor.control.errors import ControlError
from celery_monitor.states import FINISHED_STATES, PENDING, SUCCESS

RERUNNABLE_STATES = FINISHED_STATES - {SUCCESS}
ARGSREPR_LIMIT = 1024  # Celery's saferepr limit for argsrepr and kwargsrepr
CUT_MARK = cut("", 0)[:6]  # the event boundary's "…[cut:" marker
# Only a task no worker has taken can still have its message in a queue.
MAY_BE_QUEUED = frozenset({PENDING, None})
FROM_BACKEND, FROM_MESSAGE = "result-backend", "queued-message"


@dataclass(frozen=True, slots=True)
class ExactCall:
    args: list[Any]
    kwargs: dict[str, Any]
    source: str
    queue: str | None = None  # where it was sent, when the source says (the history may not know)


def refused(task_id: str, why: str) -> ControlError:
    return ControlError(409, f"Cannot re-run '{task_id}': {why}")


def _redacted(text: str | None) -> bool:
    if not text:
        return False
    try:
        return contains_mask(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return repr(MASK) in text or text == MASK


def looks_cut(text: str | None) -> bool:
    """Did Celery (at 1,024 characters) or the event boundary shorten this repr?"""
    if not text:
        return False
    return CUT_MARK in text or (len(text) >= ARGSREPR_LIMIT and "..." in text)


class RerunSources:
    def __init__(self, app: Celery, messages: QueueMessages, queue_names: Callable[..., list[str]],
                 cluster_messages: dict[str, QueueMessages] | None = None) -> None:
        """``queue_names(cluster)``: the queues measured on a cluster's broker (None: the first's)."""
        self.app = app  # the first cluster's: the one whose queues ``messages`` reads
        self.messages = messages
        self.queue_names = queue_names
        self.cluster_messages = cluster_messages or {}  # with several clusters, each one's queues

    def check_allowed(self, task: dict[str, Any], force: bool) -> None:
        """What refuses a re-run before any source is asked: no name, a state, redacted arguments."""
        task_id = task["uuid"]
        if not task.get("name"):
            raise refused(task_id, "its name is not known yet")
        if not force and task.get("state") not in RERUNNABLE_STATES:
            raise refused(task_id, f"it is {task.get('state') or 'in an unknown state'} (only "
                                   f"{', '.join(sorted(RERUNNABLE_STATES))} tasks; pass force=true)")
        if _redacted(task.get("args")) or _redacted(task.get("kwargs")):
            raise refused(task_id, "some of its arguments are redacted (--redact or format_task), so whoever "
                                   "re-runs it could not see what would be sent")

    def exact_call(self, task: dict[str, Any], app: Celery | None = None) -> ExactCall:
        """The args and kwargs the task was sent with, or a 409 saying why the monitor has none;
        ``app``: the task's cluster's (the first cluster's when not given)."""
        task_id = task["uuid"]
        app = app or self.app
        backend_says = self._from_backend(task_id, app)
        if isinstance(backend_says, ExactCall):
            return backend_says
        messages = self.cluster_messages.get(str(task.get("cluster") or DEFAULT_CLUSTER))
        if messages is None and app is self.app:
            messages = self.messages
        if messages is not None:
            message_says = self._from_message(task, messages)
        else:
            message_says = f"its queues, on cluster '{task.get('cluster')}', are not read here"
        if isinstance(message_says, ExactCall):
            return message_says
        recorded = "The arguments its events show are Celery's argsrepr, not what it was sent with"
        if looks_cut(task.get("args")) or looks_cut(task.get("kwargs")):
            recorded += " (and here they were cut short)"
        raise refused(task_id, f"the monitor has no exact copy of its arguments: {backend_says}; "
                               f"{message_says}. {recorded}.")

    # -- the result backend ------------------------------------------------------------------------

    def _from_backend(self, task_id: str, app: Celery) -> ExactCall | str:
        try:
            backend = app.backend
        except Exception as exc:  # an unloadable backend URL
            return f"the result backend cannot be loaded ({type(exc).__name__})"
        if isinstance(backend, DisabledBackend):
            return "no result backend is configured here (--result_backend)"
        if isinstance(backend, RPCBackend):  # results are messages to the caller: reading would take them
            return "the rpc:// result backend keeps no arguments (results are messages to the caller)"
        try:
            meta = backend.get_task_meta(task_id, cache=False)
        except Exception as exc:
            raise ControlError(503, f"Result backend unavailable: {type(exc).__name__}: {exc}") from None
        args, kwargs = meta.get("args"), meta.get("kwargs")
        if isinstance(args, list | tuple) and isinstance(kwargs, dict):
            # Celery keeps the routing key it was delivered with: the queue's name with its default routing.
            queue = meta.get("queue") if isinstance(meta.get("queue"), str) else None
            return ExactCall(list(args), kwargs, FROM_BACKEND, queue or None)
        if meta.get("status") == PENDING and meta.get("result") is None:
            return "the result backend has no record of it (never stored, or expired after result_expires)"
        return "the result backend keeps no arguments for it (the workers run without result_extended)"

    # -- the message, while it waits ------------------------------------------------------------

    def _from_message(self, task: dict[str, Any], messages: QueueMessages) -> ExactCall | str:
        if task.get("state") not in MAY_BE_QUEUED:
            return "its message left the broker when a worker took it"
        # With no queue in its events, look in those of its own cluster, on whose broker ``messages`` reads.
        queues = [task["queue"]] if task.get("queue") else self.queue_names(task.get("cluster") or None)
        for queue in queues:
            try:
                envelope = messages.find(queue, task["uuid"])
            except QueueUnreadable as exc:
                return f"its queue cannot be read ({exc})"
            except BrokerUnreachable as exc:
                raise ControlError(503, str(exc)) from None
            if envelope is None:
                continue
            try:
                args, kwargs = exact_call(envelope)
            except Undecodable as exc:
                return str(exc)
            return ExactCall(args, kwargs, FROM_MESSAGE, queue)
        return f"its message is not waiting in {', '.join(queues) or 'any known queue'}"
