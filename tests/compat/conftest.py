"""One real cluster per broker with the monitor and Flower 2.2 side by side, shared by the module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.processes import MonitorProcess, OwnBrokers, Worker, new_monitor, start_worker, wait_for

from compat.flower import FlowerProcess

AUTH = ("compat", "s3cret-pass")
MANAGEMENT_API = "http://guest:guest@127.0.0.1:15672/api/"


@dataclass
class SideBySide:
    kind: str
    broker: str
    worker: Worker
    monitor: MonitorProcess
    flower: FlowerProcess
    tmp: Path


def fully_inspected(entry: dict[str, object]) -> bool:
    registered = entry.get("registered")
    return isinstance(registered, list) and "tests.add" in registered and bool(entry.get("stats"))


@pytest.fixture(scope="session", params=["redis", "rabbitmq"])
def side_by_side(request: pytest.FixtureRequest, own_brokers: OwnBrokers,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[SideBySide]:
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"compat-{kind}")
    broker = own_brokers.broker_url(kind, "compat")
    backend = own_brokers.backend_url("compat")
    extra = [f"--broker_api={MANAGEMENT_API}"] if kind == "rabbitmq" else []
    # The cases compare answers, not speed: a loaded machine can take more than Flower's 1-s
    # reply window to carry a control reply over RabbitMQ, so the monitor waits longer for it.
    monitor = new_monitor(broker, tmp, f"--result_backend={backend}", "--inspect_timeout=4000", *extra,
                          auth=AUTH).start()
    flower = FlowerProcess(broker, backend, tmp / "flower.log", AUTH, extra).start()
    worker = start_worker(broker, f"compat-{kind}", tmp, backend=backend)
    try:
        # Each inspect method answers on its own: a busy machine can miss one reply, which the next
        # refresh fills in. The cases compare every method Flower answered, so wait for them all.
        wait_for(lambda: fully_inspected(monitor.json("/api/workers").get(worker.hostname) or {}),
                 30, message="the worker, its tasks and its stats in the monitor")
        wait_for(lambda: worker.hostname in flower.client.get("/api/workers?refresh=1").json(), 30,
                 message="the worker in Flower")
        yield SideBySide(kind, broker, worker, monitor, flower, tmp)
    finally:
        worker.stop()
        flower.stop()
        monitor.stop()
