"""A notification storm cannot hurt ingestion: the applier only queues notices, and drops what does not fit."""

from __future__ import annotations

import time
from pathlib import Path

from support.harness import Harness

from celery_monitor.applier.settle import BackendOutcome

RULES = ("notifications = {'channels': {'hook': {'kind': 'webhook', 'url': 'http://127.0.0.1:9/', 'secret': 'k'}}, "
         "'rules': {'failed': {'kind': 'task_failed', 'channels': ['hook']}, "
         "'lost': {'kind': 'task_lost', 'channels': ['hook']}}}\n")


def harness_with_rules(tmp_path: Path) -> Harness:
    conf = tmp_path / "rules.py"
    conf.write_text(RULES)
    return Harness(tmp_path, f"--conf={conf}")


def test_a_full_notice_queue_drops_and_counts_while_every_event_is_applied(tmp_path: Path) -> None:
    harness = harness_with_rules(tmp_path)
    try:
        notices = harness.monitor.notifier.notices  # the notifier is not started: nobody takes them
        notices.limit = 10
        ids = [harness.run_task("app.storm", "w@h", fail="Boom('x')") for _ in range(25)]
        harness.run_task("app.fine", "w@h")  # a success: no rule is about it, nothing is queued
        assert len(notices) == 10
        assert notices.dropped == 15
        assert harness.values("celery_monitor_notification_notices_dropped") == {(): 15.0}
        assert all(harness.get(f"/api/task/info/{task_id}").json()["state"] == "FAILURE" for task_id in ids)
    finally:
        harness.close()


def test_tasks_turned_lost_are_queued_for_the_lost_rule(tmp_path: Path) -> None:
    harness = harness_with_rules(tmp_path)
    try:
        t0 = time.time()
        health = harness.monitor.applier.health
        health.connected, health.connected_since = True, t0 - 60
        harness.feed({"type": "worker-online", "hostname": "w1", "freq": 2.0, "pid": 100}, at=t0)
        task_id = harness.run_task("app.slow", "w1", finish=False)
        harness.monitor.applier.sweep_lost(now=time.time() + 10)
        [notice] = harness.monitor.notifier.notices.take(timeout=0)
        assert (notice.uuid, notice.state, notice.name, notice.worker) == (task_id, "LOST", "app.slow", "w1")
    finally:
        harness.close()


def test_a_failure_known_only_from_the_result_backend_is_queued_for_the_failure_rule(tmp_path: Path) -> None:
    harness = harness_with_rules(tmp_path)
    try:
        task_id = harness.run_task("app.quiet", "w1", finish=False)  # its task-failed event never came
        applier = harness.monitor.applier
        applier.submit([BackendOutcome(task_id, "FAILURE", exception="KeyError('gone')")])
        applier.apply_facts()
        assert harness.get(f"/api/task/info/{task_id}").json()["state"] == "FAILURE"
        [notice] = harness.monitor.notifier.notices.take(timeout=0)
        assert (notice.uuid, notice.state, notice.name, notice.exception) == (
            task_id, "FAILURE", "app.quiet", "KeyError('gone')")
    finally:
        harness.close()
