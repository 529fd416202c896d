"""Meta entries that several parts name: the part that saves them, the part that reads them, a copy."""

from __future__ import annotations

TIMELINE_SLOTS = 60  # the graphs' points (metrics/timeline.py): one entry per minute of the hour kept


def timeline_key(minute: int) -> str:
    """The entry that holds the graphs' points of one minute (epoch minutes); reused an hour later."""
    return f"timeline.{minute % TIMELINE_SLOTS}"


TIMELINE_KEYS = tuple(timeline_key(minute) for minute in range(TIMELINE_SLOTS))

# The leader's inspect cache (inspector/inspector.py), for standby replicas; the version is small
# and read every second, the cache only when the version moved.
INSPECT = "inspect"
INSPECT_VERSION = "inspect_version"
