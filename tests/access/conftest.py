"""Every documented way in: one real worker shared by the monitors each test starts in front of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from access_fleet import Fleet
from support.processes import RedisServer, start_worker


@pytest.fixture(scope="session")
def fleet(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("access")
    broker = f"redis://127.0.0.1:{redis_server.port}/11"
    backend = f"redis://127.0.0.1:{redis_server.port}/12"
    worker = start_worker(broker, "w-access", tmp, backend=backend)
    yield Fleet(broker, backend, worker, tmp)
    worker.stop()
