"""The redaction rules applied to task data that does not come from events.

Events are redacted as they arrive; these come from elsewhere and are redacted on their way out:

- worker inspect replies (active, reserved and scheduled requests hold the task's args and
  kwargs as the worker received them, before any ``argsrepr`` or ``--redact``);
- result-backend results (``/api/task/result``, ``/api/task/apply``): the result of a task that
  succeeded, or the exception and traceback of one that did not, under the rules of the event
  fields that carry the same data (``result``; ``exception`` and ``traceback``);
- task calls recorded in the audit trail (the args and kwargs given to apply and send-task).

Replies come from workers of any version: a request list in an unexpected shape is hidden rather
than passed on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from celery_monitor.auth.redact import MASK, Redactor, redact_request
from celery_monitor.states import EXCEPTION_RESULT_STATES

REQUEST_LISTS = ("active", "reserved")


def _requests(redactor: Redactor, items: Any) -> Any:
    if not isinstance(items, list):
        return MASK
    return [redact_request(redactor, item) if isinstance(item, dict) else MASK for item in items]


def _scheduled(redactor: Redactor, items: Any) -> Any:
    if not isinstance(items, list):
        return MASK
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("request"), dict):
            out.append({**item, "request": redact_request(redactor, item["request"])})
        else:
            out.append(MASK)
    return out


def inspect_details(redactor: Redactor | None, details: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per worker inspect details (the inspector's cache) with every task request redacted."""
    if not redactor:
        return details
    out: dict[str, dict[str, Any]] = {}
    for worker, entry in details.items():
        entry = dict(entry)
        for method in REQUEST_LISTS:
            if method in entry:
                entry[method] = _requests(redactor, entry[method])
        if "scheduled" in entry:
            entry["scheduled"] = _scheduled(redactor, entry["scheduled"])
        out[worker] = entry
    return out


def backend_result(redactor: Redactor | None, state: str, value: Any, traceback: str | None,
                   task: Mapping[str, Any] | None) -> tuple[Any, str | None]:
    """A result backend's (result, traceback) for a finished task, as the rules let it be shown.

    A failed (or revoked) task's result is its exception: it is shown, like the event field
    ``exception``, as its repr. ``task`` is what the history knows of the task, for ``format_task``.
    """
    failed = state in EXCEPTION_RESULT_STATES or isinstance(value, BaseException)
    if failed:
        value = repr(value)
    if not redactor:
        return value, traceback
    known = task or {}
    if failed:
        fields = redactor.redact({"exception": value, "traceback": traceback}, ("exception", "traceback"), known)
        return fields["exception"], fields["traceback"]
    return redactor.redact({"result": value}, (), known)["result"], traceback


def _decoded(value: Any) -> Any:
    """A form body's args or kwargs are JSON text; anything else is already a value."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return MASK
    return value


def task_call(redactor: Redactor | None, params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """A control request's parameters with the task call's args and kwargs redacted (for the audit trail)."""
    if not redactor:
        return params
    fields: dict[str, Any] = {field: _decoded(params[field]) for field in ("args", "kwargs") if field in params}
    if not fields:
        return params
    return {**params, **redactor.redact(fields, (), {"name": name})}
