"""Running, reading, stopping and limiting tasks through the monitor, on real workers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from support.fleet import Fleet
from support.processes import wait_for


def test_apply_waits_for_the_result(fleet: Fleet) -> None:
    response = fleet.post("/api/task/apply/tests.add", json={"args": [1, 2]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "SUCCESS"
    assert body["result"] == 3
    uuid.UUID(body["task-id"])


def test_apply_reports_a_failure_with_its_traceback(fleet: Fleet) -> None:
    body = fleet.post("/api/task/apply/tests.fail", json={"kwargs": {"message": "boom"}}).json()
    assert body["state"] == "FAILURE"
    assert "boom" in body["result"]
    assert "ValueError" in body["traceback"]


def test_async_apply_then_result(fleet: Fleet) -> None:
    response = fleet.post("/api/task/async-apply/tests.add", json={"args": [2, 5], "countdown": 0.1})
    assert response.status_code == 200, response.text
    task_id = response.json()["task-id"]
    assert response.json()["state"] in ("PENDING", "SUCCESS")
    result = fleet.monitor.json(f"/api/task/result/{task_id}?timeout=15")
    assert result == {"task-id": task_id, "state": "SUCCESS", "result": 7}


def test_send_task_with_a_form_body_and_options(fleet: Fleet) -> None:
    response = fleet.post("/api/task/send-task/tests.echo",
                          data={"args": "[1]", "kwargs": '{"k": "v"}', "queue": fleet.second_queue})
    assert response.status_code == 200, response.text
    task_id = response.json()["task-id"]
    result = fleet.monitor.json(f"/api/task/result/{task_id}?timeout=15")
    assert result["result"] == {"args": [1], "kwargs": {"k": "v"}}
    task = wait_for(lambda: fleet.task(task_id), 10, message="the task in the history")
    assert task["worker"] == fleet.plain.hostname


def test_result_of_an_unfinished_task_is_pending_without_result(fleet: Fleet) -> None:
    task_id = str(uuid.uuid4())
    assert fleet.monitor.json(f"/api/task/result/{task_id}") == {"task-id": task_id, "state": "PENDING"}


def test_revoke_terminate_stops_a_running_task(fleet: Fleet) -> None:
    task_id = fleet.post("/api/task/async-apply/tests.sleep", json={"args": [60]}).json()["task-id"]
    wait_for(lambda: fleet.task_state(task_id) == "STARTED", 20, message="the long task started")
    response = fleet.post(f"/api/task/revoke/{task_id}?terminate=true&signal=SIGKILL")
    assert response.status_code == 200, response.text
    assert response.json()["message"] == f"Revoked '{task_id}'"
    wait_for(lambda: fleet.task_state(task_id) == "REVOKED", 20, message="the task REVOKED")


def test_revoke_before_delivery_discards_the_task(fleet: Fleet) -> None:
    task_id = str(uuid.uuid4())
    response = fleet.post(f"/api/task/revoke/{task_id}")
    assert response.status_code == 200, response.text
    fleet.post("/api/task/async-apply/tests.add", json={"args": [1, 1], "task_id": task_id})
    wait_for(lambda: fleet.task_state(task_id) == "REVOKED", 20, message="the revoked task discarded")


def test_abort_asks_an_abortable_task_to_stop(fleet: Fleet) -> None:
    task_id = fleet.post("/api/task/async-apply/tests.abortable", json={"args": [60]}).json()["task-id"]
    wait_for(lambda: fleet.task_state(task_id) == "STARTED", 20, message="the abortable task started")
    response = fleet.post(f"/api/task/abort/{task_id}")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": f"Aborted '{task_id}'"}
    result = fleet.monitor.json(f"/api/task/result/{task_id}?timeout=15")
    assert result["result"] == "aborted"


def registered_attribute(fleet: Fleet, task: str, *attributes: str) -> str:
    """What the worker itself says about attributes of a task (e.g. ``tests.echo [rate_limit=10/m]``)."""
    entries: list[str] = fleet.inspect(fleet.plain.hostname, "registered", *attributes)
    return next(e for e in entries if e.split(" ", 1)[0] == task)


def test_rate_limit_is_applied_on_the_worker(fleet: Fleet) -> None:
    response = fleet.post("/api/task/rate-limit/tests.echo",
                          data={"ratelimit": "17/m", "workername": fleet.plain.hostname})
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "new rate limit set successfully"}
    assert "rate_limit=17/m" in registered_attribute(fleet, "tests.echo", "rate_limit")


def test_time_limits_are_applied_on_the_worker(fleet: Fleet) -> None:
    response = fleet.post("/api/task/timeout/tests.echo",
                          data={"soft": "30", "hard": "100", "workername": fleet.plain.hostname})
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "time limits set successfully"}
    entry = registered_attribute(fleet, "tests.echo", "time_limit", "soft_time_limit")
    assert "time_limit=100.0" in entry
    assert "soft_time_limit=30.0" in entry


def test_rate_limit_without_a_worker_goes_to_every_worker(fleet: Fleet) -> None:
    response = fleet.post("/api/task/rate-limit/tests.add", data={"ratelimit": "100/s"})
    assert response.status_code == 200, response.text
    assert "rate_limit=100/s" in registered_attribute(fleet, "tests.add", "rate_limit")


ERRORS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("apply unknown task", "/api/task/apply/no.such.task", {"json": {}}, 404, "Unknown task 'no.such.task'"),
    ("async-apply unknown task", "/api/task/async-apply/no.such.task", {}, 404, "Unknown task 'no.such.task'"),
    ("bad JSON", "/api/task/apply/tests.add", {"content": b"{args: [1", "headers": {"content-type":
                                                "application/json"}}, 400, "Invalid JSON body"),
    ("body not an object", "/api/task/send-task/tests.add", {"json": [1, 2]}, 400, "Invalid JSON body: must be"),
    ("args not a list", "/api/task/apply/tests.add", {"json": {"args": "1, 2"}}, 400, "Invalid 'args'"),
    ("kwargs not an object", "/api/task/send-task/tests.add", {"json": {"kwargs": [1]}}, 400, "Invalid 'kwargs'"),
    ("option never passed on", "/api/task/send-task/tests.add", {"json": {"link": "tests.add"}}, 400,
     "Option 'link' may not be passed on"),
    ("bad countdown", "/api/task/async-apply/tests.add", {"json": {"countdown": "soon"}}, 400, "Invalid 'countdown'"),
    ("bad eta", "/api/task/async-apply/tests.add", {"json": {"eta": "tomorrow"}}, 400, "Invalid 'eta'"),
    ("form args not JSON", "/api/task/send-task/tests.add", {"data": {"args": "[1,"}}, 400, "Invalid 'args'"),
    ("unknown signal", "/api/task/revoke/abc?terminate=1&signal=SIGFOO", {}, 400, "Invalid 'signal'"),
    ("bad terminate", "/api/task/revoke/abc?terminate=perhaps", {}, 400, "Invalid 'terminate'"),
    ("abort unknown task", "/api/task/abort/no-such-id", {}, 404, "Unknown task 'no-such-id'"),
    ("rate limit unknown task", "/api/task/rate-limit/no.such.task", {"data": {"ratelimit": "1/s"}}, 404,
     "Unknown task 'no.such.task'"),
    ("rate limit unknown worker", "/api/task/rate-limit/tests.add",
     {"data": {"ratelimit": "1/s", "workername": "nobody@nowhere"}}, 404, "Unknown worker 'nobody@nowhere'"),
    ("bad rate limit", "/api/task/rate-limit/tests.add", {"data": {"ratelimit": "fast"}}, 400, "Invalid 'ratelimit'"),
    ("missing rate limit", "/api/task/rate-limit/tests.add", {}, 400, "Missing 'ratelimit'"),
    ("timeout unknown task", "/api/task/timeout/no.such.task", {"data": {"soft": "1"}}, 404,
     "Unknown task 'no.such.task'"),
    ("timeout unknown worker", "/api/task/timeout/tests.add", {"data": {"soft": "1", "workername": "x@y"}}, 404,
     "Unknown worker 'x@y'"),
    ("bad soft limit", "/api/task/timeout/tests.add", {"data": {"soft": "abc"}}, 400, "Invalid 'soft'"),
    ("soft above hard", "/api/task/timeout/tests.add", {"data": {"soft": "10", "hard": "5"}}, 400,
     "Invalid time limits"),
]


@pytest.mark.parametrize(("path", "kwargs", "status", "error"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_error_paths(fleet: Fleet, path: str, kwargs: dict[str, Any], status: int, error: str) -> None:
    response = fleet.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"].startswith(error)


def test_bad_result_timeout_is_400(fleet: Fleet) -> None:
    response = fleet.monitor.get(f"/api/task/result/{uuid.uuid4()}?timeout=soon")
    assert response.status_code == 400
