"""Task actions: run a task (and wait for it), read a result, abort, revoke, re-run with exact arguments."""

from __future__ import annotations

import contextlib
import signal as signal_module
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import orjson
from celery import Celery
from celery.backends.base import DisabledBackend
from celery.contrib.abortable import AbortableAsyncResult
from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult
from kombu.exceptions import EncodeError, OperationalError

from celery_monitor.auth import redact_replies
from celery_monitor.auth.redact import Redactor
from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER
from celery_monitor.control.broadcast import Broadcaster, broker_connection
from celery_monitor.control.calls import TaskCall
from celery_monitor.control.errors import ControlError, bad_request, not_found, unavailable
from celery_monitor.control.rerun import FROM_BACKEND, ExactCall, RerunSources
from celery_monitor.states import FAILURE, PENDING, RESULT_READY_STATES

BACKEND_NOT_CONFIGURED = "Result backend is not configured"
# How long apply waits for a result unless told (Flower waits forever; a request should not).
APPLY_WAIT = 300.0
# Requests waiting for a result at once. Each holds one of the control plane's threads (16) while it
# waits, so a few callers of apply must never leave revoke, terminate or a pool change without one.
RESULT_WAITERS = 8
MAX_LOOKUPS = 1000  # tasks of one revoke whose clusters are looked up (more: revoked on every cluster)


def signal_name(raw: str) -> str:
    """``TERM``, ``SIGTERM``, ``sigterm`` or ``15`` -> ``SIGTERM``; 400 for anything else."""
    text = raw.strip().upper()
    try:
        sig = signal_module.Signals(int(text)) if text.isdigit() else signal_module.Signals[
            text if text.startswith("SIG") else f"SIG{text}"]
    except (KeyError, ValueError):
        raise bad_request(f"Invalid 'signal': {raw!r} is not a signal name (e.g. SIGTERM, SIGKILL)") from None
    return sig.name


def safe_value(value: Any) -> Any:
    """The value itself when it can be JSON, else its repr (exceptions, custom objects)."""
    try:
        orjson.dumps(value)
    except TypeError:
        return repr(value)
    return value


class TaskControl:
    """Task actions. ``cluster`` (with ``--clusters``) says whose app a call goes through: its broker
    takes the message and its result backend answers; ``None`` is the first (or only) cluster."""

    def __init__(self, app: Celery, broadcaster: Broadcaster, knows_task: Callable[[str, str | None], bool],
                 find_task: Callable[[str], dict[str, Any] | None], online_count: Callable[[], int],
                 redactor: Callable[[], Redactor | None] = lambda: None,
                 rerun_sources: RerunSources | None = None) -> None:
        self.app = app
        self.broadcaster = broadcaster
        self.knows_task = knows_task
        self.find_task = find_task
        self.online_count = online_count
        self.redactor = redactor  # --redact and format_task hold for results read from the backend too
        self.rerun_sources = rerun_sources
        self._waiters = threading.BoundedSemaphore(RESULT_WAITERS)

    @contextlib.contextmanager
    def waiting_slot(self) -> Iterator[None]:
        """One of the few places to wait for a result in; 503 when every one is taken."""
        if not self._waiters.acquire(blocking=False):
            raise unavailable(f"{RESULT_WAITERS} requests already wait for task results: try again later, "
                              "or ask with a shorter timeout")
        try:
            yield
        finally:
            self._waiters.release()

    # -- running tasks ---------------------------------------------------------------------------

    def app_for(self, cluster: str | None) -> Celery:
        """The app of ``cluster`` (the API checked the name); the first cluster's for ``None``."""
        if cluster is None:
            return self.app
        return self.broadcaster.apps.apps.get(cluster, self.app)

    @property
    def backend_configured(self) -> bool:
        return self.has_backend(self.app)

    @staticmethod
    def has_backend(app: Celery) -> bool:
        try:
            return not isinstance(app.backend, DisabledBackend)
        except Exception:  # an unloadable backend URL
            return False

    def require_backend(self, app: Celery | None = None) -> None:
        if not self.has_backend(app or self.app):
            raise unavailable(BACKEND_NOT_CONFIGURED)

    def send(self, name: str, call: TaskCall, cluster: str | None = None) -> AsyncResult[Any]:
        app = self.app_for(cluster)
        with broker_connection(app, self.broadcaster.timeout) as conn:
            try:
                task = app.tasks.get(name)
                if task is not None:
                    # Celery passes connection= on to the producer and takes a list of args; its stubs
                    # (celery-types) know neither.
                    return task.apply_async(call.args, call.kwargs, connection=conn,  # type: ignore[call-arg, arg-type]
                                            **call.options)
                return app.send_task(name, call.args, call.kwargs, connection=conn, **call.options)
            except (TypeError, ValueError, EncodeError) as exc:
                raise bad_request(f"Cannot send '{name}': {exc}") from None
            except (OperationalError, OSError) as exc:
                raise unavailable(f"Broker unavailable: {exc}") from None
            except Exception as exc:  # e.g. the result backend refusing the result subscription
                raise unavailable(f"Cannot send '{name}': {type(exc).__name__}: {exc}") from None

    def _require_task(self, name: str, cluster: str | None) -> None:
        if not name or not self.knows_task(name, cluster):
            where = f" on cluster '{cluster}'" if cluster is not None and len(self.broadcaster.apps.apps) > 1 else ""
            raise not_found(f"Unknown task '{name}'{where}")

    def apply(self, name: str, call: TaskCall, wait: float | None, cluster: str | None = None) -> dict[str, Any]:
        """Send and wait for the result (Flower's apply), read from the cluster's result backend."""
        self.require_backend(self.app_for(cluster))
        self._require_task(name, cluster)
        with self.waiting_slot():  # taken before sending: a refused call sends nothing
            result = self.send(name, call, cluster)
            return self._wait(result, APPLY_WAIT if wait is None else wait)

    def async_apply(self, name: str, call: TaskCall, cluster: str | None = None) -> dict[str, Any]:
        self._require_task(name, cluster)
        return self._sent(self.send(name, call, cluster), cluster)

    def send_task(self, name: str, call: TaskCall, cluster: str | None = None) -> dict[str, Any]:
        if not name:
            raise bad_request("Missing task name")
        return self._sent(self.send(name, call, cluster), cluster)

    def _sent(self, result: AsyncResult[Any], cluster: str | None) -> dict[str, Any]:
        response: dict[str, Any] = {"task-id": result.id}
        if self.has_backend(self.app_for(cluster)):
            response["state"] = self._state(result)
        return response

    # -- results ---------------------------------------------------------------------------------

    def app_of(self, task_id: str) -> Celery:
        """The app of the task's cluster (its result backend), or the first cluster's for a task the
        monitor does not know."""
        apps = self.broadcaster.apps.apps
        if len(apps) == 1:
            return self.app
        task = self.find_task(task_id)
        return apps.get(str(task.get("cluster")), self.app) if task else self.app

    def result(self, task_id: str, timeout: float | None) -> dict[str, Any]:
        app = self.app_of(task_id)
        if app is self.app:
            self.require_backend()
        elif isinstance(app.backend, DisabledBackend):
            raise unavailable(BACKEND_NOT_CONFIGURED)
        if not timeout:
            return self._wait(app.AsyncResult(task_id), timeout)
        with self.waiting_slot():
            return self._wait(app.AsyncResult(task_id), timeout)

    def _state(self, result: AsyncResult[Any]) -> str:
        try:
            return str(result.state)
        except Exception as exc:
            raise unavailable(f"Result backend unavailable: {exc}") from None

    def _wait(self, result: AsyncResult[Any], timeout: float | None) -> dict[str, Any]:
        if timeout:
            try:
                result.get(timeout=timeout, propagate=False, disable_sync_subtasks=False)
            except ResultTimeout:
                pass
            except Exception as exc:
                raise unavailable(f"Result backend unavailable: {exc}") from None
        response: dict[str, Any] = {"task-id": result.id, "state": self._state(result)}
        if response["state"] in RESULT_READY_STATES:
            try:
                # The backend keeps the traceback formatted, a string (celery-types says a traceback object).
                value, traceback = result.result, cast("str | None", result.traceback)
            except Exception as exc:
                raise unavailable(f"Result backend unavailable: {exc}") from None
            redactor = self.redactor()
            known = self.find_task(result.id) if redactor else None
            value, traceback = redact_replies.backend_result(redactor, response["state"], value, traceback, known)
            response["result"] = safe_value(value)
            if response["state"] == FAILURE:
                response["traceback"] = traceback
        return response

    # -- stopping tasks --------------------------------------------------------------------------

    def abort(self, task_id: str) -> str:
        app = self.app_of(task_id)
        if app is self.app:
            self.require_backend()
        elif isinstance(app.backend, DisabledBackend):
            raise unavailable(BACKEND_NOT_CONFIGURED)
        result: AbortableAsyncResult[Any] = AbortableAsyncResult(task_id, app=app)
        if self.find_task(task_id) is None and self._state(result) == PENDING:
            raise not_found(f"Unknown task '{task_id}'")
        try:
            result.abort()
        except Exception as exc:
            raise unavailable(f"Result backend unavailable: {exc}") from None
        return f"Aborted '{task_id}'"

    def revoke(self, task_ids: list[str], terminate: bool, signal: str) -> int:
        """Revoke on every worker; returns how many workers acknowledged."""
        if not task_ids:
            raise bad_request("No task to revoke")
        arguments = {"task_id": task_ids, "terminate": terminate, "signal": signal_name(signal)}
        # To the clusters of the tasks the monitor knows (every cluster for one it does not): another
        # cluster's broker being down does not stop a revoke of this one's tasks.
        known = [self.find_task(task_id) for task_id in task_ids[:MAX_LOOKUPS]]
        reached = None if None in known or len(task_ids) > MAX_LOOKUPS else sorted(
            {str(task.get("cluster") or DEFAULT_CLUSTER) for task in known if task is not None})
        replies = self.broadcaster.call("revoke", arguments, expected=self.online_count(), clusters=reached)
        return len(replies)

    # -- re-running ------------------------------------------------------------------------------

    def _rerun_subject(self, task_id: str, force: bool) -> tuple[dict[str, Any], ExactCall]:
        """The task and exactly how it was called, or the error saying why it cannot be re-run."""
        task = self.find_task(task_id)
        if task is None:
            raise not_found(f"Unknown task '{task_id}'")
        if self.rerun_sources is None:
            raise unavailable("Re-run is not available here")
        self.rerun_sources.check_allowed(task, force)
        return task, self.rerun_sources.exact_call(task, self.app_for(self._cluster_of(task)))

    def _cluster_of(self, task: dict[str, Any]) -> str | None:
        """The cluster a known task ran on, if this monitor watches it (else the first cluster)."""
        cluster = str(task.get("cluster") or DEFAULT_CLUSTER)
        return cluster if cluster in self.broadcaster.apps.apps else None

    def rerun_check(self, task_id: str, force: bool = False) -> dict[str, Any]:
        """Could the task be re-run now, with which arguments' source, or why not (sends nothing)."""
        try:
            _, call = self._rerun_subject(task_id, force)
        except ControlError as exc:
            if exc.status != 409:
                raise
            return {"task-id": task_id, "rerunnable": False, "args-from": None, "reason": exc.reason}
        return {"task-id": task_id, "rerunnable": True, "args-from": call.source, "reason": None}

    def rerun(self, task_id: str, force: bool = False) -> dict[str, Any]:
        """Send a task again, with exactly the args and kwargs it was sent with (a new task id)."""
        task, call = self._rerun_subject(task_id, force)
        options: dict[str, Any] = {}
        queue = task.get("queue") or call.queue
        if queue:
            options["queue"] = queue
        result = self.send(task["name"], TaskCall(call.args, call.kwargs, options), self._cluster_of(task))
        where = "the result backend" if call.source == FROM_BACKEND else "its message in the queue"
        return {"task-id": result.id, "rerun-of": task_id, "args-from": call.source,
                "message": f"Re-ran '{task_id}' as '{result.id}' with its arguments from {where}"}
