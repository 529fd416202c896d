"""What every event reader shares: a thread that only reads, hands off, and reconnects.

A broker fault (unreachable, TLS, login refused, stream lost) is expected: it sets the receiver's
``last_error`` to a sentence naming the cause, is counted by reason, and is logged once when it
starts, as a reminder every few minutes while it lasts, and once when the stream is back. The
reader then retries with a backoff doubling up to ``MAX_BACKOFF``. Anything else raised while
reading is a bug of ours: it is counted and logged with its traceback as a background error of
the ``reader`` loop, and the reader reconnects all the same.

Nothing is read twice across a reconnection: on Redis, pub/sub delivers each message once to the
connection subscribed at that moment; on RabbitMQ the reader consumes without acknowledgements,
so the broker forgets a message as it sends it and never redelivers it after a reconnection.
"""

from __future__ import annotations

import logging
import threading
import time

from celery_monitor.broker import faults
from celery_monitor.receiver.handoff import Sink
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.supervision import Loop, ThrottledLog

log = logging.getLogger(__name__)
# Progress is marked at least every few seconds (reads time out after 1 s, connecting after 5 s,
# and a silent Redis is given up after 45 s): a minute and a half without it is a stuck reader.
STALL_AFTER = 90.0


class EventReader(threading.Thread):
    """Reads event messages from a broker in a dedicated thread and never applies them itself."""

    transport = "unknown"
    MIN_BACKOFF = 0.1
    MAX_BACKOFF = 5.0

    def __init__(self, handoff: Sink, health: ReceiverHealth) -> None:
        super().__init__(name=f"event-reader-{self.transport}", daemon=True)
        self.handoff = handoff
        self.health = health
        self.health.transport = self.transport
        self.loop = Loop("reader", critical=True, stall_after=STALL_AFTER)
        # Where the current connection is (connect, tls, login, stream): the same error means
        # different things in different phases (a timeout while connecting or in a TLS handshake).
        self.phase = faults.CONNECT
        self._outage = ThrottledLog(log)
        self._stop_event = threading.Event()

    @property
    def loops(self) -> tuple[Loop, ...]:
        return (self.loop,)

    def resume(self, saved: object) -> None:
        """Nothing to resume: an in-process reader hands over straight to the applier (no spool)."""

    @property
    def where(self) -> str:
        """The broker's address as shown in messages: host and port, never credentials."""
        return "the broker"

    def stop(self) -> None:
        self._stop_event.set()
        self.interrupt()

    def interrupt(self) -> None:
        """Wake a blocked read so the thread can notice it should stop (transport specific)."""

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        with self.loop.lifetime(self._stop_event):
            backoff = self.MIN_BACKOFF
            first = True
            while not self.stopping:
                self.loop.beat()
                if not first:
                    self.health.reconnects += 1
                first = False
                self.phase = faults.CONNECT
                try:
                    self.read_until_disconnected()
                    backoff = self.MIN_BACKOFF
                except Exception as exc:  # the reader must survive anything the broker does
                    if self.stopping:
                        break
                    if self.health.connected:
                        self.health.broker_disconnects += 1
                        backoff = self.MIN_BACKOFF
                    self._failed(exc)
                self.health.connected = False
                self.health.connected_since = None
                if self._stop_event.wait(backoff):
                    break
                backoff = min(backoff * 2, self.MAX_BACKOFF)

    def _failed(self, exc: Exception) -> None:
        fault = faults.classify(exc, self.where, self.phase)
        health = self.health
        health.last_error, health.last_error_reason = fault.message, fault.reason
        health.errors_by_reason[fault.reason] = health.errors_by_reason.get(fault.reason, 0) + 1
        if health.failing_since is None:
            health.failing_since = time.time()
        if not fault.expected:
            self.loop.failed(exc, "reading events")  # a bug of ours: logged with its traceback
            return
        self._outage.failure(fault.reason, f"event stream ({self.transport}) unavailable: {fault.message}; "
                                           f"retrying (every {self.MAX_BACKOFF:.0f}s at most)")

    def mark_connected(self) -> None:
        self.phase = faults.STREAM
        health = self.health
        health.connected = True
        health.connected_since = time.time()
        health.last_error = health.last_error_reason = health.failing_since = None
        self.loop.succeeded("reading events")
        if self._outage.failing:
            self._outage.recovered(f"event stream ({self.transport}) connected to {self.where}")
        else:
            log.info("event stream (%s) connected to %s", self.transport, self.where)

    def read_until_disconnected(self) -> None:
        raise NotImplementedError
