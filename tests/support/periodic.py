"""The tests' Celery app (support.tasks) with a beat schedule and scheduler settings from the environment.

TEST_BEAT_SCHEDULE: JSON, entry name -> {"task", "every" (seconds), "args", "kwargs"};
TEST_REDBEAT_URL: RedBeat's Redis (redbeat_redis_url), for a beat run with ``-S redbeat.RedBeatScheduler``.
"""

from __future__ import annotations

import json
import os

from support.tasks import app

app.conf.beat_schedule = {
    name: {"task": spec["task"], "schedule": float(spec["every"]), "args": spec.get("args", []),
           "kwargs": spec.get("kwargs", {})}
    for name, spec in json.loads(os.environ.get("TEST_BEAT_SCHEDULE", "{}")).items()
}
if os.environ.get("TEST_REDBEAT_URL"):
    app.conf.redbeat_redis_url = os.environ["TEST_REDBEAT_URL"]
    app.conf.redbeat_lock_timeout = 10
app.conf.beat_max_loop_interval = 1  # so a beat notices changes and due entries within a second
