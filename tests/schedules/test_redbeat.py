"""RedBeat: entries written by RedBeat itself are listed, toggled (a real RedBeat beat obeys) and run now."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from celery import Celery
from celery.schedules import crontab, schedule
from redbeat import RedBeatSchedulerEntry
from support.beat import Beat, start_beat
from support.processes import (
    TESTS_DIR,
    MonitorProcess,
    RedisServer,
    Worker,
    free_port,
    new_monitor,
    start_worker,
    wait_for,
)

from celery_monitor.schedules.catalog import ScheduleConfig, Schedules

pytestmark = pytest.mark.redis

ADMIN, VIEWER = ("admin", "s3cret"), ("viewer", "l00k")


@dataclass
class RedBeatCluster:
    redis: RedisServer
    app: Celery
    worker: Worker
    monitor: MonitorProcess
    beat: Beat


def redbeat_app(url: str) -> Celery:
    app = Celery("redbeat-writer", broker=url, set_as_current=False)
    app.conf.redbeat_redis_url = url
    return app


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedBeatCluster]:
    tmp = tmp_path_factory.mktemp("redbeat")
    redis = RedisServer(free_port(), tmp).start()
    app = redbeat_app(redis.url)
    RedBeatSchedulerEntry("rb-tick", "tests.echo", schedule(timedelta(seconds=1)), args=["a"],
                          kwargs={"password": "hunter2", "n": 1}, app=app).save()
    RedBeatSchedulerEntry("rb-morning", "tests.add", crontab(minute="0", hour="7"), args=[1, 2], app=app).save()
    worker = start_worker(redis.url, "rb-w", tmp)
    users = f"--basic_auth={ADMIN[0]}:{ADMIN[1]},{VIEWER[0]}:{VIEWER[1]}"
    monitor = new_monitor(redis.url, tmp, f"--redbeat_url={redis.url}", "--redact=kwargs.password",
                          f"--read_only_users={VIEWER[0]}", users, auth=ADMIN).start()
    beat = start_beat(redis.url, tmp, "-S", "redbeat.RedBeatScheduler",
                      env={"TEST_REDBEAT_URL": redis.url, "PYTHONPATH": str(TESTS_DIR)})
    yield RedBeatCluster(redis, app, worker, monitor, beat)
    beat.stop()
    worker.stop()
    monitor.stop()
    redis.stop()


def entries(monitor: MonitorProcess) -> dict[str, dict]:
    return {entry["name"]: entry for entry in monitor.json("/api/schedules")["entries"]}


def echo_runs(monitor: MonitorProcess) -> int:
    return len(monitor.json("/api/tasks", params={"taskname": "tests.echo", "limit": 1000}))


def runs_once_settled(monitor: MonitorProcess) -> int:
    """The number of rb-tick runs once two reads 1.5 s apart agree (what was in flight has arrived)."""
    def settled() -> int | None:
        before = echo_runs(monitor)
        time.sleep(1.5)
        after = echo_runs(monitor)
        return after if after == before else None

    return wait_for(settled, 15, interval=0, message="rb-tick's runs to stop")


def test_redbeat_entries_are_listed_with_schedule_arguments_redacted_and_runs(cluster: RedBeatCluster) -> None:
    monitor = cluster.monitor
    listed = wait_for(lambda: (e := entries(monitor)).get("rb-tick", {}).get("last_run") and e, 30,
                      message="a RedBeat run seen by the monitor")
    tick, morning = listed["rb-tick"], listed["rb-morning"]
    assert tick["source"] == "redbeat" and tick["toggleable"] is True and tick["enabled"] is True
    assert tick["schedule"]["words"] == "every second"
    assert tick["kwargs"] == {"password": "[redacted]", "n": 1}, "entry arguments go through --redact"
    assert "hunter2" not in monitor.get("/api/schedules").text
    assert tick["scheduler_last_run"] is not None and tick["last_run"]["state"] in ("SUCCESS", "STARTED", "RECEIVED")
    assert morning["schedule"] == {"kind": "crontab", "words": "at 07:00", "cron": "0 7 * * *"}
    assert morning["args"] == [1, 2] and morning["last_run"] is None and morning["next_run"] is not None


def test_disable_and_enable_are_written_where_redbeat_reads_them_and_beat_obeys(cluster: RedBeatCluster) -> None:
    monitor, app = cluster.monitor, cluster.app
    wait_for(lambda: echo_runs(monitor) >= 1, 30, message="beat running rb-tick")
    answer = monitor.client.post("/api/schedule/disable/redbeat:rb-tick")
    assert answer.status_code == 200, answer.text
    assert RedBeatSchedulerEntry.from_key("redbeat:rb-tick", app=app).enabled is False
    assert entries(monitor)["rb-tick"]["enabled"] is False
    # A run beat sent just before may still arrive; after that, none while disabled (beat ticks every second).
    settled = runs_once_settled(monitor)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert echo_runs(monitor) == settled, "a disabled RedBeat entry still ran"
        time.sleep(0.5)
    answer = monitor.client.post("/api/schedule/enable/redbeat:rb-tick")
    assert answer.status_code == 200, answer.text
    assert RedBeatSchedulerEntry.from_key("redbeat:rb-tick", app=app).enabled is True
    wait_for(lambda: echo_runs(monitor) > settled, 20, message="runs to resume once enabled")
    audit = monitor.json("/api/audit", params={"target": "redbeat:rb-tick"})["entries"]
    assert [entry["action"] for entry in audit[:2]] == ["schedule.enable", "schedule.disable"]
    assert all(entry["user"] == ADMIN[0] and entry["ok"] for entry in audit[:2])


def test_run_now_sends_the_entry_with_its_arguments(cluster: RedBeatCluster) -> None:
    monitor = cluster.monitor
    answer = monitor.client.post("/api/schedule/run/redbeat:rb-morning")
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["task-id"]
    task = wait_for(lambda: (t := monitor.json(f"/api/task/info/{task_id}"))["state"] == "SUCCESS" and t, 20,
                    message="the run-now task to succeed")
    assert task["name"] == "tests.add" and task["result"] == "3"
    shown = wait_for(lambda: (e := entries(monitor)["rb-morning"])["last_run"] and e, 10,
                     message="the run shown as the entry's last run")
    assert shown["last_run"]["uuid"] == task_id


def test_read_only_users_may_look_but_not_toggle_or_run(cluster: RedBeatCluster) -> None:
    with httpx.Client(base_url=cluster.monitor.url, auth=VIEWER, timeout=10) as viewer:
        assert viewer.get("/api/schedules").status_code == 200
        for action in ("disable", "enable", "run"):
            refused = viewer.post(f"/api/schedule/{action}/redbeat:rb-tick")
            assert refused.status_code == 403, refused.text
    assert RedBeatSchedulerEntry.from_key("redbeat:rb-tick", app=cluster.app).enabled is True


def test_unknown_entries_and_bad_names_are_answered_in_json(cluster: RedBeatCluster) -> None:
    client = cluster.monitor.client
    missing = client.post("/api/schedule/disable/redbeat:nothing")
    assert missing.status_code == 404 and "nothing" in missing.json()["error"]
    unconfigured = client.post("/api/schedule/disable/django:x")
    assert unconfigured.status_code == 404 and "django" in unconfigured.json()["error"]
    bad = client.post("/api/schedule/run/what")
    assert bad.status_code == 400 and "error" in bad.json()


def test_the_apps_redbeat_conf_is_used_and_its_static_entries_are_shown_once_as_redbeats(
        cluster: RedBeatCluster, tmp_path: Path) -> None:
    """With ``-A``, RedBeat's Redis comes from the app's redbeat_redis_url; an app entry RedBeat also
    stores is shown once, as RedBeat's; an unreachable django-celery-beat database is a source error."""
    app = redbeat_app(cluster.redis.url)
    app.conf.beat_schedule = {"rb-tick": {"task": "tests.echo", "schedule": 1.0},
                              "app-only": {"task": "tests.add", "schedule": 60.0, "args": (1, 1)}}
    schedules = Schedules(app, ScheduleConfig(beat_db=str(tmp_path / "missing" / "beat.db")), lambda query: [],
                          None, time.time())
    schedules.refresh()
    listing = schedules.listing()
    by_name = {entry["name"]: entry for entry in listing["entries"]}
    assert by_name["rb-tick"]["source"] == "redbeat" and by_name["app-only"]["source"] == "app"
    assert [entry["name"] for entry in listing["entries"]].count("rb-tick") == 1
    assert by_name["app-only"]["schedule"]["words"] == "every minute" and by_name["app-only"]["args"] == [1, 1]
    assert "cannot be read" in listing["sources"]["django"]["error"]
    assert listing["sources"]["redbeat"] == {"configured": True}
