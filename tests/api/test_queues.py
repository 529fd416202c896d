"""/api/queues/length against the real brokers: Redis priority sub-lists and key prefixes, RabbitMQ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.client import celery_client
from support.processes import new_monitor, wait_for

CONFIG = """
from kombu import Queue
task_queues = [Queue("celery"), Queue("{queue}")]
broker_transport_options = {options!r}
"""


@pytest.mark.parametrize("prefix", ["", "tenant-a:"])
def test_redis_queue_length_sums_priorities_and_honours_prefix(redis_server: Any, tmp_path: Path,
                                                               prefix: str) -> None:
    queue = "parked"
    options = {"global_keyprefix": prefix} if prefix else {}
    (tmp_path / "flowerconfig.py").write_text(CONFIG.format(queue=queue, options=options))
    monitor = new_monitor(redis_server.url.replace("/0", "/3"), tmp_path).start()
    try:
        with celery_client(redis_server.url.replace("/0", "/3"), redis_server.url) as app:
            app.conf.broker_transport_options = options
            for priority in (None, 3, 6, 9, 9):
                app.send_task("tests.add", args=(1, 2), queue=queue, priority=priority)
        queues = {q["name"]: q["messages"] for q in monitor.json("/api/queues/length")["active_queues"]}
        assert queues == {"celery": 0, queue: 5}
        # The sender published task-sent events under the same prefix: the monitor heard them.
        wait_for(lambda: len(monitor.json("/api/tasks", params={"state": "PENDING"})) == 5, 10,
                 message="task-sent events through the key prefix")
    finally:
        monitor.stop()


def test_rabbitmq_queue_length_from_management_api(rabbitmq_vhost: str, redis_server: Any,
                                                   tmp_path: Path) -> None:
    broker = f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}"
    queue = "parked"
    (tmp_path / "flowerconfig.py").write_text(CONFIG.format(queue=queue, options={}))
    monitor = new_monitor(broker, tmp_path, "--broker_api=http://guest:guest@127.0.0.1:15672/api/").start()
    try:
        with celery_client(broker, redis_server.url) as app:
            for _ in range(3):
                app.send_task("tests.add", args=(1, 2), queue=queue)

        def parked() -> dict[str, Any] | None:
            queues = {q["name"]: q for q in monitor.json("/api/queues/length")["active_queues"]}
            return queues if queues.get(queue, {}).get("messages") == 3 else None

        # The management API refreshes its statistics every few seconds.
        queues = wait_for(parked, 20, message="three messages parked")
        assert queues[queue]["ready"] == 3 and queues[queue]["consumers"] == 0
        assert queues["celery"]["messages"] == 0
    finally:
        monitor.stop()
    # The management API's URL carries its password, and it is asked on every poll: the HTTP client's
    # request lines stay out of the log.
    log = monitor.log.read_text()
    assert "guest:guest@" not in log and "HTTP Request" not in log, log[-2000:]


def test_queue_length_is_503_when_the_broker_is_down(tmp_path: Path) -> None:
    from support.processes import free_port

    monitor = new_monitor(f"redis://127.0.0.1:{free_port()}/0", tmp_path).start(wait_connected=False)
    try:
        response = monitor.get("/api/queues/length")
        assert response.status_code == 503
        assert "Broker unavailable" in response.json()["error"]
    finally:
        monitor.stop()
