"""Hiding secrets in task data before the monitor stores, shows or exports it.

Two tools, applied by the applier right after each task event, so the history, the API, the pages,
the WebSocket feeds and every export only ever see the result:

- ``--redact kwargs.password,args.2,result.token,traceback``: paths into a task's fields. Celery
  sends args, kwargs and results as Python reprs; a path parses the repr, replaces the value it
  names with ``'[redacted]'`` and prints it again. When a field cannot be parsed (Celery cuts long
  reprs short) the whole field is replaced: unreadable is safer than leaked.
- ``format_task(task)`` from the config file (as in Flower): it gets the task record and may change
  its fields or return another object with them. If it raises, the task's data fields are replaced.
"""

from __future__ import annotations

import ast
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from celery_monitor.state.models import TaskRecord

log = logging.getLogger(__name__)

MASK = "[redacted]"
FIELDS = ("args", "kwargs", "result", "exception", "traceback")
PARSED_FIELDS = frozenset({"args", "kwargs", "result"})
REMEMBERED = 1024
ERROR_LOG_INTERVAL = 60.0


def parse_paths(items: Iterable[str]) -> dict[str, list[list[str]]]:
    """``field.key.key`` paths grouped by field; ValueError naming a bad one."""
    paths: dict[str, list[list[str]]] = {}
    for item in items:
        field, *keys = item.strip().split(".")
        if field not in FIELDS or any(not key for key in keys):
            raise ValueError(f"{item!r}: expected one of {', '.join(FIELDS)} followed by .key or .index parts")
        if keys and field not in PARSED_FIELDS:
            raise ValueError(f"{item!r}: only args, kwargs and result can be redacted in part")
        paths.setdefault(field, []).append(keys)
    return paths


def _mask_path(value: Any, keys: list[str]) -> Any:
    """``value`` with the item at ``keys`` masked (missing keys leave it as it is)."""
    if not keys:
        return MASK
    key, rest = keys[0], keys[1:]
    if isinstance(value, dict):
        for candidate in list(value):
            if str(candidate) == key or key == "*":
                value[candidate] = _mask_path(value[candidate], rest)
        return value
    if isinstance(value, list | tuple):
        items = list(value)
        wanted = int(key) if key.lstrip("-").isdigit() else None
        if wanted is not None and wanted < 0:
            wanted += len(items)
        for index in range(len(items)):
            if key == "*" or index == wanted:
                items[index] = _mask_path(items[index], rest)
        return tuple(items) if isinstance(value, tuple) else items
    return value


def redact_text(text: str, paths: list[list[str]]) -> str:
    """The repr ``text`` with every path masked; the mask alone when a path targets all of it."""
    if any(not keys for keys in paths):
        return repr(MASK)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return repr(MASK)
    for keys in paths:
        value = _mask_path(value, keys)
    return repr(value)


class Redactor:
    def __init__(self, paths: Iterable[str] = (), format_task: Callable[[Any], Any] | None = None) -> None:
        self.paths = parse_paths(paths)
        self.format_task = format_task
        self._remembered: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._last_error_log = 0.0

    def __bool__(self) -> bool:
        return bool(self.paths) or self.format_task is not None

    def redact_field(self, field: str, text: str) -> str:
        key = (field, text)
        done = self._remembered.get(key)
        if done is None:
            done = redact_text(text, self.paths[field])
            self._remembered[key] = done
            if len(self._remembered) > REMEMBERED:
                self._remembered.popitem(last=False)
        return done

    def apply(self, task: TaskRecord, event: dict[str, Any]) -> None:
        """Redact the fields ``event`` just brought, in the task record and in the event itself."""
        for field, _paths in self.paths.items():
            raw = event.get(field)
            if raw is None:
                continue
            text = raw if isinstance(raw, str) else repr(raw)
            redacted = self.redact_field(field, text)
            event[field] = redacted
            if getattr(task, field) == text:
                setattr(task, field, redacted)
        if self.format_task is not None:
            self._format(task, event)

    def _format(self, task: TaskRecord, event: dict[str, Any]) -> None:
        try:
            formatted = self.format_task(task)  # type: ignore[misc]
            source = task if formatted is None else formatted
            for field in FIELDS:
                kept = getattr(task, field)
                value = source.get(field, kept) if isinstance(source, dict) else getattr(source, field, kept)
                setattr(task, field, value if value is None or isinstance(value, str) else repr(value))
        except Exception as exc:  # user code: never let it stop ingestion, never let data through
            for field in FIELDS:
                if getattr(task, field) is not None:
                    setattr(task, field, repr(MASK))
            now = time.monotonic()
            if now - self._last_error_log > ERROR_LOG_INTERVAL:
                self._last_error_log = now
                log.warning("format_task failed (%s); the task's data is hidden", type(exc).__name__)
        for field in FIELDS:
            if field in event:
                event[field] = getattr(task, field)


def redact_request(redactor: Redactor | None, request: dict[str, Any]) -> dict[str, Any]:
    """Redact a task request as inspect replies hold it (``args``/``kwargs`` as values or reprs)."""
    if not redactor or not redactor.paths:
        return request
    out = dict(request)
    for field in ("args", "kwargs"):
        if field in out and field in redactor.paths and out[field] is not None:
            raw = out[field]
            out[field] = redactor.redact_field(field, raw if isinstance(raw, str) else repr(raw))
    return out
