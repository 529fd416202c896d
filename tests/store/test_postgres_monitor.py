"""The monitor on PostgreSQL: --db=postgresql://... with a real worker on Redis; the history
survives a kill -9 and a restart, the password shows nowhere, and a database it cannot reach stops it in one line."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from support.client import celery_client
from support.harness import Harness
from support.postgres import execute, fresh_database
from support.processes import BIN, new_monitor, start_worker, wait_for

from celery_monitor.store import pg_schema

PASSWORD = "s3cret-Pw"  # trust auth lets any password in: it only has to be kept out of sight


def test_history_in_postgresql_survives_restarts(redis_server: Any, tmp_path: Path) -> None:
    broker = redis_server.url.replace("/0", "/9")
    backend = redis_server.url.replace("/0", "/10")
    with fresh_database(password=PASSWORD) as dsn:
        monitor = new_monitor(broker, tmp_path, f"--db={dsn}").start()
        worker = start_worker(broker, "pg", tmp_path, backend=backend)
        try:
            with celery_client(broker, backend) as app:
                results = [app.send_task("tests.add", args=(i, i)) for i in range(10)]
                failed = app.send_task("tests.fail", args=("kept",))
                assert [r.get(timeout=20) for r in results] == [2 * i for i in range(10)]
            wait_for(lambda: monitor.json(f"/api/task/info/{failed.id}")["state"] == "FAILURE", 15,
                     message="the failure recorded")
            wait_for(lambda: len(execute(dsn, "SELECT uuid FROM tasks WHERE state = 'SUCCESS'")) >= 10, 10,
                     message="the tasks written to PostgreSQL")
            listed = monitor.json("/api/tasks", params={"taskname": "tests.add", "limit": 50})
            assert {r.id for r in results} == set(listed)
            status = monitor.json("/api/monitor/status")["store"]
            assert status["path"] == dsn.replace(PASSWORD, "****") and status["tasks"] == 11
            time.sleep(1.2)  # the stated bound: what was applied a second ago survives a kill -9
            monitor.kill9()

            restarted = new_monitor(broker, tmp_path, f"--db={dsn}").start()
            try:
                tasks = restarted.json("/api/tasks", params={"state": "SUCCESS"})
                assert {r.id for r in results} <= set(tasks)
                assert restarted.json(f"/api/task/info/{failed.id}")["exception"] == "ValueError('kept')"
                assert restarted.json("/api/tasks", params={"search": "kwargs:x=1 OR args:kept"}).keys() == \
                    {failed.id}
                assert "tests.fail" in restarted.json("/api/task/types")["task-types"]
                assert worker.hostname in restarted.json("/api/workers")
                with celery_client(broker, backend) as app:
                    again = app.send_task("tests.add", args=(5, 5))
                    assert again.get(timeout=20) == 10
                wait_for(lambda: restarted.get(f"/api/task/info/{again.id}").status_code == 200, 10,
                         message="a task after the restart")
                page = restarted.json("/api/tasks", params={"limit": 1, "offset": 11, "sort_by": "received"})
                assert len(page) == 1
            finally:
                restarted.stop()
        finally:
            worker.stop()
            monitor.stop()
    assert PASSWORD not in (tmp_path / "monitor.log").read_text()


def test_a_database_out_of_reach_ends_in_one_line(tmp_path: Path) -> None:
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:9/history"
    finished = subprocess.run([str(BIN / "celery-monitor"), f"--db={dsn}", "--unauthenticated_api"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("celery-monitor: error: --db: cannot connect to "), lines
    assert "postgres:****@127.0.0.1:9" in lines[0] and PASSWORD not in finished.stderr + finished.stdout


def test_db_upgrade_applies_the_migrations_once(tmp_path: Path) -> None:
    with fresh_database(password=PASSWORD) as dsn:
        def upgrade(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(BIN / "celery-monitor"), "db", "upgrade", *args], capture_output=True,
                                  text=True, timeout=60, cwd=tmp_path, env=env)

        first = upgrade(f"--db={dsn}")
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip().endswith(f"schema upgraded from version 0 to {pg_schema.LATEST}")
        second = upgrade(env={**os.environ, "FLOWER_DB": dsn})
        assert second.returncode == 0
        assert second.stdout.strip().endswith(f"schema already at version {pg_schema.LATEST}")
        assert PASSWORD not in first.stdout + second.stdout
        versions = [row[0] for row in execute(dsn, "SELECT version FROM schema_version ORDER BY version")]
        assert versions == [m.version for m in pg_schema.MIGRATIONS]
        refused = upgrade(f"--db={tmp_path / 'history.db'}")
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


def test_a_dropped_connection_is_a_storage_fault_then_reopened(tmp_path: Path) -> None:
    """The database restarts, fails over or ends idle connections: writes are kept and retried
    (the reason shown without the password), reads reopen their connection, nothing is lost."""
    with fresh_database(password=PASSWORD) as dsn:
        harness = Harness(tmp_path, db=dsn)
        try:
            first = harness.run_task("tests.add", "w1")
            harness.flush()
            assert harness.get("/api/tasks").json().keys() == {first}
            database = dsn.rsplit("/", 1)[1]
            execute(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))

            second = harness.run_task("tests.add", "w1")
            writer = harness.monitor.writer
            assert writer.flush() is False and not writer.persisting and writer.pending_count == 1
            assert "****" in (writer.last_error or "") and PASSWORD not in (writer.last_error or "")
            status = harness.get("/api/monitor/status").json()["store"]  # its reads reopen their connection
            assert status["persisting"] is False and PASSWORD not in str(status)
            assert harness.get(f"/api/task/info/{second}").json()["state"] == "SUCCESS"

            assert writer.flush() is True and writer.persisting and writer.pending_count == 0
            assert harness.get("/api/tasks").json().keys() == {first, second}
            assert harness.monitor.store.get_task(second) is not None
        finally:
            harness.close()


def test_with_standby_off_a_second_monitor_on_the_same_database_is_refused_in_one_line(tmp_path: Path) -> None:
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    with fresh_database(password=PASSWORD) as dsn:
        first = Harness(tmp_path / "first", db=dsn)
        try:
            finished = subprocess.run([str(BIN / "celery-monitor"), f"--db={dsn}", "--unauthenticated_api",
                                       "--standby=False"],
                                      capture_output=True, text=True, timeout=60, cwd=tmp_path)
            assert finished.returncode == 2
            lines = finished.stderr.strip().splitlines()
            assert len(lines) == 1 and "another monitor keeps its history in this database" in lines[0], lines
            assert PASSWORD not in finished.stderr + finished.stdout
            assert first.get("/healthcheck").status_code == 200  # the first one is not disturbed
        finally:
            first.close()
        # Once the first has let go, the database is free for the next.
        second = Harness(tmp_path / "second", db=dsn)
        second.close()
