"""Broker faults on real brokers: unreachable at start-up, restarted mid-stream (Redis and a private
RabbitMQ node), a TLS handshake that fails, a login refused. Each: the monitor keeps serving its
history, says why in ``/api/monitor/status`` (``receiver.last_error``, ``last_error_reason``) and in
``celery_monitor_receiver_errors_total{reason}``, logs it once (no traceback), reconnects when it
can, and applies nothing twice.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from feed import WORKER, AmqpFeed, RedisFeed
from rabbit_node import RabbitNode
from support.client import celery_client
from support.harness import Harness
from support.processes import MonitorProcess, RedisServer, free_port, new_monitor, start_worker, wait_for

SECRET = "s3cret-never-shown"


def receiver(monitor: MonitorProcess) -> dict[str, object]:
    return monitor.json("/api/monitor/status")["receiver"]  # type: ignore[no-any-return]


def log_lines(monitor: MonitorProcess, text: str) -> list[str]:
    return [line for line in monitor.log.read_text().splitlines() if text in line]


def applied(monitor: MonitorProcess, kind: str, worker: str = WORKER) -> float:
    return monitor.metric("flower_events_total", task="tests.add", type=kind, worker=worker)


def test_redis_unreachable_at_start_up_serves_the_history_then_connects(tmp_path: Path) -> None:
    history = Harness(tmp_path, db=tmp_path / "monitor.db")
    kept = [history.run_task("tests.add", "w@before") for _ in range(3)]
    history.flush()
    history.close()
    port = free_port()
    monitor = new_monitor(f"redis://127.0.0.1:{port}/0", tmp_path).start(wait_connected=False)
    server = RedisServer(port, tmp_path)
    try:
        assert monitor.get("/readyz").status_code == 200
        assert set(monitor.json("/api/tasks")) == set(kept)
        assert monitor.json(f"/api/task/info/{kept[0]}")["state"] == "SUCCESS"
        status = wait_for(lambda: (r := receiver(monitor))["errors_by_reason"]["unreachable"] >= 3 and r, 15,
                          message="three attempts to connect")
        assert status["connected"] is False and status["last_error_reason"] == "unreachable"
        assert status["last_error"] == f"cannot reach the broker at 127.0.0.1:{port}: [Errno 111] Connection refused"
        assert monitor.metric("celery_monitor_receiver_connected") == 0
        assert monitor.metric("celery_monitor_receiver_errors_total", reason="unreachable") >= 3
        live = monitor.json("/livez")
        assert live["live"] is True and any(f"127.0.0.1:{port}" in warning for warning in live["warnings"])
        assert len(log_lines(monitor, "event stream (redis) unavailable")) == 1  # not once per attempt

        server.start()
        wait_for(lambda: receiver(monitor)["connected"], 15, message="the receiver connecting to the new broker")
        feed = RedisFeed(port)
        wait_for(feed.listening, 10, message="the subscription")
        (task_id,) = feed.send(1)
        wait_for(lambda: monitor.get(f"/api/task/info/{task_id}").status_code == 200, 10, message="its events")
        assert receiver(monitor)["last_error"] is None
        assert len(log_lines(monitor, f"event stream (redis) connected to 127.0.0.1:{port} after ")) == 1
        assert "Traceback" not in monitor.log.read_text()
    finally:
        monitor.stop()
        server.stop()


def test_redis_restart_mid_stream_applies_nothing_twice(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path).start()
    monitor = new_monitor(server.url, tmp_path).start()
    feed = RedisFeed(server.port)
    try:
        wait_for(feed.listening, 10, message="the subscription")
        before = feed.send(5)
        wait_for(lambda: applied(monitor, "task-succeeded") == 5, 10, message="the first five tasks")

        server.stop()
        lost = wait_for(lambda: (r := receiver(monitor))["connected"] is False and r, 10, message="the stream lost")
        assert lost["last_error_reason"] in ("lost", "unreachable")
        server.start()
        wait_for(lambda: receiver(monitor)["connected"] and feed.listening(), 15, message="the subscription back")
        after = feed.send(5)
        wait_for(lambda: applied(monitor, "task-succeeded") == 10, 10, message="the five tasks after the restart")

        assert applied(monitor, "task-received") == 10
        assert {monitor.json(f"/api/task/info/{t}")["state"] for t in before + after} == {"SUCCESS"}
        assert monitor.metric("celery_monitor_receiver_disconnects_total") == 1
        assert monitor.metric("celery_monitor_receiver_errors_total", reason="lost") >= 1
        assert "Traceback" not in monitor.log.read_text()
    finally:
        monitor.stop()
        server.stop()


def test_rabbitmq_unreachable_at_start_up_then_restarted_mid_stream(redis_server: RedisServer,
                                                                    tmp_path: Path) -> None:
    """A private node: away when the monitor starts, then restarted under a real worker and the monitor.

    The monitor consumes its own queue without acknowledgements, so the broker never redelivers what
    it sent before the restart: the counts are exact.
    """
    node = RabbitNode()
    backend = redis_server.url.replace("/0", "/13")
    monitor = new_monitor(node.url, tmp_path).start(wait_connected=False)
    worker = None
    try:
        status = wait_for(lambda: (r := receiver(monitor))["last_error_reason"] and r, 15,
                          message="the first attempt to connect")
        assert status["last_error"] == f"cannot reach the broker at 127.0.0.1:{node.port}: " \
                                       "[Errno 111] Connection refused"
        assert monitor.get("/readyz").status_code == 200

        node.start()
        wait_for(lambda: receiver(monitor)["connected"], 20, message="the receiver connecting to RabbitMQ")
        worker = start_worker(node.url, "rabbit-restart", tmp_path, backend=backend)
        wait_for(lambda: worker.hostname in monitor.json("/api/workers?status=true"), 30, message="the worker online")
        with celery_client(node.url, backend) as app:
            assert [app.send_task("tests.add", args=(i, i)).get(timeout=30) for i in range(3)] == [0, 2, 4]
        AmqpFeed(node.url).send(5)
        wait_for(lambda: applied(monitor, "task-succeeded", worker.hostname) == 3
                 and applied(monitor, "task-succeeded") == 5, 15, message="the events before the restart")

        node.stop_app()
        wait_for(lambda: receiver(monitor)["connected"] is False, 15, message="the stream lost")
        node.start_app()
        wait_for(lambda: receiver(monitor)["connected"], 20, message="the receiver back")
        with celery_client(node.url, backend) as app:
            assert [app.send_task("tests.add", args=(i, 1)).get(timeout=60) for i in range(3)] == [1, 2, 3]
        AmqpFeed(node.url).send(5)
        wait_for(lambda: applied(monitor, "task-succeeded", worker.hostname) == 6
                 and applied(monitor, "task-succeeded") == 10, 20, message="the events after the restart")

        assert applied(monitor, "task-received", worker.hostname) == 6
        assert applied(monitor, "task-received") == 10
        assert monitor.metric("celery_monitor_receiver_disconnects_total") == 1
        assert receiver(monitor)["last_error"] is None
        assert "Traceback" not in monitor.log.read_text()
    finally:
        if worker is not None:
            worker.stop()
        monitor.stop()
        node.stop()


@dataclass
class TlsRedis:
    port: int
    ca: Path  # the certificate authority that signed the server's certificate
    other_ca: Path  # one that did not


def _certificate(directory: Path, name: str, common_name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", f"/CN={common_name}", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    directory = tmp_path_factory.mktemp("tls-redis")
    cert, key = _certificate(directory, "server", "127.0.0.1")
    other, _ = _certificate(directory, "other", "someone else")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                               "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                               "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--save", "",
                               "--dir", str(directory)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield TlsRedis(port, cert, other)
    server.terminate()
    server.wait(10)


@pytest.fixture(scope="module")
def guarded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis that asks for a password."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("guarded-redis")).start()
    redis.Redis(port=server.port).config_set("requirepass", "the-right-one")
    yield server
    server.stop()


FAULTS = {
    # case: (reason, words the message must hold)
    "redis wrong password": ("auth", ["refused the login: WRONGPASS", "check the user name and password"]),
    "redis no password": ("auth", ["refused the login: NOAUTH"]),
    "rediss to a plain port": ("tls", ["TLS handshake with 127.0.0.1:", "timed out: is that port serving TLS?"]),
    "rediss with a CA that did not sign": ("tls", ["TLS handshake with 127.0.0.1:", "certificate verify failed",
                                                   "check ssl_ca_certs"]),
    "redis to a TLS port": ("handshake", ["broke off the connection", "use rediss://"]),
    "amqp wrong password": ("auth", ["refused the login: ACCESS_REFUSED", "check the user name and password"]),
    "amqps to a plain port": ("tls", ["TLS handshake with 127.0.0.1:5672 failed", "does not speak TLS"]),
}


def fault_url(case: str, request: pytest.FixtureRequest) -> str:
    if case.startswith("amqp"):
        vhost = request.getfixturevalue("rabbitmq_vhost")
        password = SECRET if case == "amqp wrong password" else "guest"
        return f"{'amqps' if case.startswith('amqps') else 'amqp'}://guest:{password}@127.0.0.1:5672/{vhost}"
    if case in ("redis wrong password", "redis no password", "rediss to a plain port"):
        guarded: RedisServer = request.getfixturevalue("guarded_redis")
        scheme = "rediss" if case == "rediss to a plain port" else "redis"
        password = f":{SECRET}@" if case == "redis wrong password" else ""
        return f"{scheme}://{password}127.0.0.1:{guarded.port}/0"
    tls: TlsRedis = request.getfixturevalue("tls_redis")
    if case == "redis to a TLS port":
        return f"redis://127.0.0.1:{tls.port}/0"
    return f"rediss://127.0.0.1:{tls.port}/0?ssl_cert_reqs=required&ssl_ca_certs={tls.other_ca}"


@pytest.mark.parametrize("case", FAULTS)
def test_a_refused_connection_says_why_without_a_traceback_or_the_password(case: str, tmp_path: Path,
                                                                          request: pytest.FixtureRequest) -> None:
    reason, words = FAULTS[case]
    monitor = new_monitor(fault_url(case, request), tmp_path).start(wait_connected=False)
    try:
        status = wait_for(lambda: (r := receiver(monitor))["last_error_reason"] and r, 20,
                          message="the first attempt to connect")
        assert status["last_error_reason"] == reason, status["last_error"]
        assert all(word in status["last_error"] for word in words), status["last_error"]
        assert status["connected"] is False
        assert monitor.metric("celery_monitor_receiver_errors_total", reason=reason) >= 1
        assert monitor.metric("celery_monitor_receiver_connected") == 0
        assert monitor.metric("celery_monitor_background_errors_total", loop="reader") == 0  # a fault, not a bug
        # Still serving, and alive (a broker away for less than liveness.BROKER_GRACE only warns).
        assert monitor.get("/readyz").status_code == 200 and monitor.get("/livez").status_code == 200
        log = monitor.log.read_text()
        assert "Traceback" not in log
        assert SECRET not in log and SECRET not in monitor.get("/api/monitor/status").text
        assert len(log_lines(monitor, "event stream")) == 1
    finally:
        monitor.stop()
