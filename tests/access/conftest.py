"""Every documented way in: one real worker shared by the monitors each test starts in front of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from access_fleet import Fleet
from support.processes import OwnBrokers, start_worker


@pytest.fixture(scope="session")
def fleet(own_brokers: OwnBrokers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("access")
    broker = own_brokers.broker_url("redis", "access")
    backend = own_brokers.backend_url("access")
    worker = start_worker(broker, "w-access", tmp, backend=backend)
    yield Fleet(broker, backend, worker, tmp)
    worker.stop()
