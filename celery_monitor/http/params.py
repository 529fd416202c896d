"""Request parameters, in the query string or a body: parsed by :mod:`celery_monitor.values`, and a bad
one answered 400 with its name (``Invalid 'limit': ...``), never 500."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from starlette.requests import HTTPConnection, Request

from celery_monitor import values
from celery_monitor.http.errors import ApiError

T = TypeVar("T")

# The largest value SQLite (and so every limit and offset) can take.
MAX_INT = 2**63 - 1
DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def parsed(name: str, raw: Any, parse: Callable[[Any], T], minimum: float | None = None,
           maximum: float | None = None) -> T:
    """``parse(raw)`` within its range, or a 400 naming the parameter."""
    try:
        value = parse(raw)
        if (minimum is not None or maximum is not None) and isinstance(value, int | float):
            values.check_range(value, minimum, maximum)
    except values.BadValue as exc:
        raise ApiError(400, f"Invalid '{name}': {exc}") from None
    return value


# -- a value from wherever it came ------------------------------------------------------------------

def int_value(name: str, raw: Any, default: int | None = None, minimum: int | None = None,
              maximum: int | None = MAX_INT) -> int | None:
    if raw is None or raw == "":
        return default
    return parsed(name, raw, values.parse_int, minimum, maximum)


def float_value(name: str, raw: Any, default: float | None = None, minimum: float = 0.0,
                maximum: float | None = None) -> float | None:
    if raw is None or raw == "":
        return default
    return parsed(name, raw, values.parse_float, minimum, maximum)


def bool_value(name: str, raw: Any, default: bool = False) -> bool:
    if raw is None:
        return default
    return parsed(name, raw, values.parse_bool)


# -- the query string -------------------------------------------------------------------------------

def get_int(request: Request, name: str, default: int | None = None, minimum: int | None = None,
            maximum: int | None = MAX_INT) -> int | None:
    return int_value(name, request.query_params.get(name), default, minimum, maximum)


def get_float(request: Request, name: str, default: float | None = None, minimum: float = 0.0,
              maximum: float | None = None) -> float | None:
    return float_value(name, request.query_params.get(name), default, minimum, maximum)


def get_bool(request: Request, name: str, default: bool = False) -> bool:
    return bool_value(name, request.query_params.get(name), default)


def get_list(request: HTTPConnection, name: str) -> list[str]:
    """Every value of a repeated or comma-separated parameter."""
    found: list[str] = []
    for raw in request.query_params.getlist(name):
        found.extend(values.parse_list(raw))
    return found


def get_time(request: Request, name: str) -> float | None:
    """Flower's ``%Y-%m-%d %H:%M`` (local time), ISO 8601 with an offset, or epoch seconds."""
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ApiError(400, f"Invalid '{name}': {raw!r} is not a date (a number must be finite)")
        return seconds
    for fmt in DATE_FORMATS:
        try:
            return time.mktime(datetime.strptime(text, fmt).timetuple())
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ApiError(400, f"Invalid '{name}': {raw!r} is not a date (expected YYYY-MM-DD HH:MM)") from None


# -- a control request's arguments (the query string with the body on top) --------------------------

def text_arg(args: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ApiError(400, f"Invalid '{name}': must be a string")
    return value


def int_arg(args: dict[str, Any], name: str, default: int | None = None) -> int | None:
    return int_value(name, args.get(name), default, maximum=None)


def float_arg(args: dict[str, Any], name: str, default: float | None = None) -> float | None:
    return float_value(name, args.get(name), default)


def bool_arg(args: dict[str, Any], name: str, default: bool = False) -> bool:
    return bool_value(name, args.get(name), default)
