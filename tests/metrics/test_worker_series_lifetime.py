"""A real worker's series on /metrics: present while it runs, gone once --purge_offline_workers forgets it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import client, processes

pytestmark = pytest.mark.redis

PURGE_AFTER = 2
# Every family with a worker label, and the one task-labelled family needing no worker.
WORKER_FAMILIES = (
    "flower_events", "flower_task_runtime_seconds", "flower_task_prefetch_time_seconds",
    "flower_worker_prefetched_tasks", "flower_worker_online", "flower_worker_number_of_currently_executing_tasks",
    "celery_monitor_worker_pool_processes",
)  # fmt: skip


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[processes.RedisServer]:
    server = processes.RedisServer(processes.free_port(), tmp_path_factory.mktemp("metrics-redis")).start()
    yield server
    server.stop()


def worker_series(monitor: processes.MonitorProcess, worker: str) -> dict[str, list[str]]:
    """Family -> sample names that carry ``worker=<worker>``."""
    found: dict[str, list[str]] = {}
    for family in text_string_to_metric_families(monitor.get("/metrics").text):
        for sample in family.samples:
            if sample.labels.get("worker") == worker:
                found.setdefault(family.name, []).append(sample.name)
    return found


def test_a_purged_workers_series_all_disappear(private_redis: processes.RedisServer, tmp_path: Path) -> None:
    broker, backend = private_redis.url, private_redis.url.replace("/0", "/1")
    monitor = processes.new_monitor(broker, tmp_path, f"--purge_offline_workers={PURGE_AFTER}",
                                    f"--result_backend={backend}").start()
    worker = processes.start_worker(broker, "short-lived", tmp_path, backend=backend)
    try:
        processes.wait_for(lambda: monitor.json("/api/workers?status=1").get(worker.hostname), 30,
                           message="the worker online")
        with client.celery_client(broker, backend) as app:
            results = [app.send_task("tests.add", args=(n, 1)) for n in range(3)]
            assert [r.get(timeout=20) for r in results] == [1, 2, 3]
        processes.wait_for(lambda: set(worker_series(monitor, worker.hostname)) == set(WORKER_FAMILIES), 30,
                           message="a series in every worker family (pool size from the inspect reply)")
        assert monitor.metric("celery_monitor_worker_pool_processes", worker=worker.hostname) == 2
        assert monitor.metric("celery_monitor_workers", status="online") == 1

        worker.process.send_signal(signal.SIGTERM)  # a warm shutdown sends worker-offline
        worker.process.wait(20)
        processes.wait_for(lambda: monitor.metric("celery_monitor_workers", status="online") == 0, 10,
                           message="the worker no longer counted online")
        offline = worker_series(monitor, worker.hostname)
        if offline:  # not purged yet: reported offline, holding nothing, no pool
            assert monitor.metric("flower_worker_online", worker=worker.hostname) == 0
            assert "celery_monitor_worker_pool_processes" not in offline

        processes.wait_for(lambda: not worker_series(monitor, worker.hostname), PURGE_AFTER + 10,
                           message="every series of the purged worker gone")
        assert worker.hostname not in monitor.json("/api/workers?status=1")
        assert monitor.metric("celery_monitor_workers", status="offline") == 0
        # Outcome counts carry no worker label: they are history and stay.
        assert monitor.metric("celery_monitor_task_outcomes_total", task="tests.add", state="SUCCESS") == 3
    finally:
        worker.stop()
        monitor.stop()
