"""Failure groups on real prefork workers, on Redis and RabbitMQ, with the history in SQLite and in
PostgreSQL: 1,000 failures of three exception types are three groups with exact counts, and they
stay whole while --max_tasks trims the history under them (--max_failed_tasks keeps them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.client import celery_client
from support.postgres import history_location
from support.processes import MonitorProcess, OwnBrokers, new_monitor, start_worker, wait_for

KINDS = ("ValueError", "KeyError", "ConnectionError")
FAILURES = 1000
SUCCESSES = 300
MAX_TASKS = 500  # the history keeps 500 tasks; the failures are kept apart, up to --max_failed_tasks


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, own_brokers: OwnBrokers) -> Iterator[tuple[str, str]]:
    yield own_brokers.broker_url(request.param, "failures"), own_brokers.backend_url("failures")


def groups(monitor: MonitorProcess) -> dict[tuple[str, str], dict[str, Any]]:
    return {(g["name"], g["exception_type"]): g for g in monitor.json("/api/failures")["groups"]}


# Each broker once and each store once (the stores' own suites check that they answer alike).
@pytest.mark.parametrize(("kind", "store"), [("redis", "sqlite"), ("rabbitmq", "postgresql")])
def test_a_thousand_failures_are_three_groups_that_outlive_max_tasks(
        kind: str, store: str, own_brokers: OwnBrokers, tmp_path: Path) -> None:
    with history_location(store, tmp_path) as history_db:
        thousand_failures(own_brokers.broker_url(kind, "failures"), own_brokers.backend_url("failures"),
                          history_db, tmp_path)


def thousand_failures(broker_url: str, backend: str, history_db: str, tmp_path: Path) -> None:
    monitor = new_monitor(broker_url, tmp_path, f"--db={history_db}", f"--max_tasks={MAX_TASKS}",
                          "--max_failed_tasks=5000").start(timeout=60)
    worker = start_worker(broker_url, "w-failures", tmp_path, backend=backend)
    try:
        wait_for(lambda: monitor.json("/api/workers?status=true").get(worker.hostname), 40, message="worker online")
        with celery_client(broker_url, backend) as app:
            first = [app.send_task("tests.fail_as", (KINDS[i % 3], f"failure {i}")).id for i in range(FAILURES)]
        wait_for(lambda: monitor.json("/api/failures")["total"] == FAILURES, 240, interval=0.5,
                 message="every failure in its group")
        with celery_client(broker_url, backend) as app:
            last = [app.send_task("tests.add", (i, i)).id for i in range(SUCCESSES)]
        wait_for(lambda: monitor.json(f"/api/task/info/{last[-1]}")["state"] == "SUCCESS", 120, message="all ran")
        # Trimmed: the history keeps its newest 500 tasks, so most failures left it (the task list may
        # still show some from the live view's recent tasks, which trimming does not empty)...
        wait_for(lambda: monitor.json("/api/monitor/status")["store"]["tasks"] <= MAX_TASKS, 30, message="trimmed")

        # ...and every one of them is still counted in its group, exactly.
        found = groups(monitor)
        assert {key: group["count"] for key, group in found.items()} == {
            ("tests.fail_as", "ValueError"): 334, ("tests.fail_as", "KeyError"): 333,
            ("tests.fail_as", "ConnectionError"): 333}
        value = found[("tests.fail_as", "ValueError")]
        assert value["first_seen"] <= value["last_seen"]
        assert value["trend"]["status"] == "new" and value["trend"]["in_window"] == 334
        assert "ValueError: failure" in value["sample"]["traceback"]

        # The group's tasks, paged; the oldest failure's page still opens after trimming.
        page = monitor.json("/api/failures/tasks", params={"name": "tests.fail_as", "exception": "KeyError",
                                                           "limit": 100, "offset": 300})
        assert page["total"] == 333 and len(page["tasks"]) == 33
        assert all(task["state"] == "FAILURE" and task["exception"].startswith("KeyError(") for task in page["tasks"])
        oldest = monitor.json(f"/api/task/info/{first[0]}")
        assert oldest["state"] == "FAILURE" and oldest["exception"] == "ValueError('failure 0')"
    finally:
        worker.stop()
        monitor.stop()


def test_a_group_is_named_by_its_task_name_and_exception_type(broker: tuple[str, str], tmp_path: Path) -> None:
    """Bad input: a group not named, a window out of range: 400 with the reason, never a 500."""
    broker_url, _ = broker
    monitor = new_monitor(broker_url, tmp_path).start(timeout=60)
    try:
        for path in ("/api/failures/tasks", "/api/failures/tasks?name=x", "/api/failures?window=5",
                     "/api/failures?buckets=1000", "/api/failures/tasks?name=x&exception=&limit=0"):
            response = monitor.get(path)
            assert response.status_code == 400, path
            assert response.json()["error"]
        assert monitor.json("/api/failures/tasks?name=x&exception=")["total"] == 0
    finally:
        monitor.stop()
