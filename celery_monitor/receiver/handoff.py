"""A bounded hand-off from the reader thread to the applier.

The reader must never wait: if it stopped reading, the broker's own buffer would fill and the
broker would drop the connection (Redis does at 32 MB of pub/sub backlog). So the bound is in
bytes, generous, and when it is exceeded the newest batch is dropped and counted instead.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

HANDOFF_BYTES = 512 * 1024 * 1024


@dataclass(slots=True)
class RawMessage:
    """Undecoded bytes from the broker; ``content_type`` None means a kombu JSON envelope."""

    body: bytes
    content_type: str | None = None


class Sink(Protocol):
    """Where a reader puts what it read: the hand-off, or the spool in the reader process."""

    def put(self, received_at: float, batch: list[RawMessage], size: int) -> bool: ...


class SpooledBatch(list[RawMessage]):
    """A batch read back from the spool, with the spool position just past it: once the applier has
    applied it, the history saves that position with the changes it made."""

    def __init__(self, messages: list[RawMessage], position: tuple[int, int]) -> None:
        super().__init__(messages)
        self.position = position


class ClusterBatch(list[RawMessage]):
    """A batch read from the broker of a cluster other than ``default`` (celery_monitor/clusters.py):
    the applier files what it holds under that cluster. Batches of ``default`` are plain lists."""

    def __init__(self, messages: list[RawMessage], cluster: str) -> None:
        super().__init__(messages)
        self.cluster = cluster


class ClusterSink:
    """The sink a cluster's reader puts into: its batches go on to ``sink`` marked with the cluster."""

    def __init__(self, sink: Sink, cluster: str) -> None:
        self.sink = sink
        self.cluster = cluster

    def put(self, received_at: float, batch: list[RawMessage], size: int) -> bool:
        return self.sink.put(received_at, ClusterBatch(batch, self.cluster), size)


class Handoff:
    def __init__(self, max_bytes: int = HANDOFF_BYTES) -> None:
        self._batches: deque[tuple[float, list[RawMessage]]] = deque()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._ready = threading.Condition(threading.Lock())
        self.dropped = 0

    def put(self, received_at: float, batch: list[RawMessage], size: int) -> bool:
        """Queue a batch; returns False (and counts the messages) when over the bound."""
        with self._ready:
            if self._bytes + size > self._max_bytes:
                self.dropped += len(batch)
                return False
            self._batches.append((received_at, batch))
            self._bytes += size
            self._ready.notify()
        return True

    def take(self, timeout: float) -> list[tuple[float, list[RawMessage]]]:
        """Everything queued so far (waiting up to ``timeout`` for something to arrive)."""
        with self._ready:
            if not self._batches:
                self._ready.wait(timeout)
            taken = list(self._batches)
            self._batches.clear()
            self._bytes = 0
        return taken

    @property
    def pending_bytes(self) -> int:
        return self._bytes
