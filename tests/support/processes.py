"""Real processes for the tests: Celery workers, the monitor, a private redis-server."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO = TESTS_DIR.parent
BIN = Path(sys.executable).parent
T = TypeVar("T")
PRIVATE_PORTS = (20000, 32000)  # under pytest-xdist: split between the workers (free_port)


def wait_for(condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.05,
             message: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_error})" if last_error else ""))


def free_port() -> int:
    """A port nothing listens on now, for a server a test is about to start.

    Under pytest-xdist each worker picks from a range of its own below the kernel's ephemeral ports
    (20000-31999, split evenly), so two workers never hand out the same port in the moment between
    this check and the server's bind, and no outgoing connection takes it meanwhile. (Parity is no
    way to split: Linux hands out odd ports to bind() and even ones to connect().)
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not (worker.startswith("gw") and worker[2:].isdigit()):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    span = (PRIVATE_PORTS[1] - PRIVATE_PORTS[0]) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    low = PRIVATE_PORTS[0] + int(worker[2:]) * span
    for _ in range(500):
        port = random.randrange(low, low + span)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): another
            return port
    raise RuntimeError(f"no free port in {low}-{low + span - 1}")


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Worker:
    hostname: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        _stop(self.process, 15)


def start_worker(broker: str, name: str, log_dir: Path, *extra: str, backend: str | None = None,
                 env: dict[str, str] | None = None, events: bool = True, mingle: bool = False) -> Worker:
    """A worker of support.tasks; ``mingle`` keeps Celery's start-up sync (revoked ids from the others)."""
    hostname = f"{name}@{socket.gethostname()}"
    log = log_dir / f"worker-{name}.log"
    environ = {**os.environ, "TEST_BROKER_URL": broker, **(env or {})}
    if backend:
        environ["TEST_RESULT_BACKEND"] = backend
    process = subprocess.Popen(
        [str(BIN / "celery"), "-A", "support.tasks", "worker", *(["-E"] if events else []), "-P", "prefork", "-c", "2",
         "-n", hostname, "--loglevel=INFO", *([] if mingle else ["--without-mingle"]), "--without-gossip", *extra],
        cwd=TESTS_DIR, env=environ, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    return Worker(hostname, process, log)


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the prefork pool), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def kill9_with_pool(worker: Worker) -> None:
    """What an OOM kill or a lost node does: the worker and its pool processes die at once."""
    pool = children_of(worker.process.pid)
    assert pool, "the prefork worker has pool processes"
    for pid in [worker.process.pid, *pool]:
        os.kill(pid, signal.SIGKILL)
    worker.process.wait(5)


@dataclass
class MonitorProcess:
    args: list[str]
    port: int
    log: Path
    env: dict[str, str]
    auth: tuple[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    prefix: str = ""
    client: httpx.Client = field(init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def start(self, timeout: float = 20, wait_connected: bool = True) -> MonitorProcess:
        self.process = subprocess.Popen(
            [str(BIN / "celery-monitor"), f"--port={self.port}", "--address=127.0.0.1", *self.args],
            cwd=self.log.parent, env={**os.environ, **self.env},
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, auth=self.auth, timeout=15)
        wait_for(lambda: self._healthy(), timeout, message=f"the monitor on port {self.port} (log: {self.log})")
        if wait_connected:
            wait_for(lambda: self.json("/api/monitor/status")["receiver"]["connected"], timeout,
                     message="the monitor's event receiver to connect")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the monitor exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
        return self.client.get("/healthcheck").status_code == 200

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def json(self, path: str, **kwargs: Any) -> Any:
        response = self.get(path, **kwargs)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
        self.client.close()

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)
        self.client.close()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample from /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


def new_monitor(broker: str, tmp: Path, *args: str, auth: tuple[str, str] | None = None,
                env: dict[str, str] | None = None, prefix: str = "") -> MonitorProcess:
    base = [f"--broker={broker}", f"--db={tmp / 'monitor.db'}", "--inspect_timeout=1000"]
    if auth:
        base.append(f"--basic_auth={auth[0]}:{auth[1]}")
    else:
        base.append("--unauthenticated_api")
    return MonitorProcess([*base, *args], free_port(), tmp / "monitor.log", env or {}, auth, prefix=prefix)


@dataclass
class RedisServer:
    """A private redis-server, so a test may stop and start it without touching the shared one."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, 10, message=f"redis-server on {self.port}")
        return self

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


class OwnBrokers:
    """Brokers of their own for the fleets that live through the whole session.

    A fleet's worker and monitor outlive the tests that made them; on a shared Redis database or
    RabbitMQ virtual host they would answer other tests' broadcasts, take their tasks and show up
    in their worker lists. Each fleet gets its own redis-server and virtual host here, by name.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._servers: dict[str, RedisServer] = {}
        self._vhosts: dict[str, str] = {}

    def redis(self, name: str) -> RedisServer:
        if name not in self._servers:
            self._servers[name] = RedisServer(free_port(), self._tmp.mktemp(f"redis-{name}")).start()
        return self._servers[name]

    def vhost(self, name: str) -> str:
        if name not in self._vhosts:
            from support.fleet import add_vhost

            self._vhosts[name] = add_vhost()
        return self._vhosts[name]

    def broker_url(self, kind: str, name: str) -> str:
        """The fleet's broker of ``kind`` (redis or rabbitmq)."""
        if kind == "redis":
            return self.redis(name).url
        return f"amqp://guest:guest@127.0.0.1:5672/{self.vhost(name)}"

    def backend_url(self, name: str) -> str:
        return f"redis://127.0.0.1:{self.redis(name).port}/1"

    def close(self) -> None:
        from support.fleet import delete_vhost

        for server in self._servers.values():
            server.stop()
        for vhost in self._vhosts.values():
            delete_vhost(vhost)
