"""``celery-monitor db copy``: a SQLite history filled by a real worker moves to PostgreSQL whole, and
a monitor on the copy answers as one on the original; a copy that would merge or lose is refused in one line."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.client import celery_client
from support.postgres import execute, fresh_database
from support.processes import BIN, new_monitor, start_worker, wait_for
from test_failure_groups_store import failed, succeeded

from celery_monitor.store.base import StoreError
from celery_monitor.store.copy import copy_history
from celery_monitor.store.meta_keys import timeline_key
from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.sqlite import SQLiteStore

PASSWORD = "c0py-Pw"


def db_copy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "celery-monitor"), "db", "copy", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def answers(monitor: Any, task_ids: list[str]) -> dict[str, Any]:
    """What the pages and scripts ask of a history: lists, filters, search, deep pages, tasks, audit."""
    queries: list[dict[str, Any]] = [
        {}, {"state": "FAILURE"}, {"taskname": "tests.add", "sort_by": "-received", "limit": 3, "offset": 2},
        {"search": "args:kept"}, {"sort_by": "runtime"},
    ]
    audit = monitor.json("/api/audit")
    for entry in audit["entries"]:
        entry.pop("id")
    return {
        "lists": [monitor.json("/api/tasks", params=query) for query in queries],
        "tasks": [monitor.json(f"/api/task/info/{task_id}") for task_id in task_ids],
        "types": monitor.json("/api/task/types"),
        "workers": sorted(monitor.json("/api/workers")),
        "audit": audit["entries"],
        "events": monitor.metric("flower_events_total", task="tests.add", type="task-succeeded"),
    }


def test_a_sqlite_history_is_copied_to_postgresql_and_answers_the_same(redis_server: Any, tmp_path: Path) -> None:
    broker = redis_server.url.replace("/0", "/11")
    backend = redis_server.url.replace("/0", "/12")
    monitor = new_monitor(broker, tmp_path).start()
    worker = start_worker(broker, "copy", tmp_path, backend=backend)
    try:
        with celery_client(broker, backend) as app:
            results = [app.send_task("tests.add", args=(i, i)) for i in range(8)]
            failed = app.send_task("tests.fail", args=("kept",))
            assert [r.get(timeout=20) for r in results] == [2 * i for i in range(8)]
        task_ids = [r.id for r in results] + [failed.id]
        wait_for(lambda: monitor.json(f"/api/task/info/{failed.id}")["state"] == "FAILURE", 15,
                 message="the failure recorded")
        assert monitor.client.post(f"/api/task/revoke/{results[0].id}").status_code == 200  # an audit entry
        wait_for(lambda: monitor.json("/api/audit")["total"] == 1, 10, message="the revoke audited")
    finally:
        worker.stop()
        monitor.stop()

    original = new_monitor(broker, tmp_path).start()
    try:
        expected = answers(original, task_ids)
    finally:
        original.stop()
    assert expected["events"] == 8 and len(expected["audit"]) == 1

    with fresh_database(password=PASSWORD) as dsn:
        copied = db_copy(f"--from={tmp_path / 'monitor.db'}", "--to", dsn, cwd=tmp_path)
        assert copied.returncode == 0, copied.stderr
        assert copied.stdout.splitlines() == [
            f"copied 9 tasks, 1 failure, 1 worker and 1 audit entry from {tmp_path / 'monitor.db'} to "
            f"{dsn.replace(PASSWORD, '****')}"]
        assert PASSWORD not in copied.stdout + copied.stderr
        assert len(execute(dsn, "SELECT uuid FROM tasks")) == 9

        on_postgres = new_monitor(broker, tmp_path, f"--db={dsn}").start()
        try:
            assert answers(on_postgres, task_ids) == expected
        finally:
            on_postgres.stop()

        again = db_copy(f"--from={tmp_path / 'monitor.db'}", f"--to={dsn}", cwd=tmp_path)
        assert again.returncode == 2
        assert again.stderr.splitlines() == [
            "celery-monitor: error: the target already holds a history (tasks, failures or audit entries): "
            "copy into an empty one"]

        back = tmp_path / "back.db"
        returned = db_copy(f"--from={dsn}", f"--to={back}", cwd=tmp_path)
        assert returned.returncode == 0, returned.stderr
        assert returned.stdout.startswith("copied 9 tasks, 1 failure, 1 worker and 1 audit entry from postgresql://")
        assert PASSWORD not in returned.stdout + returned.stderr


def test_copy_command_lines_that_say_nothing_clear_end_in_one_line(tmp_path: Path) -> None:
    history = tmp_path / "monitor.db"
    cases = [
        ((), "db copy needs --from and --to"),
        ((f"--from={history}",), "db copy needs --to"),
        (("--from",), "--from needs a value"),
        (("--into=x", "--from=a"), "db copy takes --from and --to, not '--into'"),
        ((f"--from={tmp_path / 'missing.db'}", f"--to={history}"),
         f"--from: {tmp_path / 'missing.db'} is not a file (a SQLite history) or a postgresql:// URL"),
        ((f"--from={history}", f"--to={history}"), "--from and --to name the same history"),
    ]
    for args, message in cases:
        finished = db_copy(*args, cwd=tmp_path)
        assert finished.returncode == 2, (args, finished)
        assert finished.stderr.splitlines() == [f"celery-monitor: error: {message}"], args
    assert not (tmp_path / "missing.db").exists()


def test_failures_kept_beyond_their_tasks_and_the_graphs_are_copied(tmp_path: Path) -> None:
    """--max_failed_tasks keeps failures whose tasks --max_tasks trimmed: the copy has them, in an
    order that trims the same ones first, and the graphs' last hour."""
    now = time.time()
    source = SQLiteStore(str(tmp_path / "h.db"))
    try:
        source.write([failed(i, "tests.fail_as", "KeyError", now - 100 + i) for i in range(6)], [],
                     {timeline_key(7): {"minute": 7, "points": [{"time": 420.0, "online": 2}]}})
        source.write([succeeded(i, now) for i in range(4)], [], {})
        source.trim(4)  # the six failed tasks leave the tasks; their failures stay
        assert source.task_count() == 4 and source.failure_total() == 6
        with fresh_database() as dsn:
            target = PostgresStore(dsn)
            try:
                report = copy_history(source, target)
                assert (report.tasks, report.failures) == (4, 6)
                assert [task["uuid"] for _, task in target.failures_after(0, 100)] == [f"fail-{i}" for i in range(6)]
                assert target.failure_count("tests.fail_as", "KeyError") == 6
                assert target.get_task("fail-3") == source.get_task("fail-3")
                assert target.load_meta(timeline_key(7)) == {"minute": 7, "points": [{"time": 420.0, "online": 2}]}
                target.trim_failures(2)  # the oldest go first, as on the source
                assert [task["uuid"] for _, task in target.failures_after(0, 100)] == ["fail-4", "fail-5"]
                # A target holding anything (failures included) is refused.
                with pytest.raises(StoreError, match="already holds a history"):
                    copy_history(source, target)
            finally:
                target.close()
    finally:
        source.close()
