"""The API fuzzer's target: the real app and monitor in this process, on a private broker no worker reads.

Requests go straight into the ASGI app (no server, no sockets), so thousands of cases take a minute
or two, while everything behind the app is real: the monitor's threads and history file, and a
private redis-server carrying its events, its control commands (to nobody), the tasks it sends and
the result backend.
"""

from __future__ import annotations

import gc
import json
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
import schemathesis
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from starlette.applications import Starlette

from celery_monitor.app import create_app
from celery_monitor.celery_app import build_app
from celery_monitor.cli.config import load_settings
from celery_monitor.service import Monitor
from celery_monitor.settings import Settings
from support.auth_stack import PROBE, basic, token_entry
from support.envelopes import kombu_envelope
from support.hostile_events import good_task_events
from support.processes import RedisServer, free_port, wait_for

VIEWER = ("viewer", "viewer-password-0123")
READ_ONLY_TOKEN = "fuzz-read-only-token-0123456789"
IDENTITIES: dict[str, dict[str, str]] = {
    "writer": basic(*PROBE),
    "read-only user": basic(*VIEWER),
    "read-only token": {"Authorization": f"Bearer {READ_ONLY_TOKEN}"},
    "anonymous": {},
}
WORKER = "fuzz-target@nowhere"  # heard of through its events; no such process exists
TASK_NAMES = ("tests.add", "tests.fail")
# kombu reads Redis control replies once a second by default; reading them as often as the inspect
# timeout makes a control call nobody answers cost tens of milliseconds instead of a second.
CELERY_CONFIG = "broker_transport_options = {'polling_interval': 0.02}\n"
# Operations that wait for a task's result when asked to (apply waits 300 s unless told otherwise;
# Celery's Redis backend waits in steps of a second).
WAITING = ("/api/task/apply/{name}", "/api/task/result/{task_id}")
NO_WAIT = "0"


# The seeded history: what the known ids, names and queues below point at.
SUCCEEDED = str(uuid.uuid5(uuid.NAMESPACE_URL, "celery-monitor-fuzz/succeeded"))
FAILED = str(uuid.uuid5(uuid.NAMESPACE_URL, "celery-monitor-fuzz/failed"))
KNOWN_TASK_IDS = (SUCCEEDED, FAILED)
BASE_URL = f"http://{asgi.HOST}"


@dataclass(frozen=True)
class FuzzTarget:
    app: Starlette
    client: asgi.ASGIClient  # requests reach the app in this process, through this session


@contextmanager
def running_target(tmp: Path) -> Iterator[FuzzTarget]:
    server = RedisServer(free_port(), tmp).start()
    try:
        monitor = Monitor(settings := fuzzed_settings(tmp, server.port), build_app(settings))
        # The monitor runs for the whole session: schemathesis ends the app's lifespan after each test.
        app = create_app(monitor, manage_lifecycle=False)
        monitor.start()
        try:
            with asgi.get_client(app) as client:
                seed_history(server, client)
                yield FuzzTarget(app, client)
        finally:
            asgi.shutdown_lifespans()
            monitor.stop()
            gc.collect()  # results the API read let go of their backend subscription while Redis is still up
    finally:
        server.stop()


def fuzzed_settings(tmp: Path, redis_port: int) -> Settings:
    """A writer, a read-only user and a read-only token; control replies awaited 20 ms."""
    config = tmp / "celeryconfig.py"
    config.write_text(CELERY_CONFIG)
    return load_settings([
        f"--broker=redis://127.0.0.1:{redis_port}/0", f"--result_backend=redis://127.0.0.1:{redis_port}/1",
        f"--db={tmp / 'monitor.db'}", "--inspect_timeout=20", f"--conf={config}",
        f"--basic_auth={PROBE[0]}:{PROBE[1]},{VIEWER[0]}:{VIEWER[1]}", f"--read_only_users={VIEWER[0]}",
        f"--api_tokens={token_entry('reader', 'read-only', READ_ONLY_TOKEN)}",
    ], environ={})


def seed_history(server: RedisServer, client: asgi.ASGIClient) -> None:
    """A worker and a task in each outcome, published as a worker would, so there is something to ask about."""
    events: list[dict[str, Any]] = [
        {"type": "worker-online", "hostname": WORKER, "timestamp": 1.7e9, "freq": 2.0},
        {"type": "worker-heartbeat", "hostname": WORKER, "timestamp": 1.7e9 + 1, "freq": 2.0},
        *good_task_events(SUCCEEDED, name=TASK_NAMES[0], worker=WORKER),
        *good_task_events(FAILED, name=TASK_NAMES[1], worker=WORKER)[:2],
        {"type": "task-failed", "uuid": FAILED, "hostname": WORKER, "exception": "ValueError('no')",
         "traceback": "Traceback ...", "timestamp": 1.7e9 + 3, "clock": 4},
    ]
    publisher = redis.Redis(port=server.port, db=0)
    wait_for(lambda: publisher.publish("/0.celeryev/task.multi", kombu_envelope(json.dumps(events).encode())), 10,
             message="the monitor subscribing to events")
    for task_id in KNOWN_TASK_IDS:
        wait_for(lambda t=task_id: client.get(f"/api/task/info/{t}", headers=IDENTITIES["writer"]).ok, 10,
                 message=f"the seeded task {task_id}")


def described_api(coverage: bool = True) -> Any:
    """The description the app serves, with two hooks: known names half the time, and no long waits.

    Without ``coverage``, only Hypothesis's examples: no boundary values and wrong methods first."""
    from celery_monitor.api.openapi import describe
    from celery_monitor.api.routes import ROUTES
    from celery_monitor.auth.routes import ROUTES as AUTH_ROUTES

    config = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": coverage}}})
    schema = schemathesis.openapi.from_dict(describe([*ROUTES, *AUTH_ROUTES]), config=config)
    schema.hook(flatmap_path_parameters)
    schema.hook(map_query)
    return schema


def known(parameter: str, path: str) -> tuple[str, ...]:
    if parameter == "task_id":
        return KNOWN_TASK_IDS
    if parameter == "queue":
        return ("celery",)
    return (WORKER,) if path.startswith("/api/worker/") else TASK_NAMES


def flatmap_path_parameters(context: Any, parameters: Any) -> st.SearchStrategy[Any]:
    """As often as not, a task id, task name, worker or queue the monitor knows, instead of noise."""
    if not isinstance(parameters, dict) or len(parameters) != 1:
        return st.just(parameters)
    [name] = parameters
    values = st.sampled_from(known(name, context.operation.path))
    return st.one_of(st.just(parameters), values.map(lambda value: {name: quote(value, safe="")}))


def map_query(context: Any, query: Any) -> Any:
    """The fuzzer never waits for a result: a valid or missing ``timeout`` becomes 0 (invalid ones stay)."""
    if context.operation.path not in WAITING or not (query is None or isinstance(query, dict)):
        return query
    query = dict(query or {})
    if _would_wait(query.get("timeout")):
        query["timeout"] = NO_WAIT
    return query


def _would_wait(value: object) -> bool:
    if isinstance(value, list):  # a repeated parameter: the app reads the last one
        value = value[-1] if value else None
    if value is None or value == "":
        return True
    try:
        seconds = float(str(value))
    except ValueError:
        return False
    return math.isfinite(seconds) and seconds > 0
