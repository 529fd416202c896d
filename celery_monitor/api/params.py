"""Query parameter parsing that answers 400 with the parameter's name, never 500."""

from __future__ import annotations

import math
import time
from datetime import datetime

from starlette.requests import Request

from celery_monitor.api.errors import ApiError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# The largest value SQLite (and so every limit and offset) can take.
MAX_INT = 2**63 - 1


def get_int(request: Request, name: str, default: int | None = None, minimum: int | None = None,
            maximum: int | None = MAX_INT) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid '{name}': {raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ApiError(400, f"Invalid '{name}': must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ApiError(400, f"Invalid '{name}': must be at most {maximum}")
    return value


def get_float(request: Request, name: str, default: float | None = None, minimum: float = 0.0,
              maximum: float | None = None) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"Invalid '{name}': {raw!r} is not a number") from None
    if value != value or value < minimum or (maximum is not None and value > maximum):
        raise ApiError(400, f"Invalid '{name}': out of range")
    return value


def get_bool(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ApiError(400, f"Invalid '{name}': {raw!r} is not a boolean")


def get_list(request: Request, name: str) -> list[str]:
    values: list[str] = []
    for raw in request.query_params.getlist(name):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


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
