"""The event boundary: nothing reaches the live view or the history before it is checked here.

Every item of every message is converted through the struct of its event type
(:mod:`celery_monitor.applier.event_schema`). What passes comes out as a plain dict with
normalised values and long texts cut at ``text_limit`` with a visible marker; what fails is
refused alone, counted by reason (``celery_monitor_events_rejected_total{reason}``) and kept among
the latest few rejections that ``/api/monitor/status`` shows. A rejection names the event type and
the field, never the value: the value may be task data that redaction is meant to hide.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from typing import Any

import msgspec

from celery_monitor.applier import event_schema as schema
from celery_monitor.receiver.envelope import MalformedMessage, decode_body, decode_envelope
from celery_monitor.receiver.handoff import RawMessage

REASONS = (
    "unsupported_content_type",  # pickle, YAML, msgpack...: only JSON is ever decoded
    "not_json",  # the message or its body does not parse
    "not_an_event",  # an item that is not an object with a string "type"
    "unknown_type",  # neither a task-... nor one of the three worker events
    "missing_field",  # e.g. a task event without a uuid, a worker event without a hostname
    "invalid_field",  # a value of the wrong type, out of range, not finite
    "too_large",  # custom event data nested too deep or too big
    "apply_error",  # passed the checks, yet applying it failed: a bug of the monitor's, logged
)
DEFAULT_TEXT_LIMIT = 65_536
LATEST_KEPT = 20
MAX_CUSTOM_DEPTH = 16
TEXT_FIELDS = ("args", "kwargs", "result", "exception", "traceback")
ARGUMENT_FIELDS = ("args", "kwargs")
_CUSTOM_TASK_TYPE = re.compile(r"task-[A-Za-z0-9_.:-]{1,64}\Z")
_LARGEST_INT = 2**63


class Rejections:
    """Rejected events by reason, and the latest few, read by the metrics and the status endpoint."""

    def __init__(self, keep: int = LATEST_KEPT) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(REASONS, 0)
        self._latest: deque[dict[str, Any]] = deque(maxlen=keep)

    def add(self, reason: str, detail: str, event_type: str | None = None) -> None:
        with self._lock:
            self._counts[reason] += 1
            self._latest.append({"at": time.time(), "reason": reason, "event_type": event_type, "detail": detail})

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def latest(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._latest)


class EventBoundary:
    def __init__(self, text_limit: int = DEFAULT_TEXT_LIMIT, rejections: Rejections | None = None) -> None:
        self.text_limit = text_limit
        self.rejections = rejections if rejections is not None else Rejections()

    def events_of(self, raw: RawMessage) -> list[dict[str, Any]]:
        """The checked events of one message (none when the message itself is unreadable)."""
        try:
            items = decode_envelope(raw.body) if raw.content_type is None else decode_body(raw.body, raw.content_type)
        except MalformedMessage as exc:
            self.rejections.add(exc.reason, str(exc))
            return []
        checked = []
        for item in items:
            event = self.check(item)
            if event is not None:
                checked.append(event)
        return checked

    def check(self, item: Any) -> dict[str, Any] | None:
        """``item`` as a normalised event, or None when it is refused (and counted)."""
        if not isinstance(item, dict) or not isinstance(event_type := item.get("type"), str):
            self.rejections.add("not_an_event", "an item of the message is not an object with a string type")
            return None
        struct_type = _struct_for(event_type)
        if struct_type is None:
            self.rejections.add("unknown_type", f"unknown event type {_printable(event_type)!r}")
            return None
        try:
            fields = msgspec.convert(item, struct_type, strict=False)
        except msgspec.ValidationError as exc:
            message = str(exc)
            reason = "missing_field" if message.startswith("Object missing required field") else "invalid_field"
            self.rejections.add(reason, f"{event_type}: {message}", event_type)
            return None
        event = schema.fields_of(fields)
        for name in ARGUMENT_FIELDS:
            value = event.get(name)
            if isinstance(value, list | dict):
                kept = self._custom_value(value, 1, [self.text_limit * 4])
                if isinstance(kept, _Problem):
                    self.rejections.add("invalid_field", f"{event_type}: {name}: {kept.text}", event_type)
                    return None
                event[name] = repr(kept)
        for name in TEXT_FIELDS:
            text = event.get(name)
            if isinstance(text, str) and len(text) > self.text_limit:
                event[name] = cut(text, self.text_limit)
        if struct_type is schema.CustomTaskEventFields:
            problem = self._add_custom_data(event, item)
            if problem is not None:
                self.rejections.add("too_large" if problem.startswith("too") else "invalid_field",
                                    f"{event_type}: {problem}", event_type)
                return None
        return event

    def _add_custom_data(self, event: dict[str, Any], item: dict[str, Any]) -> str | None:
        """Copy a custom event's own fields into ``event``; a reason when they cannot be kept."""
        budget = [self.text_limit * 4]  # characters of custom data one event may keep
        for key, value in item.items():
            if key in event or key in schema.CustomTaskEventFields.__struct_fields__:
                continue
            if not isinstance(key, str) or len(key) > schema.MAX_NAME:
                return "too long a field name"
            budget[0] -= len(key)
            kept = self._custom_value(value, 1, budget)
            if isinstance(kept, _Problem):
                return kept.text
            event[key] = kept
        return None

    def _custom_value(self, value: Any, depth: int, budget: list[int]) -> Any:
        if depth > MAX_CUSTOM_DEPTH:
            return _Problem(f"too deeply nested data (more than {MAX_CUSTOM_DEPTH} levels)")
        if budget[0] < 0:
            return _Problem("too much data")
        if isinstance(value, str):
            value = cut(value, self.text_limit) if len(value) > self.text_limit else value
            budget[0] -= len(value)
            return value
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if -_LARGEST_INT <= value < _LARGEST_INT else _Problem("an integer out of range")
        if isinstance(value, float):
            return value if math.isfinite(value) else _Problem("a number that is not finite")
        if isinstance(value, list):
            items = []
            for element in value:
                kept = self._custom_value(element, depth + 1, budget)
                if isinstance(kept, _Problem):
                    return kept
                items.append(kept)
                budget[0] -= 1
            return items
        if isinstance(value, dict):
            mapping = {}
            for key, element in value.items():
                kept = self._custom_value(element, depth + 1, budget)
                if isinstance(kept, _Problem):
                    return kept
                mapping[key] = kept
                budget[0] -= len(key) + 1
            return mapping
        return _Problem("a value JSON cannot hold")


class _Problem:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a marker that says so (and is never valid Python)."""
    return f"{text[:limit]}…[cut: {len(text) - limit:,} more characters]"


def _struct_for(event_type: str) -> type[schema.EventFields] | None:
    known = schema.TASK_EVENT_FIELDS.get(event_type)
    if known is not None:
        return known
    if event_type in schema.WORKER_EVENT_TYPES:
        return schema.WorkerEventFields
    if _CUSTOM_TASK_TYPE.match(event_type):
        return schema.CustomTaskEventFields
    return None


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:40])
