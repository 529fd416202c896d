"""django-celery-beat, on SQLite and on the machine's PostgreSQL: entries Django wrote are listed in
words, toggled where a real DatabaseScheduler beat reads them (it stops and resumes), and run now."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import django_beat
from support.beat import Beat, start_beat
from support.postgres import STORES, fresh_database
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

pytestmark = pytest.mark.redis


@dataclass
class DjangoCluster:
    db: str
    worker: Worker
    monitor: MonitorProcess
    beat: Beat


@pytest.fixture(scope="module", params=STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DjangoCluster]:
    tmp: Path = tmp_path_factory.mktemp(f"django-beat-{request.param}")
    redis = RedisServer(free_port(), tmp).start()
    with fresh_database() if request.param == "postgresql" else nullcontext(str(tmp / "beat.db")) as db:
        django_beat.run(db, "create")
        worker = start_worker(redis.url, f"dj-w-{request.param}", tmp)
        monitor = new_monitor(redis.url, tmp, f"--beat_db={db}", "--redact=kwargs.password").start()
        beat = start_beat(redis.url, tmp, "-S", "django_celery_beat.schedulers:DatabaseScheduler", env={
            "TEST_BEAT_DB": db, "DJANGO_SETTINGS_MODULE": "support.django_beat_settings",
            "PYTHONPATH": str(TESTS_DIR)})
        yield DjangoCluster(db, worker, monitor, beat)
        beat.stop()
        worker.stop()
        monitor.stop()
    redis.stop()


def entries(monitor: MonitorProcess) -> dict[str, dict]:
    return {entry["name"]: entry for entry in monitor.json("/api/schedules")["entries"]}


def echo_runs(monitor: MonitorProcess) -> int:
    return len(monitor.json("/api/tasks", params={"taskname": "tests.echo", "limit": 1000}))


def test_entries_are_listed_in_words_with_their_runs(cluster: DjangoCluster) -> None:
    # The monitor sees a run from its events; the scheduler writes last_run_at on its own sync, later.
    listed = wait_for(lambda: (e := entries(cluster.monitor)).get("dj-tick", {}).get("last_run")
                      and e["dj-tick"].get("scheduler_last_run") is not None and e, 30,
                      message="a django-celery-beat run seen by the monitor and written by the scheduler")
    tick = listed["dj-tick"]
    assert tick["source"] == "django" and tick["toggleable"] is True and tick["enabled"] is True
    assert tick["schedule"]["words"] == "every second"
    assert tick["args"] == ["b"] and tick["kwargs"] == {"password": "[redacted]", "n": 2}
    assert tick["scheduler_last_run"] is not None
    assert listed["dj-weekly"]["schedule"] == {"kind": "crontab", "words": "at 07:30 on Monday (Europe/Paris)",
                                               "cron": "30 7 * * 1"}
    assert listed["dj-weekly"]["queue"] == "celery"
    assert listed["dj-sunrise"]["schedule"] == {"kind": "solar", "words": "at sunrise (48.85, 2.35)", "cron": None}
    once = listed["dj-once"]
    assert once["schedule"]["kind"] == "clocked" and once["schedule"]["words"] == "once, at 2030-01-02 03:04:05+00:00"
    assert once["enabled"] is False and once["one_off"] is True and once["missed"] is False


def runs_once_settled(monitor: MonitorProcess) -> int:
    """The number of dj-tick runs once two reads 1.5 s apart agree (what was in flight has arrived)."""
    def settled() -> int | None:
        before = echo_runs(monitor)
        time.sleep(1.5)
        after = echo_runs(monitor)
        return after if after == before else None

    return wait_for(settled, 20, interval=0, message="dj-tick's runs to stop")


def test_disable_and_enable_reach_django_and_the_beat_obeys(cluster: DjangoCluster) -> None:
    monitor = cluster.monitor
    wait_for(lambda: echo_runs(monitor) >= 1, 30, message="beat running dj-tick")
    before = django_beat.run(cluster.db, "show", "dj-tick")
    answer = monitor.client.post("/api/schedule/disable/django:dj-tick")
    assert answer.status_code == 200, answer.text
    after = django_beat.run(cluster.db, "show", "dj-tick")
    assert after["enabled"] is False and after["last_change"] > before["last_change"]
    assert entries(monitor)["dj-tick"]["enabled"] is False
    settled = runs_once_settled(monitor)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert echo_runs(monitor) == settled, "a disabled django-celery-beat entry still ran"
        time.sleep(0.5)
    answer = monitor.client.post("/api/schedule/enable/django:dj-tick")
    assert answer.status_code == 200, answer.text
    assert django_beat.run(cluster.db, "show", "dj-tick")["enabled"] is True
    wait_for(lambda: echo_runs(monitor) > settled, 30, message="runs to resume once enabled")
    audit = monitor.json("/api/audit", params={"target": "django:dj-tick"})["entries"]
    assert [entry["action"] for entry in audit[:2]] == ["schedule.enable", "schedule.disable"]


def test_run_now_sends_the_entry_with_its_arguments_and_queue(cluster: DjangoCluster) -> None:
    monitor = cluster.monitor
    answer = monitor.client.post("/api/schedule/run/django:dj-weekly")
    assert answer.status_code == 200, answer.text
    task = wait_for(lambda: (t := monitor.json(f"/api/task/info/{answer.json()['task-id']}"))["state"] == "SUCCESS"
                    and t, 20, message="the run-now task to succeed")
    assert task["name"] == "tests.add" and task["result"] == "4"
