"""A fleet per broker for the control tests (see :func:`support.fleet.start_fleet`).

Both fleets start together, in the background, as soon as the first is needed: starting Celery
workers and the monitor is most of these tests' time. They have a redis-server and a RabbitMQ
virtual host of their own, so workers of other test folders never answer these broadcasts.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from support.fleet import Fleet, start_fleet
from support.processes import OwnBrokers

KINDS = ("redis", "rabbitmq")


class FleetStarter:
    def __init__(self, own_brokers: OwnBrokers, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.brokers = own_brokers
        self.tmp_path_factory = tmp_path_factory
        self.pool = ThreadPoolExecutor(len(KINDS), thread_name_prefix="fleet")
        self.futures: dict[str, Future[Fleet]] = {}
        # Made here, not in the pool's threads: both fleets use the one redis-server (for results).
        self.broker_urls = {kind: own_brokers.broker_url(kind, "control") for kind in KINDS}
        self.backend_url = own_brokers.backend_url("control")

    def _start(self, kind: str) -> Fleet:
        return start_fleet(kind, self.broker_urls[kind], self.backend_url,
                           self.tmp_path_factory.mktemp(f"control-{kind}"))

    def get(self, kind: str) -> Fleet:
        for each in KINDS:
            if each not in self.futures:
                self.futures[each] = self.pool.submit(self._start, each)
        return self.futures[kind].result()

    def stop(self, kind: str) -> None:
        future = self.futures.pop(kind, None)
        if future is not None and future.exception() is None:
            future.result().stop()

    def close(self) -> None:
        for kind in list(self.futures):
            self.stop(kind)
        self.pool.shutdown()


@pytest.fixture(scope="session")
def fleet_starter(own_brokers: OwnBrokers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetStarter]:
    starter = FleetStarter(own_brokers, tmp_path_factory)
    yield starter
    starter.close()


@pytest.fixture(scope="session", params=KINDS)
def fleet(request: pytest.FixtureRequest, fleet_starter: FleetStarter) -> Iterator[Fleet]:
    yield fleet_starter.get(request.param)
    fleet_starter.stop(request.param)
