"""Meta entries that several parts name: the part that saves them, the part that reads them, a copy."""

from __future__ import annotations

TIMELINE_SLOTS = 60  # the graphs' points (metrics/timeline.py): one entry per minute of the hour kept


def timeline_key(minute: int) -> str:
    """The entry that holds the graphs' points of one minute (epoch minutes); reused an hour later."""
    return f"timeline.{minute % TIMELINE_SLOTS}"


TIMELINE_KEYS = tuple(timeline_key(minute) for minute in range(TIMELINE_SLOTS))
