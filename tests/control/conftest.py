"""A fleet per broker for the control tests (see :func:`support.fleet.start_fleet`).

Both fleets start together, in the background, as soon as the first is needed: starting Celery
workers and the monitor is most of these tests' time. Redis runs on its own database numbers and
RabbitMQ on its own virtual host, so workers of other test folders never answer these broadcasts.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from support.fleet import Fleet, add_vhost, delete_vhost, start_fleet
from support.processes import RedisServer

KINDS = ("redis", "rabbitmq")


class FleetStarter:
    def __init__(self, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.redis_server = redis_server
        self.tmp_path_factory = tmp_path_factory
        self.pool = ThreadPoolExecutor(len(KINDS), thread_name_prefix="fleet")
        self.futures: dict[str, Future[Fleet]] = {}
        self.vhost: str | None = None

    def _start(self, kind: str) -> Fleet:
        port = self.redis_server.port
        if kind == "redis":
            broker = f"redis://127.0.0.1:{port}/3"
        else:
            self.vhost = add_vhost()
            broker = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        return start_fleet(kind, broker, f"redis://127.0.0.1:{port}/4", self.tmp_path_factory.mktemp(f"control-{kind}"))

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
        if self.vhost:
            delete_vhost(self.vhost)


@pytest.fixture(scope="session")
def fleet_starter(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetStarter]:
    starter = FleetStarter(redis_server, tmp_path_factory)
    yield starter
    starter.close()


@pytest.fixture(scope="session", params=KINDS)
def fleet(request: pytest.FixtureRequest, fleet_starter: FleetStarter) -> Iterator[Fleet]:
    yield fleet_starter.get(request.param)
    fleet_starter.stop(request.param)
