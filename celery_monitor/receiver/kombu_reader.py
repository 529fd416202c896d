"""Event reader for every other kombu transport (RabbitMQ/AMQP first of all).

It binds its own queue to the event exchange with no message TTL and no length limit, so a burst
waits in the broker instead of being discarded; the queue expires a while after the monitor is
gone, and survives a reconnect in between.
"""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

from kombu import Connection, Consumer, Exchange, Queue
from kombu.message import Message

from celery_monitor.broker import faults
from celery_monitor.receiver.base import EventReader
from celery_monitor.receiver.handoff import Handoff, RawMessage
from celery_monitor.receiver.health import ReceiverHealth

QUEUE_EXPIRES_MS = 10 * 60 * 1000
FLUSH_EVERY = 2000


class KombuEventReader(EventReader):
    transport = "amqp"

    def __init__(
        self,
        url: str,
        handoff: Handoff,
        health: ReceiverHealth,
        exchange: str = "celeryev",
        transport_options: dict[str, Any] | None = None,
        ssl_options: Any = None,
    ) -> None:
        self.transport = url.split("://", 1)[0] or "amqp"
        super().__init__(handoff, health)
        self.url = url
        self.transport_options = transport_options or {}
        self.ssl_options = ssl_options
        self.exchange = Exchange(exchange, type="topic")
        self.queue = Queue(
            f"celeryev.monitor.{socket.gethostname()}.{uuid.uuid4().hex[:12]}",
            self.exchange,
            routing_key="#",
            durable=False,
            auto_delete=False,
            queue_arguments={"x-expires": QUEUE_EXPIRES_MS},
        )
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

    def _flush(self) -> None:
        if not self._pending:
            return
        batch, size = self._pending, self._pending_size
        self._pending, self._pending_size = [], 0
        self.health.messages_received += len(batch)
        if not self.handoff.put(time.time(), batch, size):
            self.health.messages_dropped += len(batch)

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
            consumer = Consumer(channel, queues=[self.queue], no_ack=True, on_message=self._on_message)
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
                    if time.monotonic() - last_heartbeat > 5:
                        conn.heartbeat_check()
                        last_heartbeat = time.monotonic()
