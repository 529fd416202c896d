"""Schemathesis against the monitor's own OpenAPI description: no input makes it fail with a 500."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from support.auth_stack import PROBE
from support.processes import MonitorProcess, RedisServer, new_monitor

pytestmark = pytest.mark.timeout(150)
EXAMPLES = int(os.environ.get("CELERY_MONITOR_FUZZ_EXAMPLES", "15"))  # more for a deeper run
# Server errors found here in code other parts own; each entry names its reproduction.
KNOWN_SERVER_ERRORS: dict[tuple[str, str], str] = {}
AUTH = {"Authorization": "Basic " + base64.b64encode(":".join(PROBE).encode()).decode()}


@pytest.fixture(scope="module")
def fuzzed_monitor(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorProcess]:
    """A monitor on a broker no worker listens to: control calls reach nobody."""
    tmp = tmp_path_factory.mktemp("fuzz")
    monitor = new_monitor(f"redis://127.0.0.1:{redis_server.port}/14", tmp, "--inspect_timeout=100",
                          auth=PROBE).start()
    yield monitor
    monitor.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed_monitor: MonitorProcess) -> Any:
    return schemathesis.openapi.from_url(fuzzed_monitor.url + "/api/openapi.json", headers=AUTH)


def test_the_description_names_every_api_route(fuzzed_monitor: MonitorProcess) -> None:
    from celery_monitor.api.routes import ROUTES

    described = fuzzed_monitor.json("/api/openapi.json")["paths"]
    for route in ROUTES:
        path = getattr(route, "path", "")
        if path.startswith("/api") and type(route).__name__ == "Route":
            assert path.replace(":path}", "}") in described, path


def described_operations() -> list[tuple[str, str]]:
    from celery_monitor.api.openapi import describe
    from celery_monitor.api.routes import ROUTES
    from celery_monitor.auth.routes import ROUTES as AUTH_ROUTES

    document = describe([*ROUTES, *AUTH_ROUTES])
    return [(method.upper(), path) for path, operations in document["paths"].items() for method in operations]


def operations() -> list[Any]:
    found = []
    for method, path in described_operations():
        known = KNOWN_SERVER_ERRORS.get((method, path))
        marks = [pytest.mark.xfail(reason=known, strict=False)] if known else []
        found.append(pytest.param(method, path, marks=marks, id=f"{method} {path}"))
    return found


@pytest.mark.parametrize("method, path", operations())
def test_no_input_makes_a_server_error(method: str, path: str, api_schema: Any) -> None:
    operation = api_schema[path][method]

    examples = EXAMPLES if method == "GET" else EXAMPLES // 2  # control calls wait for replies

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        # 503 (no result backend) and 504 (no worker replied) are honest answers; 500 never is.
        response = case.call(headers=AUTH, timeout=20)
        assert response.status_code != 500, f"{response.text}\n{case.as_curl_command(headers=AUTH)}"

    call()
