"""``/livez`` turns 503 when ingestion has really stopped, and only then; ``/readyz`` follows the
monitor's lifecycle; Flower's ``/healthcheck`` keeps answering ``OK`` throughout.

The monitor runs in the test process on a real broker; a stuck or dead loop is made by injecting a
call that blocks, or a thread-ending exception, into the real objects.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from feed import RedisFeed
from inprocess import Running
from support.processes import RedisServer, free_port, new_monitor, wait_for

from celery_monitor import liveness


def assert_still_serving(running: Running) -> None:
    healthcheck = running.get("/healthcheck")
    assert (healthcheck.status_code, healthcheck.text) == (200, "OK")
    assert running.get("/readyz").status_code == 200
    assert running.get("/api/tasks").status_code == 200


def test_ready_once_started_and_no_longer_once_stopping(redis_server: RedisServer, tmp_path: Path) -> None:
    running = Running(tmp_path, redis_server.url.replace("/0", "/12"))
    try:
        before = running.get("/readyz")
        assert before.status_code == 503 and before.json()["ready"] is False and before.json()["error"]
        running.start()
        assert running.get("/readyz").json() == {"ready": True, "warnings": []}
        assert running.live().json() == {"live": True, "problems": [], "warnings": []}
        assert running.values("celery_monitor_live") == {(): 1.0}
    finally:
        running.close()
    assert running.get("/readyz").status_code == 503
    assert running.get("/healthcheck").text == "OK"


def test_a_stuck_applier_fails_liveness_until_it_moves_again(redis_server: RedisServer, tmp_path: Path) -> None:
    running = Running(tmp_path, redis_server.url.replace("/0", "/12"))
    applier = running.monitor.applier
    applier.loop.stall_after = 0.5
    unblock = threading.Event()
    step = applier.step

    def stuck_step() -> None:  # a call that does not return, as a wedged lock or socket would
        unblock.wait(30)
        step()

    applier.step = stuck_step  # type: ignore[method-assign]
    running.start()
    try:
        refused = wait_for(lambda: (r := running.live()).status_code == 503 and r, 10, message="/livez 503")
        body = refused.json()
        assert body["live"] is False and body["error"].startswith("ingestion has stopped: ")
        assert any(problem.startswith("the event applier has made no progress for") for problem in body["problems"])
        assert running.values("celery_monitor_live") == {(): 0.0}
        assert_still_serving(running)

        unblock.set()
        wait_for(lambda: running.live().status_code == 200, 10, message="/livez 200 once the applier moves")
        assert running.values("celery_monitor_live") == {(): 1.0}
    finally:
        unblock.set()
        running.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread ends, as meant
def test_a_dead_event_reader_fails_liveness(redis_server: RedisServer, tmp_path: Path) -> None:
    running = Running(tmp_path, redis_server.url.replace("/0", "/12"))

    def thread_ending(*args: Any) -> None:
        raise SystemExit("the reader's thread ends")  # not an Exception: nothing in the loop catches it

    running.monitor.reader.read_until_disconnected = thread_ending  # type: ignore[method-assign]
    running.start()
    try:
        refused = wait_for(lambda: (r := running.live()).status_code == 503 and r, 10, message="/livez 503")
        assert "the event reader has stopped: SystemExit: the reader's thread ends" in refused.json()["problems"]
        status = running.get("/api/monitor/status").json()
        assert status["background"]["reader"]["running"] is False
        assert status["health"]["live"] is False
        assert_still_serving(running)
    finally:
        running.close()


def test_a_broker_away_longer_than_the_grace_fails_liveness_until_it_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "BROKER_GRACE", 3.0)
    port = free_port()
    running = Running(tmp_path, f"redis://127.0.0.1:{port}/0").start()
    server = RedisServer(port, tmp_path)
    try:
        degraded = running.live()
        assert degraded.status_code == 200
        refused = wait_for(lambda: (r := running.live()).status_code == 503 and r, 10, message="/livez 503")
        (problem,) = refused.json()["problems"]
        assert problem.startswith("no event stream from the broker for ")
        assert f"cannot reach the broker at 127.0.0.1:{port}" in problem
        assert_still_serving(running)

        server.start()
        wait_for(lambda: running.live().status_code == 200, 15, message="/livez 200 with the broker back")
        feed = RedisFeed(port)
        wait_for(feed.listening, 10, message="the monitor subscribed")
        (task_id,) = feed.send(1)
        wait_for(lambda: running.get(f"/api/task/info/{task_id}").status_code == 200, 10, message="events again")
    finally:
        running.close()
        server.stop()


def test_the_probes_need_no_login_and_are_described(redis_server: RedisServer, tmp_path: Path) -> None:
    """As installed: behind --basic_auth and a --url_prefix, the probes answer anyone; the API does not."""
    monitor = new_monitor(redis_server.url.replace("/0", "/12"), tmp_path, "--url_prefix=ops",
                          auth=("ops", "a-long-password"), prefix="/ops").start()
    try:
        anonymous = httpx.Client(base_url=monitor.url, timeout=10)
        assert anonymous.get("/livez").json() == {"live": True, "problems": [], "warnings": []}
        assert anonymous.get("/readyz").json() == {"ready": True, "warnings": []}
        assert anonymous.get("/healthcheck").text == "OK"
        assert anonymous.get("/api/monitor/status").status_code == 401
        paths = monitor.json("/api/openapi.json")["paths"]
        assert set(paths["/livez"]["get"]["responses"]) == {"200", "503"}
        assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
        assert paths["/livez"]["get"]["security"] == [{}]  # no credentials needed
    finally:
        monitor.stop()
