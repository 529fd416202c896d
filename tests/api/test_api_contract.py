"""Status codes and errors of the read API: 400 for bad parameters, 404 for unknown ids, 401 without auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from support.processes import new_monitor


@pytest.mark.parametrize(("path", "needle"), [
    ("/api/tasks?limit=ten", "Invalid 'limit'"),
    ("/api/tasks?limit=-1", "Invalid 'limit'"),
    ("/api/tasks?offset=x", "Invalid 'offset'"),
    ("/api/tasks?offset=99999999999999999999", "Invalid 'offset'"),
    ("/api/tasks?sort_by=colour", "Invalid 'sort_by'"),
    ("/api/tasks?received_start=yesterday", "Invalid 'received_start'"),
    ("/api/tasks?received_end=2024-13-45", "Invalid 'received_end'"),
    ("/api/workers?refresh=perhaps", "Invalid 'refresh'"),
    ("/api/workers?status=2", "Invalid 'status'"),
])
def test_bad_parameters_are_400_with_a_reason(cluster: Any, path: str, needle: str) -> None:
    response = cluster.monitor.get(path)
    assert response.status_code == 400
    assert needle in response.json()["error"]


def test_unknown_ids_are_404(cluster: Any) -> None:
    response = cluster.monitor.get("/api/task/info/no-such-task")
    assert response.status_code == 404
    assert response.json() == {"error": "Unknown task 'no-such-task'"}
    assert cluster.monitor.get("/api/workers?workername=ghost@nowhere").status_code == 404
    assert cluster.monitor.get("/api/nothing-here").status_code == 404


def test_healthcheck_and_metrics_answer_without_auth(cluster: Any) -> None:
    base = cluster.monitor.url
    assert httpx.get(f"{base}/healthcheck").text == "OK"
    body = httpx.get(f"{base}/metrics").text
    for family in ("flower_events_total", "flower_task_runtime_seconds", "flower_task_prefetch_time_seconds",
                   "flower_worker_prefetched_tasks", "flower_worker_online",
                   "flower_worker_number_of_currently_executing_tasks"):
        assert f"# TYPE {family.removesuffix('_total')}" in body


def test_api_is_refused_without_configured_auth(redis_server: Any, tmp_path: Path) -> None:
    monitor = new_monitor(redis_server.url, tmp_path)
    monitor.args.remove("--unauthenticated_api")
    monitor.start(wait_connected=False)
    try:
        response = monitor.get("/api/tasks")
        assert response.status_code == 401
        assert "--unauthenticated_api" in response.json()["error"]
        assert monitor.get("/healthcheck").status_code == 200
    finally:
        monitor.stop()


def test_basic_auth_guards_the_api(redis_server: Any, tmp_path: Path) -> None:
    monitor = new_monitor(redis_server.url, tmp_path, auth=("ops", "s3cret:with:colons")).start()
    try:
        assert monitor.get("/api/tasks").status_code == 200
        anonymous = httpx.get(f"{monitor.url}/api/tasks")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        for auth in (("ops", "wrong"), ("OPS", "s3cret:with:colons"), ("ops", "s3cret")):
            assert httpx.get(f"{monitor.url}/api/tasks", auth=auth).status_code == 401
        assert httpx.get(f"{monitor.url}/api/tasks", headers={"Authorization": "Basic !!!"}).status_code == 401
        assert httpx.get(f"{monitor.url}/healthcheck").status_code == 200
        assert "s3cret" not in monitor.log.read_text()
    finally:
        monitor.stop()


def test_url_prefix_serves_everything_under_it(redis_server: Any, tmp_path: Path) -> None:
    monitor = new_monitor(redis_server.url, tmp_path, "--url_prefix=flower", prefix="/flower").start()
    try:
        assert monitor.get("/api/tasks").status_code == 200
        assert monitor.get("/healthcheck").text == "OK"
        root = httpx.get(f"http://127.0.0.1:{monitor.port}/api/tasks")
        assert root.status_code == 404
    finally:
        monitor.stop()
