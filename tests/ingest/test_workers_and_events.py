"""Workers: enabling events on workers started without -E, offline detection, purge, limits; unix socket."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from support.client import celery_client
from support.envelopes import kombu_envelope
from support.processes import new_monitor, start_worker, wait_for


def publish_worker_event(client: redis.Redis, db: int, event: dict[str, Any]) -> None:
    client.publish(f"/{db}.celeryev/{event['type'].replace('-', '.')}", kombu_envelope(json.dumps(event).encode()))


def test_events_are_enabled_on_workers_started_without_them(redis_server: Any, tmp_path: Path) -> None:
    broker = redis_server.url.replace("/0", "/10")
    monitor = new_monitor(broker, tmp_path).start()
    worker = start_worker(broker, "quiet", tmp_path, events=False, backend=redis_server.url)
    try:
        # The monitor broadcasts enable_events periodically; the worker starts sending heartbeats.
        wait_for(lambda: monitor.json("/api/workers?status=1").get(worker.hostname), 40,
                 message="the worker's first events after enable_events")
        with celery_client(broker, redis_server.url) as app:
            result = app.send_task("tests.add", args=(4, 4))
            assert result.get(timeout=20) == 8
        wait_for(lambda: monitor.json(f"/api/task/info/{result.id}")["state"] == "SUCCESS", 10, message="task")
    finally:
        worker.stop()
        monitor.stop()


def test_offline_workers_are_purged_after_the_configured_time(redis_server: Any, tmp_path: Path) -> None:
    db = 11
    broker = redis_server.url.replace("/0", f"/{db}")
    monitor = new_monitor(broker, tmp_path, "--purge_offline_workers=1", "--enable_events=False").start()
    client = redis.Redis(port=redis_server.port, db=db)
    try:
        now = time.time()
        for name in ("gone@host", "alive@host"):
            publish_worker_event(client, db, {"type": "worker-online", "hostname": name, "timestamp": now,
                                              "freq": 60.0, "active": 0, "processed": 0})
        wait_for(lambda: monitor.json("/api/workers?status=1") == {"gone@host": True, "alive@host": True}, 10,
                 message="both workers online")
        assert monitor.metric("flower_worker_online", worker="gone@host") == 1
        publish_worker_event(client, db, {"type": "worker-offline", "hostname": "gone@host",
                                          "timestamp": time.time()})
        wait_for(lambda: monitor.json("/api/workers?status=1").get("gone@host") is False, 10,
                 message="the worker offline")
        wait_for(lambda: "gone@host" not in monitor.json("/api/workers?status=1"), 10,
                 message="the offline worker purged")
        assert monitor.json("/api/workers?status=1") == {"alive@host": True}
        assert "gone@host" not in monitor.get("/metrics").text
    finally:
        monitor.stop()


def test_max_workers_keeps_the_most_recent(redis_server: Any, tmp_path: Path) -> None:
    db = 12
    broker = redis_server.url.replace("/0", f"/{db}")
    monitor = new_monitor(broker, tmp_path, "--max_workers=2", "--enable_events=False").start()
    client = redis.Redis(port=redis_server.port, db=db)
    try:
        for i in range(4):
            publish_worker_event(client, db, {"type": "worker-heartbeat", "hostname": f"w{i}@host",
                                              "timestamp": time.time(), "freq": 60.0})
            wait_for(lambda i=i: f"w{i}@host" in monitor.json("/api/workers?status=1"), 10, message=f"w{i}")
        assert set(monitor.json("/api/workers?status=1")) == {"w2@host", "w3@host"}
    finally:
        monitor.stop()


def test_serves_on_a_unix_socket(redis_server: Any, tmp_path: Path) -> None:
    sock = tmp_path / "monitor.sock"
    monitor = new_monitor(redis_server.url, tmp_path, f"--unix_socket={sock}")
    monitor.start = monitor.start  # served on the socket, not the port: poll the socket instead
    import subprocess

    from support.processes import BIN

    process = subprocess.Popen([str(BIN / "celery-monitor"), *monitor.args], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://monitor")
        wait_for(lambda: client.get("/healthcheck").text == "OK", 20, message="the unix socket")
        assert client.get("/api/tasks").status_code == 200
    finally:
        process.terminate()
        process.wait(10)
