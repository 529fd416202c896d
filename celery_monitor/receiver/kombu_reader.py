"""Event reader for every other kombu transport (RabbitMQ/AMQP first of all).

It binds its own queue to the event exchange with no message TTL and no length limit, so a burst
waits in the broker instead of being discarded; the queue expires a while after the monitor is
gone, and survives a reconnect in between.

Replicas of one PostgreSQL history share one durable queue instead (``shared_queue``), consumed by
the leader alone, and acknowledge each message only once the history holds what it changed (the
writer's ``flushed`` position: this connection and the last delivery tag committed). When the
leader dies, what it had not acknowledged goes back to the queue, and what is published during the
takeover waits there: the next leader reads both. Nothing is lost; what was committed but not yet
acknowledged (under a second's worth) comes a second time, and the applier recognises each task
event its task's timeline already holds: it is neither applied nor counted again.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from kombu import Connection, Consumer, Exchange, Queue
from kombu.message import Message

from celery_monitor.broker import faults
from celery_monitor.receiver.base import EventReader
from celery_monitor.receiver.handoff import RawMessage, Sink, SpooledBatch
from celery_monitor.receiver.health import ReceiverHealth

QUEUE_EXPIRES_MS = 10 * 60 * 1000
SHARED_QUEUE_EXPIRES_MS = 60 * 60 * 1000  # the replicas' shared queue outlives the last of them by an hour
# Messages delivered and not yet acknowledged, at most (the rest of a backlog waits in the broker,
# not in the hand-off): the history commits every half second, so up to twice this many a second.
PREFETCH = 50_000
FLUSH_EVERY = 2000


class KombuEventReader(EventReader):
    transport = "amqp"

    def __init__(
        self,
        url: str,
        handoff: Sink,
        health: ReceiverHealth,
        exchange: str = "celeryev",
        transport_options: dict[str, Any] | None = None,
        ssl_options: Any = None,
        shared_queue: str | None = None,
        flushed: Callable[[], tuple[int, int] | None] = lambda: None,
    ) -> None:
        self.transport = url.split("://", 1)[0] or "amqp"
        super().__init__(handoff, health)
        self.url = url
        self.transport_options = transport_options or {}
        self.ssl_options = ssl_options
        self.exchange = Exchange(exchange, type="topic")
        self.acknowledging = shared_queue is not None
        self.queue = Queue(
            shared_queue or f"celeryev.monitor.{socket.gethostname()}.{uuid.uuid4().hex[:12]}",
            self.exchange,
            routing_key="#",
            durable=self.acknowledging,
            auto_delete=False,
            queue_arguments={"x-expires": SHARED_QUEUE_EXPIRES_MS if self.acknowledging else QUEUE_EXPIRES_MS},
        )
        self._committed = flushed
        # With acknowledgements: the connection (its number) whose delivery tags are handed over,
        # the last tag received, and the last one acknowledged.
        self._connection_number = 0
        self._last_tag = 0
        self._acked = 0
        # Received (and so already forgotten by the broker: no acknowledgements) but not yet handed
        # over: kept across a reconnection, so a dropped connection loses none of them.
        self._pending: list[RawMessage] = []
        self._pending_size = 0
        self._where = faults.broker_address(url)

    @property
    def where(self) -> str:
        return self._where

    def _on_message(self, message: Message) -> None:
        # kombu's stub says str | None; py-amqp hands over bytes, the virtual transports str.
        raw: bytes | str | None = message.body
        body = raw.encode() if isinstance(raw, str) else raw or b""
        self._pending.append(RawMessage(body, message.content_type or "application/json"))
        self._pending_size += len(body)
        tag = message.delivery_tag
        if self.acknowledging and isinstance(tag, int):
            self._last_tag = tag

    def _flush(self) -> None:
        if not self._pending:
            return
        batch, size = self._pending, self._pending_size
        self._pending, self._pending_size = [], 0
        self.health.messages_received += len(batch)
        if self.acknowledging:
            # The writer saves this position with the changes these messages make; then they are acknowledged.
            batch = SpooledBatch(batch, (self._connection_number, self._last_tag))
        if not self.handoff.put(time.time(), batch, size):
            self.health.messages_dropped += len(batch)

    def _acknowledge(self, channel: Any) -> None:
        """Acknowledge, on this connection, every message up to the last one the history committed."""
        committed = self._committed()
        if committed is None or committed[0] != self._connection_number or committed[1] <= self._acked:
            return
        channel.basic_ack(delivery_tag=committed[1], multiple=True)
        self._acked = committed[1]

    def read_until_disconnected(self) -> None:
        with Connection(
            self.url,
            transport_options=self.transport_options,
            ssl=self.ssl_options or False,
            heartbeat=30,
            connect_timeout=5,
        ) as conn:
            conn.ensure_connection(max_retries=0)  # no retry here: the reader backs off itself
            self.phase = faults.LOGIN
            channel = conn.channel()
            if self.acknowledging:
                # What the last connection received and did not acknowledge is delivered again.
                self._pending, self._pending_size = [], 0
                self._connection_number += 1
                self._last_tag = self._acked = 0
            consumer = Consumer(channel, queues=[self.queue], no_ack=not self.acknowledging,
                                on_message=self._on_message)
            if self.acknowledging:
                consumer.qos(prefetch_count=PREFETCH)
            with consumer:
                self.mark_connected()
                last_heartbeat = time.monotonic()
                while not self.stopping:
                    self.loop.beat()
                    try:
                        conn.drain_events(timeout=1.0)
                        while len(self._pending) < FLUSH_EVERY:
                            conn.drain_events(timeout=0)
                    except TimeoutError:
                        pass
                    self._flush()
                    if self.acknowledging:
                        self._acknowledge(channel)
                    if time.monotonic() - last_heartbeat > 5:
                        conn.heartbeat_check()
                        last_heartbeat = time.monotonic()
