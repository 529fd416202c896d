"""kill -9 of the monitor loses at most about a second; a restart restores tasks, workers, counters."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
from support.client import celery_client
from support.processes import new_monitor, start_worker, wait_for


def test_kill9_then_restart_restores_history(redis_server: Any, tmp_path: Path) -> None:
    broker = redis_server.url.replace("/0", "/5")
    backend = redis_server.url.replace("/0", "/6")
    monitor = new_monitor(broker, tmp_path).start()
    worker = start_worker(broker, "durable", tmp_path, backend=backend)
    try:
        with celery_client(broker, backend) as app:
            results = [app.send_task("tests.add", args=(i, i)) for i in range(20)]
            failed = app.send_task("tests.fail", args=("kept",))
            assert [r.get(timeout=20) for r in results] == [2 * i for i in range(20)]
        wait_for(lambda: monitor.json(f"/api/task/info/{failed.id}")["state"] == "FAILURE", 15,
                 message="the failure recorded")
        events_before = monitor.metric("flower_events_total", task="tests.add", type="task-succeeded",
                                       worker=worker.hostname)
        assert events_before == 20
        # The stated bound: what was applied more than about a second ago survives a kill -9.
        time.sleep(1.2)
        monitor.kill9()

        restarted = new_monitor(broker, tmp_path).start()
        try:
            tasks = restarted.json("/api/tasks", params={"taskname": "tests.add"})
            assert {r.id for r in results} <= set(tasks)
            assert all(tasks[r.id]["state"] == "SUCCESS" for r in results)
            assert restarted.json(f"/api/task/info/{failed.id}")["exception"] == "ValueError('kept')"
            assert worker.hostname in restarted.json("/api/workers", params={"status": "1"})
            assert restarted.metric("flower_events_total", task="tests.add", type="task-succeeded",
                                    worker=worker.hostname) == events_before
            assert "tests.fail" in restarted.json("/api/task/types")["task-types"]
            # And it keeps ingesting where it left off.
            with celery_client(broker, backend) as app:
                assert app.send_task("tests.add", args=(5, 5)).get(timeout=20) == 10
            wait_for(lambda: restarted.metric("flower_events_total", task="tests.add", type="task-succeeded",
                                              worker=worker.hostname) == events_before + 1, 10,
                     message="the counter continuing from the restored value")
        finally:
            restarted.stop()
    finally:
        worker.stop()


def drop_waiting_tasks(broker: str) -> None:
    """Tasks sent with no worker to run them would be run by the next test's worker on this database."""
    client = redis.Redis.from_url(broker)
    try:
        client.delete("celery")
    finally:
        client.close()


def test_memory_only_mode_keeps_nothing(redis_server: Any, tmp_path: Path) -> None:
    broker = redis_server.url.replace("/0", "/7")
    monitor = new_monitor(broker, tmp_path, "--persistent=False").start()
    with celery_client(broker, redis_server.url) as app:
        sent = app.send_task("tests.add", args=(1, 1))
    wait_for(lambda: monitor.get(f"/api/task/info/{sent.id}").status_code == 200, 10, message="task seen")
    monitor.stop()
    assert not (tmp_path / "monitor.db").exists()
    again = new_monitor(broker, tmp_path, "--persistent=False").start()
    try:
        assert again.get(f"/api/task/info/{sent.id}").status_code == 404
    finally:
        again.stop()
        drop_waiting_tasks(broker)


def test_max_tasks_trims_the_history(redis_server: Any, tmp_path: Path) -> None:
    broker = redis_server.url.replace("/0", "/8")
    monitor = new_monitor(broker, tmp_path, "--max_tasks=5").start()
    try:
        with celery_client(broker, redis_server.url) as app:
            sent = [app.send_task("tests.add", args=(i, i)) for i in range(12)]
        wait_for(lambda: monitor.json("/api/monitor/status")["receiver"]["events_received"] >= 12, 10,
                 message="all sent events")
        kept = wait_for(lambda: (t := monitor.json("/api/tasks")) and len(t) == 5 and t, 10,
                        message="history trimmed to 5")
        assert set(kept) == {s.id for s in sent[-5:]}
        assert monitor.get(f"/api/task/info/{sent[0].id}").status_code == 404 or \
            monitor.json(f"/api/task/info/{sent[0].id}")  # may linger in the recent-task cache
        assert monitor.metric("celery_monitor_store_tasks") == 5
    finally:
        monitor.stop()
        drop_waiting_tasks(broker)


def test_max_task_age_trims_the_history(redis_server: Any, tmp_path: Path, history_db: str) -> None:
    broker = redis_server.url.replace("/0", "/9")
    monitor = new_monitor(broker, tmp_path, f"--db={history_db}", "--max_task_age=3s").start()
    try:
        with celery_client(broker, redis_server.url) as app:
            old = [app.send_task("tests.add", args=(i, i)) for i in range(4)]
        listed = wait_for(lambda: (t := monitor.json("/api/tasks")) and len(t) == 4 and t, 10,
                          message="the first tasks seen")
        state = next(iter(listed.values()))["state"]
        assert monitor.metric("celery_monitor_tasks", state=state) == 4
        # Three seconds after they were sent, the next trimming pass (every 2 s) deletes them all.
        wait_for(lambda: monitor.json("/api/tasks") == {}, 15, message="the old tasks trimmed by age")
        assert monitor.metric("celery_monitor_store_tasks") == 0
        assert monitor.metric("celery_monitor_tasks", state=state) == 0  # counted out of the live view
        with celery_client(broker, redis_server.url) as app:
            young = [app.send_task("tests.add", args=(i, i)) for i in range(3)]
        kept = wait_for(lambda: (t := monitor.json("/api/tasks")) and len(t) == 3 and t, 10,
                        message="the young tasks seen")
        assert set(kept) == {s.id for s in young} and not set(kept) & {s.id for s in old}
        assert monitor.metric("celery_monitor_tasks", state=state) == 3
    finally:
        monitor.stop()
        drop_waiting_tasks(broker)
