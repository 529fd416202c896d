"""Hostile events published onto a real Redis and a real RabbitMQ, with a real monitor listening.

Each Hypothesis example is a batch of event messages, hostile events with a good task's events
among them, published on the event exchange as a worker would. The running monitor applies every
good event, refuses exactly what its event boundary refuses (counted by reason in /metrics and
/api/monitor/status, never as an apply error), and every endpoint and page keeps answering. Then the
monitor restarts on the history all of this left, and still answers and applies new events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from kombu import Connection, Exchange, Producer
from support.envelopes import kombu_envelope
from support.harness import ENDPOINTS, WORKER
from support.hostile_events import EventMessage, MixedBatch, encode, good_task_events, mixed_batches
from support.processes import MonitorProcess, RedisServer, free_port, new_monitor, wait_for

from celery_monitor.applier.boundary import REASONS, EventBoundary, Rejections
from celery_monitor.receiver.handoff import RawMessage

BATCHES = 8  # Hypothesis examples per broker, each a batch of up to ten messages
REJECTED = "celery_monitor_events_rejected_total"


@dataclass
class EventBus:
    """A private broker with a monitor listening on its event exchange."""

    monitor: MonitorProcess
    publish: Callable[[EventMessage], None]  # as kombu's event dispatcher sends a message
    as_received: Callable[[EventMessage], RawMessage]  # what the monitor's reader makes of that message


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def bus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventBus]:
    tmp = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "redis":
        with redis_bus(tmp) as found:
            yield found
    else:
        with rabbitmq_bus(tmp, request.getfixturevalue("rabbitmq_vhost")) as found:
            yield found


@contextmanager
def redis_bus(tmp: Path) -> Iterator[EventBus]:
    """A private redis-server; messages go out on the event channel in kombu's envelope."""
    server = RedisServer(free_port(), tmp).start()
    client = redis.Redis(port=server.port, db=0)

    def envelope(message: EventMessage) -> bytes:
        return kombu_envelope(message.body, message.content_type)

    def publish(message: EventMessage) -> None:
        assert client.publish("/0.celeryev/task.multi", envelope(message)) == 1, "nobody subscribed"

    try:
        monitor = new_monitor(server.url, tmp).start()
        try:
            yield EventBus(monitor, publish, lambda message: RawMessage(envelope(message)))
        finally:
            monitor.stop()
    finally:
        server.stop()


@contextmanager
def rabbitmq_bus(tmp: Path, vhost: str) -> Iterator[EventBus]:
    """A private virtual host; messages go to the celeryev topic exchange, body and content type as given."""
    broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    monitor = new_monitor(broker, tmp).start()
    try:
        with Connection(broker) as connection:
            producer = Producer(connection.channel(), exchange=Exchange("celeryev", type="topic"))

            def publish(message: EventMessage) -> None:
                producer.publish(message.body, routing_key="task.multi", content_type=message.content_type,
                                 content_encoding="binary")

            yield EventBus(monitor, publish, lambda message: RawMessage(message.body, message.content_type))
    finally:
        monitor.stop()


def test_hostile_events_on_a_real_broker_cost_only_themselves_and_survive_a_restart(bus: EventBus) -> None:
    applied: list[str] = []

    @given(batch=mixed_batches())
    # No shrinking: each attempt republishes megabytes; print_blob replays the failing batch exactly.
    @settings(max_examples=BATCHES, deadline=None, database=None, phases=[Phase.generate], print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    def publish_a_batch(batch: MixedBatch) -> None:
        before = rejections_of(bus.monitor)
        expected = Counter[str]()
        for message in batch.messages:
            bus.publish(message)
            expected += refused_by_the_boundary(bus.as_received(message))
        # Messages are applied in order: once the last one's good task shows, every message was read.
        wait_for(lambda: all(succeeded(bus.monitor, task_id) for task_id in batch.good_task_ids), 20,
                 message="every good event of the batch applied")
        assert_good_tasks_applied(bus.monitor, batch.good_task_ids)
        assert rejections_of(bus.monitor) == before + expected
        assert_every_endpoint_answers(bus.monitor, batch.good_task_ids)
        applied.extend(batch.good_task_ids)

    publish_a_batch()

    bus.monitor.stop()
    bus.monitor.start()  # the same --db: the history the batches left
    assert_good_tasks_applied(bus.monitor, applied)
    assert_every_endpoint_answers(bus.monitor, applied)
    after = "after-the-restart"
    bus.publish(EventMessage(encode(good_task_events(after))))
    wait_for(lambda: succeeded(bus.monitor, after), 20, message="a good event after the restart")


def refused_by_the_boundary(message: RawMessage) -> Counter[str]:
    """The monitor's own event boundary, run here on the same bytes: what it must have refused, by reason."""
    rejections = Rejections()
    EventBoundary(rejections=rejections).events_of(message)
    return Counter({reason: count for reason, count in rejections.counts().items() if count})


def rejections_of(monitor: MonitorProcess) -> Counter[str]:
    """Refusals by reason, read from /metrics and checked against /api/monitor/status."""
    in_metrics = Counter({reason: int(monitor.metric(REJECTED, reason=reason)) for reason in REASONS})
    in_status = Counter(monitor.json("/api/monitor/status")["events_rejected"]["by_reason"])
    assert +in_metrics == +in_status
    return +in_metrics


def succeeded(monitor: MonitorProcess, task_id: str) -> bool:
    response = monitor.get(f"/api/task/info/{task_id}")
    return response.status_code == 200 and response.json()["state"] == "SUCCESS"


def assert_good_tasks_applied(monitor: MonitorProcess, task_ids: list[str]) -> None:
    for task_id in task_ids:
        info = monitor.json(f"/api/task/info/{task_id}")
        assert (info["state"], info["name"], info["result"], info["worker"]) == ("SUCCESS", "tests.add", "3", WORKER)


def assert_every_endpoint_answers(monitor: MonitorProcess, task_ids: list[str]) -> None:
    paths = [*ENDPOINTS, *(f"/api/task/info/{t}" for t in task_ids), *(f"/task/{t}" for t in task_ids),
             *(f"/ui/task/{t}.json" for t in task_ids)]
    for path in paths:
        response = monitor.get(path)
        assert response.status_code < 500, f"{path} answered {response.status_code}: {response.text[:300]}"

