"""Redaction is the service's: a monitor built without any web app still keeps only redacted data."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from celery_monitor.celery_app import build_app
from celery_monitor.cli.config import load_settings
from celery_monitor.receiver.handoff import RawMessage
from celery_monitor.service import Monitor
from celery_monitor.store.query import TaskQuery


def test_a_monitor_without_a_web_app_writes_redacted_history(tmp_path: Path) -> None:
    conf = tmp_path / "empty-config.py"
    conf.write_text("")
    settings = load_settings(["--broker=redis://127.0.0.1:9/0", f"--db={tmp_path / 'history.db'}",
                              "--redact=args.1,kwargs.password,result.token", f"--conf={conf}"], environ={})
    monitor = Monitor(settings, build_app(settings))  # no create_app: nothing but the service
    try:
        now = time.time()
        events = [
            {"type": "task-received", "uuid": "t1", "name": "tests.login", "hostname": "w1", "timestamp": now,
             "clock": 1, "args": "('alice', 'hunter2')", "kwargs": "{'password': 's3cret', 'user': 'alice'}"},
            {"type": "task-succeeded", "uuid": "t1", "hostname": "w1", "timestamp": now, "clock": 2,
             "result": "{'token': 'tok-secret', 'ok': True}", "runtime": 0.1},
        ]
        monitor.applier.apply([(now, [RawMessage(orjson.dumps(events), "application/json")])])
        live = monitor.get_task("t1")
        monitor.writer.flush()
        stored = monitor.store.get_task("t1")
        listed = monitor.query_tasks(TaskQuery())
    finally:
        monitor.store.close()

    assert live is not None and stored is not None and [task["uuid"] for task in listed] == ["t1"]
    for task in (live, stored, listed[0]):
        shown = orjson.dumps(task).decode()
        assert "hunter2" not in shown and "s3cret" not in shown and "tok-secret" not in shown
        assert "alice" in task["args"] and "alice" in task["kwargs"] and "ok" in task["result"]
