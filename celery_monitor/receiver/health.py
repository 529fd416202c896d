"""The receiver's own health, read by the API and the metrics without locks (plain counters)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from celery_monitor.broker.reasons import REASONS


@dataclass(slots=True)
class ReceiverHealth:
    transport: str = ""
    connected: bool = False
    messages_received: int = 0
    events_received: int = 0
    messages_dropped: int = 0
    broker_disconnects: int = 0
    reconnects: int = 0
    last_event_time: float | None = None
    last_error: str | None = None
    # Why the last connection attempt (or the stream) failed: one of broker.reasons.REASONS.
    last_error_reason: str | None = None
    connected_since: float | None = None
    # Since when there has been no event stream: the first failure after the last connection (or
    # the start, when the broker was never reached). None while connected.
    failing_since: float | None = None
    # On Redis the reader runs in a process of its own (receiver/reader_process.py): its pid, how
    # often it was restarted, and what it spooled that the monitor has not read yet.
    reader_pid: int | None = None
    reader_restarts: int = 0
    spool_backlog_bytes: int = 0
    errors_by_reason: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    def as_dict(self) -> dict[str, object]:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["errors_by_reason"] = dict(self.errors_by_reason)
        return out

    def unavailable_for(self, now: float | None = None) -> float | None:
        """Seconds without an event stream, or None while connected."""
        if self.connected or self.failing_since is None:
            return None
        return (time.time() if now is None else now) - self.failing_since
