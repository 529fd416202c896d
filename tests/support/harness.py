"""A monitor built in the test process from real settings, fed Celery events through its applier.

Nothing is started: no broker, no threads. The events go through the same decoding and applying
code the receiver feeds, and /metrics is read through the real ASGI app and parsed with
prometheus-client's own parser.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from celery_monitor.app import create_app
from celery_monitor.celery_app import build_app
from celery_monitor.cli.config import load_settings
from celery_monitor.receiver.handoff import RawMessage
from celery_monitor.service import Monitor

# A port nothing listens on: the monitor is never started, and must not reach a broker by accident.
UNUSED_BROKER = "redis://127.0.0.1:9/0"
_clock = itertools.count(1)


class Harness:
    def __init__(self, tmp_path: Path, *args: str, broker: str = UNUSED_BROKER, db: Path | str | None = None) -> None:
        history = [f"--db={db}"] if db is not None else ["--persistent=False"]
        settings = load_settings([f"--broker={broker}", *history, "--unauthenticated_api",
                                  f"--conf={self._empty_conf(tmp_path)}", *args], environ={})
        self.monitor = Monitor(settings, build_app(settings))
        self.app = create_app(self.monitor, manage_lifecycle=False)

    @staticmethod
    def _empty_conf(tmp_path: Path) -> Path:
        path = tmp_path / "empty-config.py"
        path.write_text("")
        return path

    def feed(self, *events: dict[str, Any], at: float | None = None) -> None:
        """Hand events to the applier as one message, as the receiver would."""
        at = time.time() if at is None else at
        stamped = [{"timestamp": at, "clock": next(_clock), **event} for event in events]
        body = orjson.dumps(stamped)
        self.monitor.applier.apply([(at, [RawMessage(body, "application/json")])])

    def feed_raw(self, body: bytes, content_type: str | None = "application/json", at: float | None = None) -> None:
        """Hand one message's bytes to the applier as they came off the broker."""
        at = time.time() if at is None else at
        self.monitor.applier.apply([(at, [RawMessage(body, content_type)])])

    def flush(self) -> None:
        """Write what the applier handed over to the history, as the writer thread does every flush."""
        self.monitor.writer.flush()

    def heartbeat(self, worker: str, active: int = 0, freq: float = 60.0) -> None:
        self.feed({"type": "worker-heartbeat", "hostname": worker, "freq": freq, "active": active})

    def offline(self, worker: str) -> None:
        self.feed({"type": "worker-offline", "hostname": worker})

    def run_task(self, name: str, worker: str, runtime: float = 0.2, waited: float = 0.1,
                 fail: str | None = None, finish: bool = True) -> str:
        """The events of one task: received, started and (unless ``finish`` is false) its outcome."""
        task_id = str(uuid.uuid4())
        now = time.time()
        self.feed({"type": "task-received", "uuid": task_id, "name": name, "hostname": worker,
                   "args": "()", "kwargs": "{}"}, at=now - waited)
        self.feed({"type": "task-started", "uuid": task_id, "hostname": worker}, at=now)
        if not finish:
            return task_id
        if fail is None:
            self.feed({"type": "task-succeeded", "uuid": task_id, "hostname": worker, "runtime": runtime,
                       "result": "None"}, at=now)
        else:
            self.feed({"type": "task-failed", "uuid": task_id, "hostname": worker,
                       "exception": f"{fail}('boom')", "traceback": ""}, at=now)
        return task_id

    def receive_only(self, name: str, worker: str) -> str:
        task_id = str(uuid.uuid4())
        self.feed({"type": "task-received", "uuid": task_id, "name": name, "hostname": worker,
                   "args": "()", "kwargs": "{}"})
        return task_id

    def get(self, path: str) -> httpx.Response:
        """One request through the ASGI app (its lifespan never runs: nothing is started)."""

        async def request() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://monitor") as client:
                return await client.get(path)

        return asyncio.run(request())

    def exposition(self) -> str:
        response = self.get("/metrics")
        assert response.status_code == 200, response.text
        return response.text

    def families(self) -> dict[str, Any]:
        return {family.name: family for family in text_string_to_metric_families(self.exposition())}

    def samples(self, family: str) -> list[Sample]:
        found = self.families().get(family)
        return list(found.samples) if found is not None else []

    def values(self, family: str, sample_name: str | None = None, **match: str) -> dict[tuple[str, ...], float]:
        """Sample values of a family keyed by their label values (label names sorted, as exposed).

        The harness watches one broker: a series with a ``cluster`` label must say ``default`` (checked
        here), and the label is left out of the keys unless ``cluster`` is matched on.
        """
        out: dict[tuple[str, ...], float] = {}
        for sample in self.samples(family):
            if sample_name is not None and sample.name != sample_name:
                continue
            labels = dict(sample.labels)
            if "cluster" not in match and "cluster" in labels:
                assert labels.pop("cluster") == "default", sample
            if all(sample.labels.get(k) == v for k, v in match.items()):
                out[tuple(v for k, v in sorted(labels.items()))] = sample.value
        return out

    def close(self) -> None:
        if self.monitor.queue_poller.is_alive():
            self.monitor.queue_poller.stop()
            self.monitor.queue_poller.join(5)
        self.monitor.store.close()
        self.monitor.notifier.ledger.close()


@pytest.fixture
def harness_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Harness] = []

    def make(*args: str, broker: str = UNUSED_BROKER) -> Harness:
        made.append(Harness(tmp_path, *args, broker=broker))
        return made[-1]

    yield make
    for harness in made:
        harness.close()


# What every endpoint and page must survive: a worker and tasks fed through the harness.
WORKER = "w@h"
ENDPOINTS = (
    "/api/workers", "/api/workers?refresh=false&status=true", "/api/tasks", "/api/tasks?limit=5&sort_by=-received",
    "/api/tasks?search=a", "/api/task/types", "/api/monitor/status", "/metrics", "/healthcheck",
    "/", "/workers", "/tasks", "/broker", "/graphs", "/monitor", f"/worker/{WORKER}",
    "/ui/workers.json", f"/ui/worker/{WORKER}.json", "/ui/tasks.json", "/ui/tasks.json?search=x",
    "/ui/graphs.json", "/ui/broker.json",
)


def assert_every_endpoint_answers(harness: Harness, task_ids: list[str]) -> None:
    paths = [*ENDPOINTS, *(f"/api/task/info/{t}" for t in task_ids), *(f"/task/{t}" for t in task_ids),
             *(f"/ui/task/{t}.json" for t in task_ids)]
    for path in paths:
        response = harness.get(path)
        assert response.status_code < 500, f"{path} answered {response.status_code}: {response.text[:300]}"


def assert_good_tasks_applied(harness: Harness, task_ids: list[str]) -> None:
    for task_id in task_ids:
        response = harness.get(f"/api/task/info/{task_id}")
        assert response.status_code == 200, response.text
        info = response.json()
        assert (info["state"], info["name"], info["result"], info["worker"]) == ("SUCCESS", "tests.add", "3", WORKER)
