"""Beyond Flower: revoke every queued task matching a filter (dry run first), re-run a failed task."""

from __future__ import annotations

import datetime
import uuid

from support.client import celery_client
from support.fleet import Fleet
from support.processes import wait_for


def test_bulk_revoke_of_queued_tasks_after_a_dry_run(fleet: Fleet) -> None:
    parked = f"ctl-parked-{fleet.kind}-{uuid.uuid4().hex[:6]}"
    marker = uuid.uuid4().hex
    with celery_client(fleet.broker, fleet.backend) as app:
        bad = [app.send_task("tests.echo", [marker, i], queue=parked).id for i in range(3)]
        good = app.send_task("tests.add", [1, 1], queue=parked).id
    query = f"taskname=tests.echo&search={marker}"
    wait_for(lambda: len(fleet.monitor.json(f"/api/tasks?{query}")) == 3, 15, message="the parked tasks stored")

    dry = fleet.post(f"/api/tasks/revoke?{query}&dry_run=true")
    assert dry.status_code == 200, dry.text
    assert dry.json()["count"] == 3
    assert sorted(dry.json()["sample"]) == sorted(bad)
    assert all(fleet.task_state(t) == "PENDING" for t in bad), "a dry run changes nothing"

    done = fleet.post(f"/api/tasks/revoke?{query}")
    assert done.status_code == 200, done.text
    assert done.json()["count"] == 3
    assert sorted(done.json()["task-ids"]) == sorted(bad)

    # The worker starts on the parked queue: the revoked tasks are discarded, the other one runs.
    assert fleet.post(f"/api/worker/queue/add-consumer/{fleet.plain.hostname}?queue={parked}").status_code == 200
    try:
        wait_for(lambda: all(fleet.task_state(t) == "REVOKED" for t in bad), 20, message="all three REVOKED")
        wait_for(lambda: fleet.task_state(good) == "SUCCESS", 20, message="the unmatched task run")
    finally:
        fleet.post(f"/api/worker/queue/cancel-consumer/{fleet.plain.hostname}?queue={parked}")


def test_bulk_revoke_needs_a_filter(fleet: Fleet) -> None:
    response = fleet.post("/api/tasks/revoke?dry_run=1")
    assert response.status_code == 400
    assert response.json()["error"].startswith("A bulk action needs a filter")


def test_bulk_revoke_bad_parameters_are_400(fleet: Fleet) -> None:
    assert fleet.post("/api/tasks/revoke?taskname=x&signal=NOPE").status_code == 400
    assert fleet.post("/api/tasks/revoke?taskname=x&limit=many").status_code == 400
    assert fleet.post("/api/tasks/revoke?taskname=x&dry_run=maybe").status_code == 400


def test_rerun_a_failed_task_with_its_original_arguments(fleet: Fleet) -> None:
    message = f"boom-{uuid.uuid4().hex[:6]}"
    failed = fleet.post("/api/task/async-apply/tests.fail", json={"kwargs": {"message": message}}).json()["task-id"]
    wait_for(lambda: fleet.task_state(failed) == "FAILURE", 20, message="the task failed")

    response = fleet.post(f"/api/task/rerun/{failed}")
    assert response.status_code == 200, response.text
    rerun = response.json()["task-id"]
    assert rerun != failed
    assert response.json()["rerun-of"] == failed
    task = wait_for(lambda: (t := fleet.task(rerun)) and t["state"] == "FAILURE" and t, 20,
                    message="the re-run failed the same way")
    assert message in task["kwargs"]
    assert message in task["exception"]


def test_rerun_refusals(fleet: Fleet) -> None:
    assert fleet.post(f"/api/task/rerun/{uuid.uuid4()}").status_code == 404

    succeeded = fleet.post("/api/task/apply/tests.add", json={"args": [2, 2]}).json()["task-id"]
    wait_for(lambda: fleet.task_state(succeeded) == "SUCCESS", 20, message="the task in the history")
    response = fleet.post(f"/api/task/rerun/{succeeded}")
    assert response.status_code == 409
    assert "pass force=true" in response.json()["error"]
    assert fleet.post(f"/api/task/rerun/{succeeded}?force=true").status_code == 200

    # A datetime's repr is not a Python literal: the monitor cannot rebuild the call.
    with celery_client(fleet.broker, fleet.backend) as app:
        odd = app.send_task("tests.fail", [datetime.datetime(2024, 1, 2, 3, 4)]).id
    wait_for(lambda: fleet.task_state(odd) == "FAILURE", 20, message="the task failed")
    response = fleet.post(f"/api/task/rerun/{odd}")
    assert response.status_code == 409
    assert "not Python literals" in response.json()["error"]
