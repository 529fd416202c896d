"""The audit trail, read-only mode (refused by the auth gate), and life without a result backend or a broker."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.fleet import USER, Fleet
from support.processes import MonitorProcess, RedisServer, free_port, new_monitor

READ_ONLY = "Read-only mode: control actions are disabled (--read_only)"
MUTATING = [
    "/api/worker/shutdown/w@h", "/api/worker/pool/restart/w@h", "/api/worker/pool/grow/w@h?n=1",
    "/api/worker/pool/shrink/w@h?n=1", "/api/worker/pool/autoscale/w@h?min=1&max=2",
    "/api/worker/queue/add-consumer/w@h?queue=q", "/api/worker/queue/cancel-consumer/w@h?queue=q",
    "/api/task/apply/tests.add", "/api/task/async-apply/tests.add", "/api/task/send-task/tests.add",
    "/api/task/abort/some-id", "/api/task/revoke/some-id", "/api/task/timeout/tests.add?soft=1",
    "/api/task/rate-limit/tests.add?ratelimit=1", "/api/task/rerun/some-id", "/api/tasks/revoke?taskname=x",
    "/api/failures/rerun?name=x&exception=E", "/api/failures/revoke?name=x&exception=E",
]


def test_control_actions_are_audited_newest_first(fleet: Fleet) -> None:
    name = fleet.plain.hostname
    assert fleet.post(f"/api/worker/pool/grow/{name}?n=abc").status_code == 400
    assert fleet.post(f"/api/worker/pool/autoscale/{name}?min=1&max=3").status_code == 403

    page = fleet.monitor.json("/api/audit?limit=2")
    assert page["total"] >= 2
    newest, previous = page["entries"]
    assert newest["id"] > previous["id"]
    assert newest["time"] >= previous["time"]
    assert (newest["user"], newest["action"], newest["target"], newest["status"], newest["ok"]) == (
        USER[0], "worker.pool_autoscale", name, 403, False)
    assert newest["params"] == {"min": "1", "max": "3"}
    assert newest["result"]["error"].endswith("Autoscale not enabled")
    assert (previous["action"], previous["status"], previous["params"]) == ("worker.pool_grow", 400, {"n": "abc"})

    second = fleet.monitor.json("/api/audit?limit=1&offset=1")["entries"]
    assert [e["id"] for e in second] == [previous["id"]]
    only_autoscale = fleet.monitor.json("/api/audit?action=worker.pool_autoscale")["entries"]
    assert {e["action"] for e in only_autoscale} == {"worker.pool_autoscale"}


def test_a_successful_action_is_audited_with_its_result(fleet: Fleet) -> None:
    response = fleet.post("/api/task/send-task/tests.add", json={"args": [3, 4]})
    task_id = response.json()["task-id"]
    entry = fleet.monitor.json("/api/audit?limit=1")["entries"][0]
    assert (entry["action"], entry["target"], entry["status"], entry["ok"]) == ("task.send_task", "tests.add", 200,
                                                                                 True)
    assert entry["params"] == {"args": [3, 4]}
    assert entry["result"]["task-id"] == task_id


def test_audit_filters_by_target_and_time(fleet: Fleet) -> None:
    target = f"nobody-{fleet.kind}@nowhere"
    assert fleet.post(f"/api/worker/shutdown/{target}").status_code == 404
    entry = fleet.monitor.json(f"/api/audit?target={target}")["entries"][0]
    assert (entry["action"], entry["target"], entry["status"]) == ("worker.shutdown", target, 404)
    assert fleet.monitor.json(f"/api/audit?target={target}&action=task.revoke")["total"] == 0
    since, until = entry["time"] - 0.001, entry["time"] + 0.001
    assert fleet.monitor.json(f"/api/audit?target={target}&since={since}&until={until}")["total"] == 1
    assert fleet.monitor.json(f"/api/audit?target={target}&since={until}")["total"] == 0
    page = fleet.monitor.json(f"/ui/audit.json?target={target}")
    assert page["entries"] == [entry]
    assert "worker.shutdown" in page["facets"]["action"] and USER[0] in page["facets"]["user"]
    assert fleet.monitor.get("/api/audit?since=yesterday").status_code == 400
    assert fleet.monitor.get("/api/audit?target=" + "x" * 9000).status_code == 400


def test_audit_needs_a_login(fleet: Fleet) -> None:
    import httpx

    assert httpx.get(f"{fleet.monitor.url}/api/audit").status_code == 401


def test_audit_bad_paging_is_400(fleet: Fleet) -> None:
    assert fleet.monitor.get("/api/audit?limit=0").status_code == 400
    assert fleet.monitor.get("/api/audit?offset=-1").status_code == 400


@pytest.fixture(scope="module")
def bystanders(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        dict[str, MonitorProcess]]:
    """Monitors without workers: read-only on a live broker (no result backend), and two on dead brokers."""
    dead = free_port()
    monitors = {
        "read_only": new_monitor(f"redis://127.0.0.1:{redis_server.port}/5", tmp_path_factory.mktemp("ro"),
                                 "--read_only"),
        "dead_redis": new_monitor(f"redis://127.0.0.1:{dead}/0", tmp_path_factory.mktemp("dead-redis")),
        "dead_amqp": new_monitor(f"amqp://guest:guest@127.0.0.1:{dead}//", tmp_path_factory.mktemp("dead-amqp"),
                                 f"--result_backend=redis://127.0.0.1:{redis_server.port}/6"),
    }
    with ThreadPoolExecutor(len(monitors)) as pool:
        try:
            list(pool.map(lambda item: item[1].start(timeout=60, wait_connected=item[0] == "read_only"),
                          monitors.items()))
            yield monitors
        finally:
            list(pool.map(MonitorProcess.stop, monitors.values()))


@pytest.mark.parametrize("path", MUTATING)
def test_read_only_refuses_every_mutating_endpoint(bystanders: dict[str, MonitorProcess], path: str) -> None:
    response = bystanders["read_only"].client.post(path, json={})
    assert response.status_code == 403
    assert response.json()["error"].startswith("Read-only")


def test_a_read_only_instance_shows_the_audit_trail(bystanders: dict[str, MonitorProcess]) -> None:
    monitor = bystanders["read_only"]
    assert monitor.json("/api/audit")["total"] >= 0
    page = monitor.get("/audit")
    assert page.status_code == 200 and 'data-page="audit"' in page.text


def test_result_without_a_backend_is_503(bystanders: dict[str, MonitorProcess]) -> None:
    result = bystanders["read_only"].get("/api/task/result/some-id")
    assert result.status_code == 503
    assert result.json() == {"error": "Result backend is not configured"}


def test_the_audit_trail_survives_a_restart(bystanders: dict[str, MonitorProcess]) -> None:
    monitor = bystanders["dead_redis"]
    assert monitor.client.post("/api/worker/shutdown/someone@somewhere").status_code == 404
    before = monitor.json("/api/audit?limit=1")["entries"][0]
    assert (before["user"], before["action"], before["target"], before["status"]) == (
        "anonymous", "worker.shutdown", "someone@somewhere", 404)

    monitor.stop()
    monitor.start(timeout=60, wait_connected=False)
    assert monitor.json("/api/audit?limit=1")["entries"][0] == before


@pytest.mark.parametrize("kind", ["dead_redis", "dead_amqp"])
def test_broker_unavailable_is_503(bystanders: dict[str, MonitorProcess], kind: str) -> None:
    monitor = bystanders[kind]
    for path in ("/api/task/send-task/tests.add", "/api/task/revoke/some-id", "/api/task/timeout/tests.add?soft=1"):
        response = monitor.client.post(path, json={})
        assert response.status_code == 503, (path, response.text)
        assert response.json()["error"].startswith("Broker unavailable"), path


def test_no_result_backend_is_503(bystanders: dict[str, MonitorProcess]) -> None:
    monitor = bystanders["dead_redis"]
    for path in ("/api/task/apply/tests.add", "/api/task/abort/some-id"):
        response = monitor.client.post(path, json={"args": [1, 2]})
        assert response.status_code == 503, (path, response.text)
        assert response.json() == {"error": "Result backend is not configured"}


