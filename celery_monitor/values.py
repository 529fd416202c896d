"""One parser per kind of value, for options and request parameters alike, with one error type.

Each parser takes what a string (a command line, an environment variable, a query parameter) or a
Python value (a config file, a JSON body) gives, and raises :class:`BadValue` with what is wrong;
the caller adds where the value came from (``--port: ...``, ``Invalid 'limit': ...``).
"""

from __future__ import annotations

import math
from typing import Any

# Words for a boolean, as Python's strtobool read them (Flower's API), plus "none" and "" for false.
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f", "none", ""})


class BadValue(ValueError):
    """A value that is not of its kind or out of its range; the message says which, on one line."""


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise BadValue(f"{raw!r} is not a boolean (use true or false)")


def parse_int(raw: Any) -> int:
    """An integer from an int, a whole float or decimal text; never a bool."""
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise BadValue(f"{raw!r} is not an integer")
    try:
        return int(raw.strip() if isinstance(raw, str) else raw)
    except ValueError:
        raise BadValue(f"{raw!r} is not an integer") from None


def parse_float(raw: Any, finite: bool = False) -> float:
    """A number from an int, a float or its text; never a bool. ``finite`` refuses nan and infinities."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise BadValue(f"{raw!r} is not a number")
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except ValueError:
        raise BadValue(f"{raw!r} is not a number") from None
    if finite and not math.isfinite(value):
        raise BadValue(f"{raw!r} is not a finite number")
    return value


# Units of a duration (--max_task_age): seconds per letter.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(raw: Any) -> float:
    """Seconds from a number (of seconds), or its text with one unit letter: 90, 30m, 12h, 7d, 2w, 1.5h."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise BadValue(f"{raw!r} is not a duration (e.g. 7d, 12h, 30m, 45s or seconds)")
    text = raw.strip().lower() if isinstance(raw, str) else raw
    scale = 1
    if isinstance(text, str) and text[-1:] in DURATION_UNITS:
        text, scale = text[:-1].strip(), DURATION_UNITS[text[-1]]
    try:
        seconds = float(text) * scale
    except ValueError:
        raise BadValue(f"{raw!r} is not a duration (e.g. 7d, 12h, 30m, 45s or seconds)") from None
    if not math.isfinite(seconds):
        raise BadValue(f"{raw!r} is not a finite duration")
    return seconds


def check_range(value: float, minimum: float | None = None, maximum: float | None = None) -> None:
    """Refuse ``value`` below ``minimum`` or above ``maximum`` (and nan whenever there is a bound)."""
    if minimum is not None and not value >= minimum:
        raise BadValue(f"{_shown(value)} is below the minimum {_shown(minimum)}")
    if maximum is not None and not value <= maximum:
        raise BadValue(f"{_shown(value)} is above the maximum {_shown(maximum)}")


def _shown(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def parse_list(raw: Any) -> list[str]:
    """Comma-separated text (or a list) as its non-empty items, stripped."""
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def parse_floats(raw: Any) -> list[float]:
    """Comma-separated numbers (or a list of them), sorted."""
    items = raw if isinstance(raw, list | tuple) else [part for part in str(raw).split(",") if part.strip()]
    try:
        return sorted(parse_float(item) for item in items)
    except BadValue:
        raise BadValue(f"{raw!r} is not a comma-separated list of numbers") from None
