"""What every event reader shares: a thread that only reads, hands off, and reconnects."""

from __future__ import annotations

import logging
import threading
import time

from celery_monitor.receiver.handoff import Handoff
from celery_monitor.receiver.health import ReceiverHealth

log = logging.getLogger(__name__)


class EventReader(threading.Thread):
    """Reads event messages from a broker in a dedicated thread and never applies them itself."""

    transport = "unknown"
    MIN_BACKOFF = 0.1
    MAX_BACKOFF = 5.0

    def __init__(self, handoff: Handoff, health: ReceiverHealth) -> None:
        super().__init__(name=f"event-reader-{self.transport}", daemon=True)
        self.handoff = handoff
        self.health = health
        self.health.transport = self.transport
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.interrupt()

    def interrupt(self) -> None:
        """Wake a blocked read so the thread can notice it should stop (transport specific)."""

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        backoff = self.MIN_BACKOFF
        first = True
        while not self.stopping:
            try:
                if not first:
                    self.health.reconnects += 1
                first = False
                self.read_until_disconnected()
                backoff = self.MIN_BACKOFF
            except Exception as exc:  # the reader must survive anything the broker does
                if self.stopping:
                    break
                if self.health.connected:
                    self.health.broker_disconnects += 1
                    backoff = self.MIN_BACKOFF
                self.health.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("event stream (%s) lost: %s; reconnecting in %.1fs",
                            self.transport, self.health.last_error, backoff)
            self.health.connected = False
            self.health.connected_since = None
            if self._stop_event.wait(backoff):
                break
            backoff = min(backoff * 2, self.MAX_BACKOFF)

    def mark_connected(self) -> None:
        self.health.connected = True
        self.health.connected_since = time.time()
        self.health.last_error = None
        log.info("event stream (%s) connected", self.transport)

    def read_until_disconnected(self) -> None:
        raise NotImplementedError
