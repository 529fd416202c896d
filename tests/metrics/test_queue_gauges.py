"""Queue gauges: what the broker says now, or nothing when it cannot be asked."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import client, processes
from support.harness import Harness

QUEUE_FAMILIES = ("celery_monitor_queue_length", "celery_monitor_queue_unacked", "celery_monitor_queue_consumers",
                  "celery_monitor_queue_oldest_message_age_seconds")
MANAGEMENT_API = "http://guest:guest@127.0.0.1:15672/api/"


def queue_values(scrape: Callable[[], str], queue: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: sample.value
            for family in text_string_to_metric_families(scrape())
            for sample in family.samples
            if family.name in QUEUE_FAMILIES and sample.labels.get("queue") == queue}


@pytest.mark.redis
def test_redis_queue_length_is_dropped_while_the_broker_is_unreachable(
        harness_factory: Callable[..., Harness], tmp_path: Path) -> None:
    redis_server = processes.RedisServer(processes.free_port(), tmp_path).start()
    try:
        harness = harness_factory(broker=redis_server.url)
        poller = harness.monitor.queue_poller
        poller.interval = 0.1
        poller.start()
        with client.celery_client(redis_server.url, redis_server.url) as app:
            for n in range(3):
                app.send_task("tests.add", args=(n, n))
        # A Redis list tells its length and nothing else: no consumers, no unacked, no age.
        processes.wait_for(lambda: queue_values(harness.exposition, "celery") == {"celery_monitor_queue_length": 3},
                           10, message="three messages in the celery queue")
        redis_server.stop()
        processes.wait_for(lambda: queue_values(harness.exposition, "celery") == {}, 10,
                           message="the queue gauges dropped while Redis is down")
        assert poller.last_error is not None
        redis_server.start()  # same port, empty: the next poll reports it
        processes.wait_for(lambda: queue_values(harness.exposition, "celery") == {"celery_monitor_queue_length": 0},
                           10, message="the queue gauges back, and current")
    finally:
        redis_server.stop()


CONFIG = """
from kombu import Queue
task_queues = [Queue({busy!r}), Queue({parked!r})]
"""


def management_queue(vhost: str, name: str) -> dict[str, Any]:
    response = httpx.get(f"http://127.0.0.1:15672/api/queues/{vhost}/{name}", auth=("guest", "guest"), timeout=5)
    response.raise_for_status()
    return response.json()


@pytest.mark.rabbitmq
def test_rabbitmq_queue_gauges_match_the_management_api(rabbitmq_vhost: str, redis_server: Any,
                                                        tmp_path: Path) -> None:
    broker = f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}"
    backend = redis_server.url.replace("/0", "/1")
    busy, parked = f"busy-{uuid.uuid4().hex[:6]}", f"parked-{uuid.uuid4().hex[:6]}"
    (tmp_path / "flowerconfig.py").write_text(CONFIG.format(busy=busy, parked=parked))
    monitor = processes.new_monitor(broker, tmp_path, f"--broker_api={MANAGEMENT_API}").start()
    # Two pool processes running a task each (acknowledged when started), and the prefetch count
    # (concurrency x multiplier) of four more delivered but not yet acknowledged.
    worker = processes.start_worker(broker, f"holder-{busy}", tmp_path, "-Q", busy, "--prefetch-multiplier=2",
                                    backend=backend)
    try:
        processes.wait_for(lambda: monitor.json("/api/workers?status=1").get(worker.hostname), 30,
                           message="the worker online")
        published = int(time.time()) - 120
        with client.celery_client(broker, backend) as app:
            for _ in range(8):
                app.send_task("tests.sleep", args=(60,), queue=busy)
            # Celery sets no AMQP timestamp; a producer that does lets the broker tell the age.
            for n in range(3):
                app.send_task("tests.add", args=(n, n), queue=parked, timestamp=published)

        seen: dict[str, Any] = {}

        def settled() -> dict[str, Any] | None:
            api = {name: management_queue(rabbitmq_vhost, name) for name in (busy, parked)}
            seen["api"] = {name: {k: q.get(k) for k in ("messages_ready", "messages_unacknowledged", "consumers")}
                           for name, q in api.items()}
            seen["metrics"] = {name: queue_values(lambda: monitor.get("/metrics").text, name) for name in api}
            expected = {
                busy: {"celery_monitor_queue_length": 2, "celery_monitor_queue_unacked": 4,
                       "celery_monitor_queue_consumers": 1},
                parked: {"celery_monitor_queue_length": 3, "celery_monitor_queue_unacked": 0,
                         "celery_monitor_queue_consumers": 0},
            }
            for name, values in expected.items():
                said = api[name]
                if (said.get("messages_ready"), said.get("messages_unacknowledged"), said.get("consumers")) != (
                        values["celery_monitor_queue_length"], values["celery_monitor_queue_unacked"],
                        values["celery_monitor_queue_consumers"]):
                    return None  # the management API's statistics lag a few seconds
            got = {name: queue_values(lambda: monitor.get("/metrics").text, name) for name in (busy, parked)}
            ages = {name: got[name].pop("celery_monitor_queue_oldest_message_age_seconds", None) for name in got}
            return {"got": got, "ages": ages, "scraped_at": time.time()} if got == expected else None

        try:
            result = processes.wait_for(settled, 40, interval=0.5, message="the gauges to match the management API")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {seen}") from None
        # Only the parked queue's messages carry a timestamp: its age is known, the busy queue's is not.
        assert result["ages"][busy] is None
        assert result["ages"][parked] == pytest.approx(result["scraped_at"] - published, abs=2)
    finally:
        worker.process.send_signal(signal.SIGQUIT)  # cold shutdown: do not wait out the sleeping tasks
        try:
            worker.process.wait(15)
        finally:
            worker.stop()
            monitor.stop()
