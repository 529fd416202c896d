"""A task id is whatever the application chose: every route that takes one finds the task by it,
line breaks, slashes and percent signs included (Celery accepts any string as a task id)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from support.envelopes import kombu_envelope
from support.hostile_events import good_task_events
from support.processes import new_monitor, wait_for

DB = 6


def test_every_task_route_reaches_a_task_whatever_its_id(redis_server: Any, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    ids = [f"{run} line\nbreak", f"{run}/with/slashes", f"{run} 100%25 \t tab", f"{run}\r\n"]
    monitor = new_monitor(redis_server.url.replace("/0", f"/{DB}"), tmp_path, "--enable_events=False").start()
    try:
        events = [event for task_id in ids for event in good_task_events(task_id)]
        redis.Redis(port=redis_server.port, db=DB).publish(
            f"/{DB}.celeryev/task.multi", kombu_envelope(json.dumps(events).encode()))
        wait_for(lambda: len(monitor.json(f"/api/tasks?search={run}")) == len(ids), 10, message="the tasks listed")
        for task_id in ids:
            quoted = quote(task_id, safe="")
            info = monitor.get(f"/api/task/info/{quoted}")
            assert info.status_code == 200, (task_id, info.text)
            assert info.json()["uuid"] == task_id
            assert monitor.json(f"/ui/task/{quoted}.json")["task"]["uuid"] == task_id
            assert monitor.get(f"/task/{quoted}").status_code == 200
            # No result backend: the route is reached and says so, rather than not matching.
            result = monitor.get(f"/api/task/result/{quoted}")
            assert result.status_code == 503, result.text
            assert "backend" in result.json()["error"]
        assert monitor.get("/api/task/info/").status_code == 404  # an empty id names no task
    finally:
        monitor.stop()
