"""A real worker and a real ``celery beat`` on a private Redis: the app's beat_schedule is listed with
its runs, and a stopped beat is flagged as missed within its interval plus the tolerance, and notified
(a signed webhook to a local receiver), then resolved when a run arrives again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.beat import start_beat
from support.notify_receivers import HttpReceiver
from support.processes import TESTS_DIR, RedisServer, free_port, new_monitor, start_worker, wait_for

from celery_monitor.notify import signing

pytestmark = pytest.mark.redis

EVERY = 2.0
TOLERANCE = 1.5
SCHEDULE = {"heartbeat": {"task": "tests.add", "every": EVERY, "args": [2, 3]}}
# What "within its interval plus tolerance" may add: the monitor judges once a second, and the last run's
# events take a moment to arrive.
JUDGING_SLACK = 2.5


def test_beat_entries_are_listed_with_their_runs_and_a_stopped_beat_is_missed(tmp_path: Path) -> None:
    redis = RedisServer(free_port(), tmp_path).start()
    receiver = HttpReceiver().start()
    notifications = {"channels": {"hook": {"kind": "webhook", "url": f"{receiver.url}/hook", "secret": "k3y"}},
                     "rules": {"beat": {"kind": "schedule_missed", "channels": ["hook"], "window": 0}}}
    env = {"TEST_BEAT_SCHEDULE": json.dumps(SCHEDULE), "PYTHONPATH": str(TESTS_DIR)}
    worker = start_worker(redis.url, "beat-w", tmp_path)
    monitor = new_monitor(redis.url, tmp_path, "--app=support.periodic", f"--schedule_tolerance={TOLERANCE}",
                          env={**env, "CELERY_MONITOR_NOTIFICATIONS": json.dumps(notifications)}).start()

    def notified(status: str) -> list[dict]:
        found = []
        for request in receiver.at("/hook"):
            headers = {k.lower(): v for k, v in request.headers.items()}
            assert signing.verify("k3y", headers[signing.TIMESTAMP_HEADER.lower()],
                                  headers[signing.SIGNATURE_HEADER.lower()], request.body, time.time())
            message = request.json()
            if message["status"] == status:
                found.append(message)
        return found
    beat = start_beat(redis.url, tmp_path, env=env)
    try:
        def heartbeat() -> dict:
            entries = {entry["name"]: entry for entry in monitor.json("/api/schedules")["entries"]}
            return entries["heartbeat"]

        first = heartbeat()
        assert first["source"] == "app" and first["task"] == "tests.add"
        assert first["schedule"] == {"kind": "interval", "words": "every 2 seconds", "cron": None}
        assert first["args"] == [2, 3] and first["enabled"] is True and first["toggleable"] is False

        # Runs arrive: the last one is linked to a real task of the entry's name, which succeeded.
        ran = wait_for(lambda: (e := heartbeat())["last_run"] and e["last_run"]["state"] == "SUCCESS" and e,
                       30, message="a beat run seen by the monitor")
        task = monitor.json(f"/api/task/info/{ran['last_run']['uuid']}")
        assert task["name"] == "tests.add" and task["args"] == "[2, 3]"
        assert ran["next_run"] is not None and ran["next_run"] > ran["last_run"]["time"]

        # While beat runs, nothing is missed (over several intervals).
        watched_until = time.monotonic() + 3 * EVERY
        while time.monotonic() < watched_until:
            assert heartbeat()["missed"] is False, "a running beat was flagged as missed"
            time.sleep(0.2)
        assert monitor.metric("celery_monitor_schedule_missed_total", entry="heartbeat") == 0
        assert receiver.at("/hook") == []

        beat.stop()
        flagged = wait_for(lambda: (e := heartbeat())["missed"] and e, EVERY + TOLERANCE + JUDGING_SLACK + 5,
                           message="the stopped beat flagged as missed")
        flagged_at = time.time()
        # Flagged no later than the last run + interval + tolerance (+ the judging's own delay), and not before.
        last_run_at = flagged["last_run"]["time"]
        assert last_run_at + EVERY + TOLERANCE <= flagged_at <= last_run_at + EVERY + TOLERANCE + JUDGING_SLACK
        assert flagged["missed_runs"] >= 1
        wait_for(lambda: monitor.metric("celery_monitor_schedule_missed_total", cluster="default",
                                        entry="heartbeat") >= 1, 5, message="the missed run counted")
        # Each due time that passes without a run counts once more.
        counted = monitor.metric("celery_monitor_schedule_missed_total", entry="heartbeat")
        wait_for(lambda: monitor.metric("celery_monitor_schedule_missed_total", entry="heartbeat") > counted,
                 EVERY + 3, message="a further missed run counted")

        # The missed run is notified once, however long it lasts.
        [firing] = wait_for(lambda: notified("firing"), 10, message="the missed run notified")
        assert (firing["kind"], firing["subject"]) == ("schedule_missed", "heartbeat")

        # Run now sends the entry's task with its arguments: a new run arrives, and the audit trail says so.
        answer = monitor.client.post("/api/schedule/run/app:heartbeat")
        assert answer.status_code == 200, answer.text
        task_id = answer.json()["task-id"]
        done = wait_for(lambda: (t := monitor.json(f"/api/task/info/{task_id}"))["state"] == "SUCCESS" and t, 20,
                        message="the run-now task to succeed")
        assert done["name"] == "tests.add" and done["result"] == "5"
        # A run arrived: the condition clears, and its resolve message follows.
        [resolved] = wait_for(lambda: notified("resolved"), 10, message="the missed run resolved")
        assert resolved["dedup_key"] == firing["dedup_key"]
        audit = monitor.json("/api/audit", params={"action": "schedule.run"})["entries"]
        assert audit[0]["target"] == "app:heartbeat" and audit[0]["ok"] is True
        # The app's own entries can only be changed in its code.
        refused = monitor.client.post("/api/schedule/disable/app:heartbeat")
        assert refused.status_code == 409 and "beat_schedule" in refused.json()["error"]
        assert monitor.client.post("/api/schedule/run/app:nothing").status_code == 404
        assert monitor.client.post("/api/schedule/run/nothing").status_code == 400
    finally:
        beat.stop()
        worker.stop()
        monitor.stop()
        receiver.stop()
        redis.stop()
