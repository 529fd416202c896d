"""Final states read from the result backend in bulk, as the texts Celery's events would carry.

A key-value backend (Redis, Valkey, memcached...) is read with one multi-get per batch
(``celery-task-meta-<id>`` keys); any other (database, MongoDB...) one task at a time through
Celery's own ``get_task_meta``, a few at once. The rpc:// backend is never read: its results are
messages to the caller, and reading one would take it away.

Results are shown as the worker's events show them (``saferepr`` of the value, an exception's repr,
the formatted traceback). A stored exception is formatted from its type and arguments without
rebuilding it: the backend is input, and Celery refuses to rebuild a class that is no exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.backends.base import DisabledBackend, KeyValueStoreBackend
from celery.backends.rpc import RPCBackend
from celery.exceptions import SecurityError
from celery.utils.saferepr import saferepr
from kombu.exceptions import ContentDisallowed, DecodeError

from celery_monitor.applier.settle import BackendOutcome
from celery_monitor.states import FAILURE, REVOKED, SUCCESS

READ_THREADS = 4  # tasks read at once from a backend that has no multi-get
REPR_LIMIT = 1024  # Celery's resultrepr_maxsize and argsrepr_maxsize defaults: what its events carry
OUTCOME_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
# What a record that cannot be read raises (not a backend out of reach): it costs that task only.
DECODE_ERRORS = (SecurityError, ContentDisallowed, DecodeError, ValueError, TypeError)


def unusable(app: Celery) -> str | None:
    """Why the app's result backend cannot be reconciled from, or None when it can."""
    try:
        backend = app.backend
    except Exception as exc:  # an unloadable backend URL
        return f"the result backend cannot be loaded ({type(exc).__name__})"
    if isinstance(backend, DisabledBackend):
        return "no result backend is configured (--result_backend)"
    if isinstance(backend, RPCBackend):
        return "the rpc:// result backend keeps no results to read (they are messages to the caller)"
    return None


def done_at(value: Any) -> float | None:
    """The backend's ``date_done`` (an ISO text or a datetime; UTC when it names no zone) as a timestamp."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()


def exception_text(value: Any) -> str:
    """An exception as ``Type('message')``, the form of a ``task-failed`` event's ``exception``."""
    if isinstance(value, BaseException):
        return saferepr(value, REPR_LIMIT)
    if isinstance(value, dict) and isinstance(value.get("exc_type"), str):
        message = value.get("exc_message")
        arguments = message if isinstance(message, list | tuple) else ([] if message is None else [message])
        return f"{value['exc_type']}({', '.join(saferepr(a, REPR_LIMIT) for a in arguments)})"[:REPR_LIMIT * 2]
    return saferepr(value, REPR_LIMIT)


def outcome_of(uuid: str, meta: Any) -> BackendOutcome | None:
    """The outcome a backend's meta dict holds, or None when it holds no final state."""
    if not isinstance(meta, dict) or meta.get("status") not in OUTCOME_STATES:
        return None
    state: str = meta["status"]
    value = meta.get("result")
    traceback = meta.get("traceback")
    args, kwargs = meta.get("args"), meta.get("kwargs")  # with result_extended
    name, worker = meta.get("name"), meta.get("worker")
    return BackendOutcome(
        uuid=uuid, state=state, done_at=done_at(meta.get("date_done")),
        result=saferepr(value, REPR_LIMIT) if state == SUCCESS else None,
        exception=None if state == SUCCESS else exception_text(value),
        traceback=traceback if isinstance(traceback, str) and state != SUCCESS else None,
        name=name if isinstance(name, str) else None,
        args=saferepr(tuple(args), REPR_LIMIT) if isinstance(args, list | tuple) else None,
        kwargs=saferepr(kwargs, REPR_LIMIT) if isinstance(kwargs, dict) else None,
        worker=worker if isinstance(worker, str) else None,
    )


class ResultReader:
    """Reads the outcomes of many tasks from one app's result backend (used by one thread)."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._pool: ThreadPoolExecutor | None = None

    def outcomes(self, uuids: list[str]) -> list[BackendOutcome]:
        """The final outcomes the backend holds for ``uuids`` (tasks it holds none for are left out).

        A failure to reach the backend raises; a record that cannot be decoded is left out alone.
        """
        backend = self.app.backend  # Celery keeps one backend per thread
        if isinstance(backend, KeyValueStoreBackend):
            payloads = backend.mget([backend.get_key_for_task(uuid) for uuid in uuids])
            metas = zip(uuids, self._decoded(backend.decode, payloads), strict=True)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="reconcile-read")
            metas = zip(uuids, self._pool.map(self._meta, uuids), strict=True)
        return [outcome for uuid, meta in metas if (outcome := outcome_of(uuid, meta)) is not None]

    @staticmethod
    def _decoded(decode: Callable[[Any], Any], payloads: Iterable[Any]) -> list[Any]:
        out: list[Any] = []
        for payload in payloads:
            try:
                out.append(decode(payload) if payload else None)
            except DECODE_ERRORS:  # a content type not accepted, a damaged record: that task stays as it is
                out.append(None)
        return out

    def _meta(self, uuid: str) -> Any:
        try:
            return self.app.backend.get_task_meta(uuid, cache=False)
        except DECODE_ERRORS:  # a record Celery refuses to rebuild: that task stays as it is
            return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
