"""Hiding secrets in task data, wherever the monitor lets it out.

Two tools, one set of rules, the same for every identity (an admin and a read-only viewer see the
same hidden values; redaction is a property of the data, not of who looks):

- ``--redact kwargs.password,args.2,result.token,traceback``: paths into a task's fields. Celery
  sends args, kwargs and results as Python reprs; a path parses the repr, replaces the value it
  names with ``'[redacted]'`` and prints it again. When a field cannot be parsed (Celery cuts long
  reprs short) the whole field is replaced: unreadable is safer than leaked.
- ``format_task(task)`` from the config file (as in Flower): it gets the task record and may change
  its fields or return another object with them. If it raises, the task's data fields are replaced.

Events are redacted by the applier as they arrive (:meth:`Redactor.apply`), so the history, the
search index, the API, the pages and the WebSocket feeds only ever hold the result. Task data that
does not come from events goes through :meth:`Redactor.redact` on its way out
(:mod:`celery_monitor.auth.redact_replies`: worker inspect replies, result-backend results, task
calls recorded in the audit trail). Any new way out for task data (an export, a notification, a
webhook) must pass through one of the two as well.
"""

from __future__ import annotations

import ast
import copy
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import orjson

from celery_monitor.state.models import TaskRecord

log = logging.getLogger(__name__)

MASK = "[redacted]"
FIELDS = ("args", "kwargs", "result", "exception", "traceback")
PARSED_FIELDS = frozenset({"args", "kwargs", "result"})
REMEMBERED = 1024
ERROR_LOG_INTERVAL = 60.0
_LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


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
    except _LITERAL_ERRORS:
        return repr(MASK)
    for keys in paths:
        value = _mask_path(value, keys)
    return repr(value)


def redact_value(value: Any, paths: list[list[str]]) -> Any:
    """A copy of the decoded ``value`` (a list, a dict...) with every path masked; the original is untouched."""
    if any(not keys for keys in paths):
        return MASK
    try:
        value = copy.deepcopy(value)
    except Exception:  # something that cannot even be copied cannot be shown safely either
        return MASK
    for keys in paths:
        value = _mask_path(value, keys)
    return value


def contains_mask(value: Any) -> bool:
    """Does a decoded value hold the mask anywhere (so it is not the value the task was sent with)?"""
    if isinstance(value, str):
        return value == MASK
    if isinstance(value, dict):
        return any(contains_mask(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(contains_mask(item) for item in value)
    return False


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

    # -- events, as they arrive --------------------------------------------------------------------

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
        self._redact_custom(task, event)

    def _format(self, task: TaskRecord, event: dict[str, Any]) -> None:
        if not self._run_format_task(task):
            for field in FIELDS:
                if getattr(task, field) is not None:
                    setattr(task, field, repr(MASK))
        for field in FIELDS:
            if field in event:
                event[field] = getattr(task, field)

    def _redact_custom(self, task: TaskRecord, event: dict[str, Any]) -> None:
        """A custom event's data is kept per state: its task data fields get the event's redacted values."""
        event_type = event.get("type")
        if not task.custom or not isinstance(event_type, str):
            return
        kept = task.custom.get(event_type[5:].upper() if event_type.startswith("task-") else event_type.upper())
        if isinstance(kept, dict):
            for field in FIELDS:
                if field in kept and field in event:
                    kept[field] = event[field]

    def _run_format_task(self, task: TaskRecord) -> bool:
        """Let ``format_task`` change ``task``'s data fields in place; False when it failed (user code)."""
        try:
            format_task = self.format_task  # set whenever this runs (the callers check)
            formatted = None if format_task is None else format_task(task)
            source = task if formatted is None else formatted
            for field in FIELDS:
                kept = getattr(task, field)
                value = source.get(field, kept) if isinstance(source, dict) else getattr(source, field, kept)
                setattr(task, field, value if value is None or isinstance(value, str) else repr(value))
        except Exception as exc:  # never let it stop ingestion or a request, never let data through
            now = time.monotonic()
            if now - self._last_error_log > ERROR_LOG_INTERVAL:
                self._last_error_log = now
                log.warning("format_task failed (%s); the task's data is hidden", type(exc).__name__)
            return False
        return True

    # -- task data from elsewhere, on its way out --------------------------------------------------

    def redact(self, fields: Mapping[str, Any], texts: Collection[str] = (),
               task: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``fields`` (some of args, kwargs, result, exception, traceback) with the rules applied.

        Values named in ``texts`` are Python reprs or plain text, as events carry them; the others
        are decoded values (a list of args, a result dict) and keep their shape: paths mask inside
        them. ``task`` is what the history knows of the task (uuid, name...), for ``format_task``.
        """
        out = dict(fields)
        for field, value in fields.items():
            paths = self.paths.get(field)
            if paths and value is not None:
                out[field] = self.redact_field(field, value) if field in texts and isinstance(value, str) \
                    else redact_value(value, paths)
        if self.format_task is not None:
            out = self._format_fields(out, texts, task or {})
        return out

    def _format_fields(self, fields: dict[str, Any], texts: Collection[str],
                       known: Mapping[str, Any]) -> dict[str, Any]:
        def as_text(field: str, value: Any) -> str | None:
            if value is None:
                return None
            return value if field in texts and isinstance(value, str) else repr(value)

        record = TaskRecord.from_dict({**{k: v for k, v in known.items() if k != "custom"},
                                       "uuid": str(known.get("uuid") or "")})
        shown = {field: as_text(field, value) for field, value in fields.items()}
        for field, text in shown.items():
            setattr(record, field, text)
        if not self._run_format_task(record):
            masked = {f: (repr(MASK) if f in texts else MASK) for f, v in fields.items() if v is not None}
            return {**fields, **masked}
        out = dict(fields)
        for field, text in shown.items():
            changed = getattr(record, field)
            if changed == text:
                continue
            out[field] = changed if field in texts or changed is None else _literal_or_text(changed)
        return out


def _literal_or_text(text: str) -> Any:
    """What ``format_task`` made of a decoded value: the value again when its text is a literal JSON can hold."""
    try:
        value = ast.literal_eval(text)
        orjson.dumps(value)
    except (*_LITERAL_ERRORS, orjson.JSONEncodeError):
        return text
    return value


def redact_request(redactor: Redactor | None, request: dict[str, Any]) -> dict[str, Any]:
    """Redact a task request as inspect replies hold it (``args``/``kwargs`` as values, or reprs
    when the worker was asked for safe output)."""
    if not redactor:
        return request
    fields: dict[str, Any] = {field: request[field] for field in ("args", "kwargs") if field in request}
    texts = [field for field, value in fields.items() if isinstance(value, str)]
    known = {"uuid": request.get("id"), "name": request.get("name")}
    return {**request, **redactor.redact(fields, texts, known)}
