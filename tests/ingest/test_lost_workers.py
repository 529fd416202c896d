"""LOST on a real cluster: a prefork worker killed with -9 (and its pool) mid-task, on Redis and RabbitMQ.

Its running task turns LOST within twice the heartbeat interval plus 10 s; a task with
``acks_late`` that the broker redelivers to another worker goes back to its real state.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.client import celery_client
from support.processes import (
    MonitorProcess,
    OwnBrokers,
    Worker,
    kill9_with_pool,
    new_monitor,
    start_worker,
    wait_for,
)

HEARTBEAT = 1  # seconds: --heartbeat-interval, the worker's freq
BOUND = 2 * HEARTBEAT + 10


def state_of(monitor: MonitorProcess, task_id: str) -> str | None:
    response = monitor.get(f"/api/task/info/{task_id}")
    return response.json().get("state") if response.status_code == 200 else None


BROKERS = ["redis", "rabbitmq"]


@pytest.mark.parametrize("kind", BROKERS)
def test_a_task_running_on_a_killed_worker_turns_lost_within_the_bound(kind: str, own_brokers: OwnBrokers,
                                                                       tmp_path: Path) -> None:
    broker, backend = own_brokers.broker_url(kind, f"lost-{kind}"), own_brokers.backend_url(f"lost-{kind}")
    monitor = new_monitor(broker, tmp_path).start()
    worker = start_worker(broker, "doomed", tmp_path, f"--heartbeat-interval={HEARTBEAT}", backend=backend)
    try:
        with celery_client(broker, backend) as app:
            task_id = app.send_task("tests.hold", args=(300,)).id
        wait_for(lambda: state_of(monitor, task_id) == "STARTED", 40, message="the task started")

        kill9_with_pool(worker)
        killed_at = time.monotonic()
        wait_for(lambda: state_of(monitor, task_id) == "LOST", BOUND + 5, interval=0.2, message="the task LOST")
        assert time.monotonic() - killed_at <= BOUND

        info = monitor.json(f"/api/task/info/{task_id}")
        assert info["worker"] == worker.hostname
        assert [state for state, *_ in info["transitions"]][-2:] == ["STARTED", "LOST"]
        assert info["transitions"][-1][2] == "worker offline"
        assert set(monitor.json("/api/tasks?state=LOST")) == {task_id}
        assert set(monitor.json("/api/tasks", params={"search": "state:LOST"})) == {task_id}
        lost = 'celery_monitor_tasks_lost_total{cluster="default",name="tests.hold"} 1.0'
        assert lost in monitor.get("/metrics").text.splitlines()
    finally:
        if worker.process.poll() is None:
            kill9_with_pool(worker)
        monitor.stop()


@pytest.mark.parametrize("kind", BROKERS)
def test_a_redelivered_acks_late_task_goes_back_to_its_real_state(kind: str, own_brokers: OwnBrokers,
                                                                  tmp_path: Path) -> None:
    broker, backend = own_brokers.broker_url(kind, f"late-{kind}"), own_brokers.backend_url(f"late-{kind}")
    # RabbitMQ requeues an unacknowledged message as soon as its consumer's connection dies. Redis
    # hands it to another consumer once its visibility timeout passes (longer than the task runs, or
    # the second worker's delivery would be handed out again too).
    transport = {"visibility_timeout": 8, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}
    env = {"TEST_BROKER_TRANSPORT_OPTIONS": json.dumps(transport)} if kind == "redis" else {}
    monitor = new_monitor(broker, tmp_path).start()
    first = start_worker(broker, "first", tmp_path, f"--heartbeat-interval={HEARTBEAT}", backend=backend, env=env)
    second: Worker | None = None
    try:
        with celery_client(broker, backend) as app:
            task_id = app.send_task("tests.hold_late", args=(4,)).id
        wait_for(lambda: state_of(monitor, task_id) == "STARTED", 40, message="the task started")
        kill9_with_pool(first)
        wait_for(lambda: state_of(monitor, task_id) == "LOST", BOUND + 5, interval=0.2, message="the task LOST")

        second = start_worker(broker, "second", tmp_path, f"--heartbeat-interval={HEARTBEAT}",
                              backend=backend, env=env)
        wait_for(lambda: state_of(monitor, task_id) == "SUCCESS", 60, interval=0.2,
                 message="the redelivered task to succeed")
        info = monitor.json(f"/api/task/info/{task_id}")
        assert info["worker"] == second.hostname
        states = [state for state, *_ in info["transitions"]]
        assert states[states.index("LOST"):] == ["LOST", "RECEIVED", "STARTED", "SUCCESS"]
        assert monitor.json("/api/tasks?state=LOST") == {}
    finally:
        for worker in (first, second):
            if worker is not None and worker.process.poll() is None:
                worker.stop()
        monitor.stop()
