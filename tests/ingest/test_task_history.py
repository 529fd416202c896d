"""Real tasks on a real prefork worker, on Redis and on RabbitMQ: what the API says about them."""

from __future__ import annotations

import time
from typing import Any

from celery import chain
from support.client import celery_client
from support.processes import wait_for


def task_in_state(cluster: Any, task_id: str, state: str) -> dict[str, Any]:
    def info() -> dict[str, Any] | None:
        response = cluster.monitor.get(f"/api/task/info/{task_id}")
        if response.status_code == 200 and response.json()["state"] == state:
            return response.json()
        return None

    return wait_for(info, 20, message=f"task {task_id} in state {state}")


def test_successful_task_has_every_field(cluster: Any) -> None:
    with celery_client(cluster.broker, cluster.backend) as app:
        result = app.send_task("tests.add", args=(2, 3))
        assert result.get(timeout=20) == 5
    info = task_in_state(cluster, result.id, "SUCCESS")
    assert info["task-id"] == info["uuid"] == result.id
    assert info["name"] == "tests.add"
    assert info["args"] == "(2, 3)" or info["args"] == "[2, 3]"
    assert info["result"] == "5"
    assert info["worker"] == cluster.worker.hostname
    assert info["received"] <= info["started"] <= info["succeeded"]
    assert info["runtime"] > 0
    # In time order, but for task-sent: the client stamps it once it has published the task, so a
    # worker on a fast broker can stamp task-received first. Applied before the task finished, the
    # send is shown first all the same (task_events._sent_before); applied later, in time order.
    states = [t[0] for t in info["transitions"]]
    stamps = [stamp for state, stamp, *_ in info["transitions"] if state != "PENDING"]
    assert stamps == sorted(stamps)
    assert set(states[:2]) == {"PENDING", "RECEIVED"} and states[2:] == ["STARTED", "SUCCESS"]
    for field in ("exception", "traceback", "eta", "expires", "retries", "exchange", "routing_key", "clock",
                  "timestamp", "root_id", "parent_id", "children", "client", "sent", "failed", "revoked"):
        assert field in info


def test_failed_task_keeps_exception_and_traceback(cluster: Any) -> None:
    with celery_client(cluster.broker, cluster.backend) as app:
        result = app.send_task("tests.fail", args=("disk full",))
    info = task_in_state(cluster, result.id, "FAILURE")
    assert info["exception"] == "ValueError('disk full')"
    assert "Traceback (most recent call last)" in info["traceback"]
    assert "ValueError: disk full" in info["traceback"]
    assert info["failed"] is not None


def test_retried_task_shows_retry_then_success(cluster: Any) -> None:
    with celery_client(cluster.broker, cluster.backend) as app:
        result = app.send_task("tests.flaky", args=(1,))
    info = task_in_state(cluster, result.id, "SUCCESS")
    states = [t[0] for t in info["transitions"]]
    assert "RETRY" in states and states.index("RETRY") < states.index("SUCCESS")
    assert info["retried"] is not None
    assert info["retries"] == 1
    assert info["result"] == "'ok after 1 retries'"


def test_countdown_task_keeps_its_eta(cluster: Any) -> None:
    with celery_client(cluster.broker, cluster.backend) as app:
        result = app.send_task("tests.add", args=(1, 1), countdown=1)
    received = task_in_state(cluster, result.id, "RECEIVED")
    assert received["eta"]
    done = task_in_state(cluster, result.id, "SUCCESS")
    assert done["started"] >= done["received"] + 0.5


def test_revoked_task_ends_revoked(cluster: Any) -> None:
    with celery_client(cluster.broker, cluster.backend) as app:
        result = app.send_task("tests.sleep", args=(30,))
        task_in_state(cluster, result.id, "STARTED")
        app.control.revoke(result.id, terminate=True, signal="SIGKILL")
    info = task_in_state(cluster, result.id, "REVOKED")
    assert info["revoked"] is not None


def test_chain_links_parent_and_children(cluster: Any) -> None:
    with celery_client(cluster.broker, cluster.backend) as app:
        result = chain(app.signature("tests.add", args=(1, 2)), app.signature("tests.add", args=(10,))).apply_async()
        assert result.get(timeout=20) == 13
        child_id, parent_id = result.id, result.parent.id
    child = task_in_state(cluster, child_id, "SUCCESS")
    assert child["parent_id"] == parent_id
    assert child["root_id"] == parent_id
    parent = wait_for(lambda: (p := cluster.monitor.json(f"/api/task/info/{parent_id}"))["children"] and p, 10,
                      message="parent lists its child")
    assert parent["children"] == [child_id]


def test_task_list_filters_sort_and_search(cluster: Any) -> None:
    marker = f"needle{int(time.time() * 1000)}"
    with celery_client(cluster.broker, cluster.backend) as app:
        ok = app.send_task("tests.echo", args=(marker, 1), kwargs={"tag": marker})
        bad = app.send_task("tests.fail", args=(marker,))
        ok.get(timeout=20)
    task_in_state(cluster, bad.id, "FAILURE")
    monitor = cluster.monitor

    # Lists come from the history, written at most one flush interval (0.5 s) after the events:
    # wait until it holds both tasks in their final states.
    def stored_final() -> bool:
        listed = monitor.json("/api/tasks", params={"search": marker})
        return {t: listed[t]["state"] for t in listed} == {ok.id: "SUCCESS", bad.id: "FAILURE"}

    wait_for(stored_final, 5, message="both tasks listed in their final states")
    assert set(monitor.json("/api/tasks", params={"search": f"args:{marker} state:FAILURE"})) == {bad.id}
    assert set(monitor.json("/api/tasks", params={"search": f"kwargs:tag={marker}"})) == {ok.id}
    assert set(monitor.json("/api/tasks", params={"search": f"result:{marker}"})) == {ok.id}
    by_name = monitor.json("/api/tasks", params={"taskname": "tests.echo", "search": marker})
    assert list(by_name) == [ok.id]
    by_state = monitor.json("/api/tasks", params={"state": "FAILURE", "limit": 1000})
    assert bad.id in by_state and ok.id not in by_state
    by_worker = monitor.json("/api/tasks", params={"workername": cluster.worker.hostname, "search": marker})
    assert set(by_worker) == {ok.id, bad.id}
    assert monitor.json("/api/tasks", params={"workername": "nobody@nowhere", "search": marker}) == {}

    page = monitor.json("/api/tasks", params={"limit": 1, "sort_by": "-received", "search": marker})
    assert len(page) == 1
    newest_first = list(monitor.json("/api/tasks", params={"sort_by": "-received", "search": marker}))
    oldest_first = list(monitor.json("/api/tasks", params={"sort_by": "received", "search": marker}))
    assert newest_first == oldest_first[::-1]
    assert list(monitor.json("/api/tasks", params={"limit": 1, "offset": 1, "sort_by": "received",
                                                   "search": marker})) == oldest_first[1:2]
    future = "2999-01-01 00:00"
    assert monitor.json("/api/tasks", params={"received_start": future}) == {}
    assert set(monitor.json("/api/tasks", params={"received_end": future, "search": marker})) == {ok.id, bad.id}

    types = monitor.json("/api/task/types")["task-types"]
    assert {"tests.echo", "tests.fail"} <= set(types)


def test_workers_endpoint_has_inspect_details_and_status(cluster: Any) -> None:
    monitor, hostname = cluster.monitor, cluster.worker.hostname
    workers = wait_for(lambda: (w := monitor.json("/api/workers?refresh=1")).get(hostname, {}).get("stats") and w,
                       20, message="inspect details of the worker")
    details = workers[hostname]
    assert details["stats"]["pool"]["max-concurrency"] == 2
    assert "tests.add" in details["registered"]
    assert any(q["name"] == "celery" for q in details["active_queues"])
    assert details["status"] is True and details["timestamp"] > 0
    assert details["freshness"]["age"] >= 0 and details["freshness"]["inspected_at"] == details["timestamp"]
    assert monitor.json("/api/workers", params={"status": "true"}) [hostname] is True
    one = monitor.json("/api/workers", params={"workername": hostname})
    assert list(one) == [hostname]
    assert monitor.get("/api/workers", params={"workername": "ghost@nowhere"}).status_code == 404
