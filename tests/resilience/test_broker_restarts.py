"""Broker restarts and malformed messages: the monitor survives, says so, and keeps its state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
from kombu import Connection, Exchange, Producer
from support.client import celery_client
from support.envelopes import kombu_envelope
from support.processes import RedisServer, free_port, new_monitor, start_worker, wait_for


def test_redis_restart_reconnects_and_keeps_state(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path).start()
    broker = server.url
    monitor = new_monitor(broker, tmp_path).start()
    worker = start_worker(broker, "restart", tmp_path, backend=broker.replace("/0", "/1"))
    try:
        with celery_client(broker, broker.replace("/0", "/1")) as app:
            first = app.send_task("tests.add", args=(1, 2))
            assert first.get(timeout=20) == 3
        wait_for(lambda: monitor.json(f"/api/task/info/{first.id}")["state"] == "SUCCESS", 10, message="first")

        server.stop()
        status = wait_for(lambda: (s := monitor.json("/api/monitor/status"))["receiver"]["connected"] is False
                          and s, 10, message="the receiver noticing the broker is gone")
        assert status["receiver"]["last_error"]
        assert monitor.metric("celery_monitor_receiver_connected") == 0
        # Still serving the history while the broker is down.
        assert monitor.json(f"/api/task/info/{first.id}")["state"] == "SUCCESS"

        server.start()
        wait_for(lambda: monitor.json("/api/monitor/status")["receiver"]["connected"], 15,
                 message="the receiver reconnecting")
        assert monitor.metric("celery_monitor_receiver_reconnects_total") >= 1
        with celery_client(broker, broker.replace("/0", "/1")) as app:
            second = app.send_task("tests.add", args=(3, 4))
            assert second.get(timeout=30) == 7
        wait_for(lambda: monitor.json(f"/api/task/info/{second.id}")["state"] == "SUCCESS", 15,
                 message="events after the restart")
        assert monitor.json(f"/api/task/info/{first.id}")["state"] == "SUCCESS"
    finally:
        worker.stop()
        monitor.stop()
        server.stop()


def test_malformed_redis_messages_are_counted_and_skipped(redis_server: Any, tmp_path: Path) -> None:
    broker = redis_server.url.replace("/0", "/9")
    monitor = new_monitor(broker, tmp_path).start()
    try:
        client = redis.Redis(port=redis_server.port, db=9)
        channel = "/9.celeryev/task.multi"
        garbage = [b"not json at all", b'{"no": "body"}', kombu_envelope(b"{broken"), kombu_envelope(b'{"no_type": 1}'),
                   kombu_envelope(b"\x80\x03pickle", "application/x-python-serialize"),
                   kombu_envelope(b'[{"type": "task-received"}]')]  # a task event without a uuid
        for payload in garbage:
            assert client.publish(channel, payload) == 1
        good = {"type": "task-received", "uuid": "after-garbage", "name": "tests.add", "hostname": "w@h",
                "timestamp": 1.0, "args": "()", "kwargs": "{}"}
        client.publish(channel, kombu_envelope(json.dumps([good]).encode()))
        wait_for(lambda: monitor.get("/api/task/info/after-garbage").status_code == 200, 10,
                 message="the good event after the garbage")
        assert monitor.metric("celery_monitor_events_malformed_total") == len(garbage)
        assert monitor.json("/api/monitor/status")["receiver"]["connected"] is True
    finally:
        monitor.stop()


def test_malformed_amqp_messages_are_counted_and_skipped(rabbitmq_vhost: str, tmp_path: Path) -> None:
    broker = f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}"
    monitor = new_monitor(broker, tmp_path).start()
    try:
        with Connection(broker) as conn:
            producer = Producer(conn.channel(), exchange=Exchange("celeryev", type="topic"))
            producer.publish(b"\x00\x01garbage", routing_key="task.multi", content_type="application/json",
                             content_encoding="binary")
            producer.publish(b"x", routing_key="task.multi", content_type="application/x-python-serialize",
                             content_encoding="binary")
            good = {"type": "task-received", "uuid": "amqp-after-garbage", "name": "tests.add",
                    "hostname": "w@h", "timestamp": 1.0}
            producer.publish(json.dumps(good).encode(), routing_key="task.received",
                             content_type="application/json", content_encoding="utf-8")
        wait_for(lambda: monitor.get("/api/task/info/amqp-after-garbage").status_code == 200, 10,
                 message="the good event after the garbage")
        assert monitor.metric("celery_monitor_events_malformed_total") == 2
    finally:
        monitor.stop()


def test_a_burst_the_broker_drops_us_for_is_reported_and_recovered_from(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path).start()
    monitor = new_monitor(server.url, tmp_path).start()
    try:
        client = redis.Redis(port=server.port, db=0)
        # A pub/sub buffer limit far below the burst: Redis drops any subscriber that falls behind.
        client.config_set("client-output-buffer-limit", "pubsub 64kb 0 0")
        channel = "/0.celeryev/task.multi"
        padding = "x" * 60_000
        burst = [{"type": "task-received", "uuid": f"burst-{i}", "name": "tests.add", "hostname": "w@h",
                  "timestamp": 1.0, "args": f"('{padding}',)", "kwargs": "{}"} for i in range(3000)]
        pipe = client.pipeline(transaction=False)
        for event in burst:
            pipe.publish(channel, kombu_envelope(json.dumps([event]).encode()))
        pipe.execute()
        status = wait_for(lambda: (s := monitor.json("/api/monitor/status"))["receiver"]["broker_disconnects"] >= 1
                          and s["receiver"]["connected"] and s, 10, message="the receiver reconnecting")
        assert status["receiver"]["last_error"] is None  # cleared by the reconnection
        assert monitor.metric("celery_monitor_receiver_disconnects_total") >= 1
        assert monitor.metric("celery_monitor_receiver_reconnects_total") >= 1
        # The events that got through are kept, and the stream goes on at once.
        after = {"type": "task-received", "uuid": "after-the-drop", "name": "tests.add", "hostname": "w@h",
                 "timestamp": 2.0, "args": "()", "kwargs": "{}"}
        wait_for(lambda: client.publish(channel, kombu_envelope(json.dumps([after]).encode())) == 1, 5,
                 message="the subscription to come back")
        wait_for(lambda: monitor.get("/api/task/info/after-the-drop").status_code == 200, 10,
                 message="an event after the drop")
        received = monitor.metric("celery_monitor_events_received_total")
        assert 1 <= received <= len(burst) + 1
    finally:
        monitor.stop()
        server.stop()
