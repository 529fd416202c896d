"""Celery's event semantics, event by event: order, merging, custom states, heartbeats and skew."""

from __future__ import annotations

import time
from pathlib import Path

from support.harness import Harness

from celery_monitor.applier.task_events import apply_task_event
from celery_monitor.applier.worker_events import apply_worker_event
from celery_monitor.state.models import TaskRecord, WorkerRecord


def event(kind: str, ts: float, **fields: object) -> dict[str, object]:
    return {"type": kind, "uuid": "t1", "timestamp": ts, "hostname": "w@h", **fields}


def test_in_order_events_walk_the_states() -> None:
    task = TaskRecord("t1")
    apply_task_event(task, event("task-received", 1, name="app.add", args="(1, 2)", kwargs="{}"))
    apply_task_event(task, event("task-started", 2))
    apply_task_event(task, event("task-succeeded", 3, result="3", runtime=0.9))
    assert (task.state, task.name, task.result, task.runtime) == ("SUCCESS", "app.add", "3", 0.9)
    assert (task.received, task.started, task.succeeded, task.timestamp) == (1, 2, 3, 3)
    assert [t[0] for t in task.transitions] == ["RECEIVED", "STARTED", "SUCCESS"]


def test_late_received_fills_fields_but_keeps_the_final_state() -> None:
    task = TaskRecord("t1")
    apply_task_event(task, event("task-succeeded", 3, result="3"))
    apply_task_event(task, event("task-started", 2))
    apply_task_event(task, event("task-received", 1, name="app.add", args="(1, 2)", result="ignored"))
    assert task.state == "SUCCESS" and task.timestamp == 3
    assert task.name == "app.add" and task.args == "(1, 2)"
    assert task.result == "3"  # RECEIVED may only contribute its own fields
    assert task.received == 1 and task.started == 2


def test_retry_always_takes_over_and_a_new_attempt_follows() -> None:
    task = TaskRecord("t1")
    apply_task_event(task, event("task-started", 1))
    apply_task_event(task, event("task-retried", 2, exception="IOError()"))
    assert task.state == "RETRY"
    apply_task_event(task, event("task-received", 3, retries=1))
    assert task.state == "RECEIVED" and task.retries == 1


def test_a_send_stamped_after_the_workers_first_events_still_comes_first_on_the_timeline() -> None:
    """Celery stamps task-sent after publishing the message, so a worker can receive it first (and a
    client's clock can run ahead): the timeline still shows the send before the attempt it began."""
    task = TaskRecord("t1")
    apply_task_event(task, event("task-received", 1.001, name="app.add"))
    apply_task_event(task, event("task-sent", 1.002, hostname="client@h"))
    assert [t[0] for t in task.transitions] == ["PENDING", "RECEIVED"]
    assert task.state == "RECEIVED"
    apply_task_event(task, event("task-started", 1.003))
    apply_task_event(task, event("task-retried", 2, exception="IOError()"))
    # The retry's send comes after the next attempt's received, by its time: before it on the timeline.
    apply_task_event(task, event("task-received", 3.001, retries=1))
    apply_task_event(task, event("task-sent", 3.002, hostname="client@h"))
    assert [t[0] for t in task.transitions] == ["PENDING", "RECEIVED", "STARTED", "RETRY", "PENDING", "RECEIVED"]
    # A task sent again while its attempt runs (the same id published twice) stays in time order.
    apply_task_event(task, event("task-sent", 4, hostname="client@h"))
    assert [t[0] for t in task.transitions][-2:] == ["RECEIVED", "PENDING"]


def test_custom_events_become_states_with_their_data() -> None:
    task = TaskRecord("t1")
    apply_task_event(task, event("task-started", 1))
    apply_task_event(task, event("task-progress", 2, current=5, total=10))
    assert task.state == "PROGRESS"
    assert task.custom["PROGRESS"] == {"current": 5, "total": 10}
    apply_task_event(task, event("task-succeeded", 3))
    assert task.state == "SUCCESS"


def test_worker_liveness_uses_the_monitors_clock_not_the_workers() -> None:
    worker = WorkerRecord("w@h")
    # The worker's clock is an hour behind: its own timestamps must not make it look offline.
    apply_worker_event(worker, {"type": "worker-heartbeat", "timestamp": 1000.0, "freq": 2.0, "active": 3},
                       received_at=4600.0)
    assert worker.is_online(4601.0)
    assert not worker.is_online(4600.0 + 2 * 2.0 + 0.01)
    assert worker.clock_skew == 3600.0 and worker.active == 3
    apply_worker_event(worker, {"type": "worker-offline", "timestamp": 1001.0}, received_at=4601.0)
    assert not worker.is_online(4601.5)


def test_out_of_order_heartbeats_keep_the_latest() -> None:
    worker = WorkerRecord("w@h", freq=60)
    apply_worker_event(worker, {"type": "worker-heartbeat", "timestamp": 10.0}, received_at=20.0)
    apply_worker_event(worker, {"type": "worker-heartbeat", "timestamp": 9.0}, received_at=19.0)
    assert worker.heartbeats == [19.0, 20.0]


def test_an_event_delivered_again_is_applied_and_counted_once(tmp_path: Path) -> None:
    """A broker redelivering what a killed monitor had read but not committed (RabbitMQ, replicas
    sharing a queue) hands the same events over again: they leave the task as it is and count once."""
    harness = Harness(tmp_path)
    try:
        t0 = time.time()
        received = {"type": "task-received", "uuid": "again", "name": "app.twice", "hostname": "w@h",
                    "args": "()", "kwargs": "{}"}
        started = {"type": "task-started", "uuid": "again", "hostname": "w@h"}
        succeeded = {"type": "task-succeeded", "uuid": "again", "hostname": "w@h", "result": "1", "runtime": 0.4}
        for _ in range(2):  # the whole stretch delivered twice, as a redelivery does
            harness.feed(received, at=t0)
            harness.feed(started, at=t0 + 1)
            harness.feed(succeeded, at=t0 + 2)
        info = harness.get("/api/task/info/again").json()
        assert info["state"] == "SUCCESS" and [entry[0] for entry in info["transitions"]] == [
            "RECEIVED", "STARTED", "SUCCESS"]
        events = harness.values("flower_events", "flower_events_total", task="app.twice")
        assert sorted(events.values()) == [1.0, 1.0, 1.0]
        assert harness.values("flower_task_runtime_seconds", "flower_task_runtime_seconds_count") == {
            ("app.twice", "w@h"): 1.0}
        # A later event of another kind still applies (only the very same event is recognised).
        harness.feed({"type": "task-revoked", "uuid": "again", "hostname": "w@h"}, at=t0 + 3)
        assert harness.values("flower_events", "flower_events_total", task="app.twice", type="task-revoked")
    finally:
        harness.close()
