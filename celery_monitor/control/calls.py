"""A task call from a request body: ``args``, ``kwargs`` and the ``apply_async`` options Flower accepts.

Bodies come as JSON (values typed) or as a form (every value a string: ``args``/``kwargs``/
``headers`` hold JSON, numbers are parsed). The options listed below are checked here; the API
passes other ``apply_async`` options on as Flower does, or refuses the few that may not be
(celery_monitor/api/control_tasks.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from celery_monitor import values
from celery_monitor.control.errors import bad_request

NUMBER_OPTIONS = frozenset({"countdown", "time_limit", "soft_time_limit"})
STRING_OPTIONS = frozenset({"queue", "routing_key", "exchange", "task_id", "shadow"})
OPTIONS = NUMBER_OPTIONS | STRING_OPTIONS | {"eta", "expires", "priority", "headers"}
FLOWER_DATE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass
class TaskCall:
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def parse_call(body: dict[str, Any], form: bool = False) -> TaskCall:
    data = dict(body)
    nested = data.pop("options", None)
    if form and isinstance(nested, str):
        nested = _json_field("options", nested)
    if nested is not None and not isinstance(nested, dict):
        raise bad_request("Invalid 'options': must be an object")
    args = data.pop("args", [])
    kwargs = data.pop("kwargs", {})
    if form:
        args = _json_field("args", args) if isinstance(args, str) else args
        kwargs = _json_field("kwargs", kwargs) if isinstance(kwargs, str) else kwargs
    if not isinstance(args, list):
        raise bad_request("Invalid 'args': must be an array")
    if not isinstance(kwargs, dict):
        raise bad_request("Invalid 'kwargs': must be an object")
    options: dict[str, Any] = {}
    for key, value in {**(nested or {}), **data}.items():
        options[key] = _option(key, value, form)
    return TaskCall(args, kwargs, options)


def _json_field(name: str, raw: str) -> Any:
    try:
        return orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"Invalid '{name}': not JSON ({exc})") from None


def _option(key: str, value: Any, form: bool) -> Any:
    if key not in OPTIONS:
        raise bad_request(f"Unknown option '{key}' (one of {', '.join(sorted(OPTIONS))})")
    if key in NUMBER_OPTIONS:
        return _number(key, value)
    if key in STRING_OPTIONS:
        if not isinstance(value, str) or not value:
            raise bad_request(f"Invalid '{key}': must be a non-empty string")
        return value
    if key == "priority":
        number = _number(key, value)
        if number != int(number) or not 0 <= number <= 255:
            raise bad_request("Invalid 'priority': must be an integer from 0 to 255")
        return int(number)
    if key == "headers":
        headers = _json_field(key, value) if form and isinstance(value, str) else value
        if not isinstance(headers, dict):
            raise bad_request("Invalid 'headers': must be an object")
        return headers
    if key == "expires" and not _is_date_text(value):
        return _number(key, value)
    return _date(key, value)


def _number(key: str, value: Any) -> float:
    """A finite number of seconds (or a limit) of at least 0, read as every other number is."""
    try:
        number = values.parse_float(value, finite=True)
        values.check_range(number, minimum=0)
    except values.BadValue as exc:
        raise bad_request(f"Invalid '{key}': {exc}") from None
    return number


def _is_date_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def _date(key: str, value: Any) -> datetime:
    if isinstance(value, str):
        for parse in (lambda text: datetime.strptime(text, FLOWER_DATE_FORMAT), datetime.fromisoformat):
            try:
                return parse(value.strip())
            except ValueError:
                continue
    raise bad_request(f"Invalid '{key}': {value!r} is not a date (ISO 8601 or {FLOWER_DATE_FORMAT})")
