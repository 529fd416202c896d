"""Shared fixtures: private brokers, real Celery workers and the real monitor process."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.processes import (
    MonitorProcess,
    RedisServer,
    Worker,
    broker_url,
    free_port,
    new_monitor,
    start_worker,
    wait_for,
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq_vhost() -> Iterator[str]:
    """A private RabbitMQ virtual host on the machine's broker, removed afterwards."""
    vhost = f"cmon-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    yield vhost
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


@dataclass
class Cluster:
    kind: str
    broker: str
    backend: str
    worker: Worker
    monitor: MonitorProcess
    tmp: Path


BROKERS = ["redis", "rabbitmq"]




@pytest.fixture(scope="session", params=BROKERS)
def cluster(request: pytest.FixtureRequest, redis_server: RedisServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One real worker and one monitor per broker kind, shared by the read-only API tests."""
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"cluster-{kind}")
    broker = broker_url(kind, redis_server, request)
    backend = f"redis://127.0.0.1:{redis_server.port}/1"
    monitor = new_monitor(broker, tmp, f"--result_backend={backend}").start()
    worker = start_worker(broker, f"w-{kind}", tmp, backend=backend)
    wait_for(lambda: monitor.json("/api/workers?status=true").get(worker.hostname), 30,
             message=f"worker {worker.hostname} online in the monitor")
    yield Cluster(kind, broker, backend, worker, monitor, tmp)
    worker.stop()
    monitor.stop()
