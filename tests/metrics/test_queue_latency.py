"""Queue latency on real brokers: tasks sent while no worker runs wait, then a worker starts.

The wait shows twice: while the tasks wait, as the age of the oldest waiting message (on Redis read
from the tail of the queue's lists, priority sub-lists included); once they start, in the
``celery_monitor_task_queue_latency_seconds`` histogram with their queue and task name.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.client import celery_client
from support.harness import Harness
from support.processes import MonitorProcess, OwnBrokers, new_monitor, start_worker, wait_for

LATENCY = "celery_monitor_task_queue_latency_seconds"
OLDEST = "celery_monitor_queue_oldest_message_age_seconds"
WAITED = 3.0  # seconds the tasks wait at least, with no worker to take them


def celery_queue(monitor: MonitorProcess) -> dict[str, object]:
    queues = monitor.json("/api/queues/length")["active_queues"]
    return next(queue for queue in queues if queue["name"] == "celery")


@pytest.mark.parametrize("kind", ["redis", "rabbitmq"])
def test_tasks_that_waited_for_a_worker_show_their_queue_latency(kind: str, own_brokers: OwnBrokers,
                                                                 tmp_path: Path) -> None:
    broker = own_brokers.broker_url(kind, f"latency-{kind}")
    backend = own_brokers.backend_url(f"latency-{kind}")
    monitor = new_monitor(broker, tmp_path).start(timeout=60)
    worker = None
    try:
        with celery_client(broker, backend) as app:
            # The first one goes to a priority sub-list on Redis (kombu's "celery\x06\x169"): it is the oldest.
            first = app.send_task("tests.add", (0, 0), priority=9).id
            sent = [first] + [app.send_task("tests.add", (i, i)).id for i in range(1, 5)]
        wait_for(lambda: all(monitor.json(f"/api/task/info/{t}").get("sent") for t in sent), 20,
                 message="the task-sent events")
        sent_at = monitor.json(f"/api/task/info/{first}")["sent"]

        if kind == "redis":
            wait_for(lambda: monitor.metric(OLDEST, queue="celery") >= 1.0, 30, interval=0.5,
                     message="the oldest message's age on Redis")
            earlier = monitor.metric(OLDEST, queue="celery")
            wait_for(lambda: monitor.metric(OLDEST, queue="celery") > earlier + 1.0, 30, interval=0.5,
                     message="the oldest message's age growing while it waits")
            # Read from the priority sub-list's tail: the first task's own sent time.
            assert celery_queue(monitor)["oldest_message_timestamp"] == sent_at
            assert celery_queue(monitor)["messages"] == 5
        wait_for(lambda: time.time() - sent_at >= WAITED, WAITED + 1, interval=0.2, message="the wait")

        worker = start_worker(broker, f"w-latency-{kind}", tmp_path, backend=backend)
        wait_for(lambda: all(monitor.json(f"/api/task/info/{t}")["state"] == "SUCCESS" for t in sent), 60,
                 message="the tasks run once a worker is there")

        labels = {"queue": "celery", "task": "tests.add"}
        assert monitor.metric(f"{LATENCY}_count", **labels) == 5
        assert monitor.metric(f"{LATENCY}_bucket", **labels, le="2.5") == 0, "every task waited longer"
        assert monitor.metric(f"{LATENCY}_bucket", **labels, le="+Inf") == 5
        started = [monitor.json(f"/api/task/info/{t}") for t in sent]
        expected = sum(task["started"] - task["sent"] for task in started)
        assert monitor.metric(f"{LATENCY}_sum", **labels) == pytest.approx(expected, abs=1e-3)
        if kind == "redis":
            wait_for(lambda: monitor.metric(OLDEST, queue="celery") == 0.0, 30, interval=0.5,
                     message="no age once the queue is empty")
    finally:
        if worker is not None:
            worker.stop()
        monitor.stop()


def test_latency_counts_from_the_eta_when_later_and_only_for_tasks_seen_sent(
        harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory()
    t0 = time.time() - 60
    eta = datetime.fromtimestamp(t0 + 5, tz=UTC).isoformat()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    harness.feed({"type": "task-sent", "uuid": ids[0], "name": "app.later", "queue": "slow", "eta": eta,
                  "args": "()", "kwargs": "{}"}, at=t0)  # waits for its ETA by design: 2 s late, not 7
    harness.feed({"type": "task-sent", "uuid": ids[1], "name": "app.later", "queue": "slow",
                  "args": "()", "kwargs": "{}"}, at=t0)
    for task_id in ids:
        harness.feed({"type": "task-received", "uuid": task_id, "name": "app.later", "hostname": "w@h",
                      "args": "()", "kwargs": "{}"}, at=t0 + 6)  # ids[2]: never seen sent
        harness.feed({"type": "task-started", "uuid": task_id, "hostname": "w@h"}, at=t0 + 7)
    family = "celery_monitor_task_queue_latency_seconds"
    assert harness.values(family, f"{family}_count") == {("slow", "app.later"): 2}
    assert harness.values(family, f"{family}_sum")[("slow", "app.later")] == pytest.approx(2.0 + 7.0)
    buckets = harness.values(family, f"{family}_bucket", queue="slow")
    assert (buckets[("5.0", "slow", "app.later")], buckets[("10.0", "slow", "app.later")]) == (1, 2)
