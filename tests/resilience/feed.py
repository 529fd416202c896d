"""Celery task events published straight onto a real broker, as a worker's event dispatcher sends them.

Each task is one message holding its ``task-received`` and ``task-succeeded`` events, so a count of
events applied says exactly how many messages the monitor took in: none lost, none twice.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any

import redis
from kombu import Connection, Exchange, Producer
from support.envelopes import kombu_envelope

WORKER = "resilience@feed"
_clock = itertools.count(1)


def task_message(task_id: str | None = None, name: str = "tests.add") -> tuple[str, list[dict[str, Any]]]:
    task_id = task_id or str(uuid.uuid4())
    now = time.time()
    return task_id, [
        {"type": "task-received", "uuid": task_id, "name": name, "hostname": WORKER, "timestamp": now,
         "clock": next(_clock), "args": "(1, 2)", "kwargs": "{}"},
        {"type": "task-succeeded", "uuid": task_id, "hostname": WORKER, "timestamp": now, "clock": next(_clock),
         "runtime": 0.01, "result": "3"},
    ]


class RedisFeed:
    """Publishes to the monitor's pub/sub patterns on a Redis database."""

    def __init__(self, port: int, db: int = 0) -> None:
        self.client = redis.Redis(port=port, db=db, socket_timeout=5)
        self.channel = f"/{db}.celeryev/task.multi"

    def listening(self) -> bool:
        """Whether a monitor is subscribed (a message published before that is lost: pub/sub keeps nothing)."""
        return int(self.client.pubsub_numpat()) >= 1

    def send(self, count: int = 1) -> list[str]:
        sent = []
        for _ in range(count):
            task_id, events = task_message()
            receivers = self.client.publish(self.channel, kombu_envelope(json.dumps(events).encode()))
            assert receivers == 1, f"{receivers} subscribers got task {task_id}"
            sent.append(task_id)
        return sent


class AmqpFeed:
    """Publishes to the ``celeryev`` topic exchange of a RabbitMQ virtual host."""

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, count: int = 1) -> list[str]:
        sent = []
        with Connection(self.url, connect_timeout=5) as conn:
            producer = Producer(conn.channel(), exchange=Exchange("celeryev", type="topic"))
            for _ in range(count):
                task_id, events = task_message()
                producer.publish(json.dumps(events).encode(), routing_key="task.multi",
                                 content_type="application/json", content_encoding="utf-8")
                sent.append(task_id)
        return sent
