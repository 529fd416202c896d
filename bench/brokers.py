"""Private brokers for the run and publishers that replay a segment at a fixed rate or at once.

Messages are wrapped exactly as kombu sends Celery events: on Redis a PUBLISH of kombu's JSON
envelope (base64 body) to ``/<db>.celeryev/<routing key>``; on RabbitMQ a basic.publish to the
``celeryev`` topic exchange with the JSON body and kombu's properties.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import amqp
from stream import Message, Segment

from celery_monitor.receiver.redis_reader import encode_command

TICK = 0.005


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:
            pass
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


class PrivateRedis:
    """A redis-server of our own on a free port (the machine's shared one is never touched)."""

    def __init__(self, directory: Path, extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.directory = directory
        self.extra = extra or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def dropped_subscribers(self) -> int:
        """How often Redis closed a client for passing its output buffer limit (from its log)."""
        try:
            return self.log.read_text(errors="replace").count("overcoming of output buffer limits")
        except OSError:
            return 0

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--logfile", str(self.log), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, 10, "redis-server")
        return self

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(encode_command("PING"))
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


class RabbitVhost:
    """A private virtual host on the machine's RabbitMQ, deleted afterwards."""

    def __init__(self) -> None:
        self.name = f"cmon-bench-{uuid.uuid4().hex[:8]}"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:5672/{self.name}"

    def start(self) -> RabbitVhost:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", self.name], check=True, capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", self.name, "guest", ".*", ".*", ".*"],
                       check=True, capture_output=True)
        return self

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.name], capture_output=True)


def kombu_envelope(message: Message, exchange: str = "celeryev") -> bytes:
    """The JSON envelope kombu's Redis transport publishes for an event message."""
    envelope = {
        "body": base64.b64encode(message.body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": message.hostname},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": exchange, "routing_key": message.routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope).encode()


class Encoded:
    """A segment encoded once for the Redis wire (so every consumer gets the very same bytes)."""

    def __init__(self, segment: Segment, db: int = 0, exchange: str = "celeryev") -> None:
        self.segment = segment
        prefix = f"/{db}.{exchange}/"
        self.commands = [encode_command("PUBLISH", prefix + m.routing_key, kombu_envelope(m, exchange))
                         for m in segment.messages]


def _paced(counts: list[int], rate: float | None) -> Iterator[tuple[int, int]]:
    """Yield (start, end) slices of the message list to send now, keeping to ``rate`` events/s."""
    total = len(counts)
    if rate is None:
        for start in range(0, total, 500):
            yield start, min(total, start + 500)
        return
    started = time.monotonic()
    sent_events = 0
    index = 0
    while index < total:
        due = (time.monotonic() - started) * rate
        end = index
        while end < total and sent_events < due:
            sent_events += counts[end]
            end += 1
        if end > index:
            yield index, end
            index = end
        else:
            time.sleep(TICK)


class RedisPublisher:
    """PUBLISHes pre-encoded commands through one pipelined socket; a thread drains the replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent = 0
        self.replies = 0
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            self.replies += data.count(b"\r\n")

    def publish(self, encoded: Encoded, rate: float | None) -> float:
        """Send the segment; returns the seconds it took. ``rate`` None = as fast as possible."""
        counts = [m.events for m in encoded.segment.messages]
        started = time.monotonic()
        for start, end in _paced(counts, rate):
            self.sock.sendall(b"".join(encoded.commands[start:end]))
            self.sent += end - start
        elapsed = time.monotonic() - started
        wait_until(lambda: self.replies >= self.sent, 60, "redis to acknowledge every PUBLISH", 0.01)
        # As fast as possible, the socket takes the commands long before Redis has run them: the
        # burst is published once Redis has acknowledged every PUBLISH.
        return elapsed if rate is not None else time.monotonic() - started

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class AmqpPublisher:
    """basic.publish to the event exchange, with the properties kombu gives an event message."""

    def __init__(self, vhost: str, exchange: str = "celeryev") -> None:
        self.connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", virtual_host=vhost)
        self.connection.connect()
        self.channel = self.connection.channel()
        # Declared exactly as Celery declares its event exchange, so consumers agree with it.
        self.channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
        self.exchange = exchange

    def publish(self, segment: Segment, rate: float | None) -> float:
        messages = segment.messages
        counts = [m.events for m in messages]
        started = time.monotonic()
        publish = self.channel.basic_publish
        for start, end in _paced(counts, rate):
            for message in messages[start:end]:
                publish(amqp.Message(message.body, content_type="application/json", content_encoding="utf-8",
                                     application_headers={"hostname": message.hostname}, delivery_mode=1,
                                     priority=0),
                        exchange=self.exchange, routing_key=message.routing_key)
        return time.monotonic() - started

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:
            pass
