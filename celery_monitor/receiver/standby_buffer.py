"""What a standby replica keeps of a Redis event stream, for the moment it takes over.

Redis pub/sub delivers a message only to the connections subscribed when it is published. A
standby that did not listen could not get back what the dead leader had read but not committed,
nor what was published while the takeover ran. So on Redis each standby subscribes too and keeps
the last ``KEEP_SECONDS`` of messages here, at most ``KEEP_BYTES``. When it takes over, it hands
what it kept to the applier first, and goes on forwarding what its subscriber reads until its own
event reader is connected (``hand_over``, then the service stops the standby's subscriber).

Where the dead leader's last commit ended inside the kept messages is not known, so the replay
overlaps it. That is harmless: a task event whose task's timeline already holds it is applied
again without being counted again (``applier/task_events.py``), and a worker's heartbeat applied
twice changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from celery_monitor.receiver.handoff import RawMessage, Sink

KEEP_SECONDS = 30.0  # a takeover takes a few seconds; the dead leader's uncommitted writes, under one
KEEP_BYTES = 32 * 1024 * 1024


class StandbyBuffer:
    """A Sink that keeps the recent past until ``hand_over``, and forwards everything after it."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS, keep_bytes: int = KEEP_BYTES) -> None:
        self.keep_seconds = keep_seconds
        self.keep_bytes = keep_bytes
        self._kept: deque[tuple[float, list[RawMessage], int]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._target: Sink | None = None
        self.forgotten = 0  # messages that aged out or did not fit (none of them ever needed, usually)

    @property
    def kept_bytes(self) -> int:
        return self._bytes

    def put(self, received_at: float, batch: list[RawMessage], size: int) -> bool:
        with self._lock:
            target = self._target
            if target is None:
                self._kept.append((received_at, batch, size))
                self._bytes += size
                self._forget_old(time.time())
                return True
        return target.put(received_at, batch, size)

    def _forget_old(self, now: float) -> None:
        kept = self._kept
        while kept and (self._bytes > self.keep_bytes or kept[0][0] < now - self.keep_seconds):
            _, batch, size = kept.popleft()
            self._bytes -= size
            self.forgotten += len(batch)

    def hand_over(self, target: Sink) -> int:
        """Put what is kept into ``target``, oldest first, and forward all that comes after; returns
        how many messages were handed over."""
        with self._lock:
            handed = 0
            for received_at, batch, size in self._kept:
                target.put(received_at, batch, size)
                handed += len(batch)
            self._kept.clear()
            self._bytes = 0
            self._target = target
        return handed
