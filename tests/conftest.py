"""Shared fixtures: private brokers, real Celery workers and the real monitor process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.fleet import add_vhost, delete_vhost
from support.postgres import STORES, history_location
from support.processes import (
    MonitorProcess,
    OwnBrokers,
    RedisServer,
    Worker,
    free_port,
    new_monitor,
    start_worker,
    wait_for,
)

# Directories whose tests share an expensive session fixture (a fleet of workers and monitors, Flower
# side by side, a built wheel in fresh venvs): under pytest-xdist each runs on one worker, so the
# fixture is built once. Other tests are spread file by file.
SHARED_SESSION_DIRS = {"access", "compat", "control", "fuzz", "release", "web"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests_dir)
        top = relative.parts[0]
        group = top if top in SHARED_SESSION_DIRS else relative.as_posix()
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq_vhost() -> Iterator[str]:
    """A private RabbitMQ virtual host on the machine's broker, removed afterwards."""
    vhost = add_vhost()
    yield vhost
    delete_vhost(vhost)


@pytest.fixture(scope="session")
def own_brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBrokers]:
    brokers = OwnBrokers(tmp_path_factory)
    yield brokers
    brokers.close()


@dataclass
class Cluster:
    kind: str
    broker: str
    backend: str
    worker: Worker
    monitor: MonitorProcess
    tmp: Path


BROKERS = ["redis", "rabbitmq"]


@pytest.fixture(params=STORES)
def history_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a test's history lives, for each store: a SQLite file, or a fresh PostgreSQL database
    (its URL: ``--db`` and ``open_store`` take either)."""
    with history_location(request.param, tmp_path) as db:
        yield db



@pytest.fixture(scope="session", params=BROKERS)
def cluster(request: pytest.FixtureRequest, own_brokers: OwnBrokers,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One real worker and one monitor per broker kind, shared by the read-only API tests."""
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"cluster-{kind}")
    broker = own_brokers.broker_url(kind, "cluster")
    backend = own_brokers.backend_url("cluster")
    monitor = new_monitor(broker, tmp, f"--result_backend={backend}").start()
    worker = start_worker(broker, f"w-{kind}", tmp, backend=backend)
    wait_for(lambda: monitor.json("/api/workers?status=true").get(worker.hostname), 30,
             message=f"worker {worker.hostname} online in the monitor")
    yield Cluster(kind, broker, backend, worker, monitor, tmp)
    worker.stop()
    monitor.stop()
