"""Shared fixtures: private brokers, real Celery workers and the real monitor process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
# fixture is built once. Other tests are spread file by file (module-scoped fixtures stay whole).
SHARED_SESSION_DIRS = {"access", "compat", "control", "fuzz", "release", "web"}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Work units of pytest-xdist: a shared directory whole, else a file. (Its ``xdist_group`` marks
    need the nodeid rewriting that pytest 9.2 no longer honours.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByDirectoryOrFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            parts = path.split("/")
            return parts[1] if len(parts) > 2 and parts[1] in SHARED_SESSION_DIRS else path

    return ByDirectoryOrFile(config, log)


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
