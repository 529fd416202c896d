"""Beyond Flower: revoke every queued task matching a filter (dry run first), re-run a task with
exactly the arguments it was sent with."""

from __future__ import annotations

import datetime
import uuid

from celery import Celery
from support.client import celery_client
from support.fleet import Fleet
from support.processes import wait_for


def defaults_client(fleet: Fleet) -> Celery:
    """A sender with Celery's defaults: no task-sent events, so the monitor hears of nothing queued."""
    app = Celery("defaults", broker=fleet.broker, backend=fleet.backend, set_as_current=False)
    app.conf.broker_connection_retry_on_startup = True
    return app


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
    assert (dry.json()["count"], dry.json()["in_history"]) == (3, 3)
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


def test_bulk_revoke_finds_a_backlog_sent_with_celery_defaults(fleet: Fleet) -> None:
    """No task-sent events: the history knows nothing, the broker's queue has it all."""
    parked = f"ctl-backlog-{fleet.kind}-{uuid.uuid4().hex[:6]}"
    marker = uuid.uuid4().hex
    app = defaults_client(fleet)
    try:
        bad = [app.send_task("tests.echo", [marker, i], queue=parked).id for i in range(4)]
        good = app.send_task("tests.add", [2, 2], queue=parked).id
    finally:
        app.close()
    assert fleet.monitor.json(f"/api/tasks?search={marker}") == {}, "no event told the monitor of them"
    listed = fleet.monitor.json(f"/api/queues/{parked}/tasks")
    assert listed["total"] == 5
    assert [t["uuid"] for t in listed["tasks"]] == [*bad, good], "the queue as workers will take it"

    query = f"queue={parked}&taskname=tests.echo&search={marker}"
    dry = fleet.post(f"/api/tasks/revoke?{query}&dry_run=true").json()
    assert (dry["count"], dry["in_history"], dry["queued"]) == (4, 0, 4), dry
    assert sorted(dry["sample"]) == sorted(bad)
    assert dry["queues"] == [{"cluster": "default", "name": parked, "messages": 5, "scanned": 5, "matched": 4,
                              "complete": True, "error": None}]
    assert fleet.monitor.json(f"/api/queues/{parked}/tasks")["total"] == 5, "counting took nothing from the queue"

    done = fleet.post(f"/api/tasks/revoke?{query}")
    assert done.status_code == 200, done.text
    assert sorted(done.json()["task-ids"]) == sorted(bad)
    assert done.json()["workers"] >= 1

    assert fleet.post(f"/api/worker/queue/add-consumer/{fleet.plain.hostname}?queue={parked}").status_code == 200
    try:
        wait_for(lambda: fleet.task_state(good) == "SUCCESS", 20, message="the unmatched task run")
        wait_for(lambda: all(fleet.task_state(t) == "REVOKED" for t in bad), 20, message="none of the four run")
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


def test_rerun_sends_exactly_the_arguments_from_the_result_backend(fleet: Fleet) -> None:
    """The workers keep args in the backend (result_extended): a long string Celery's argsrepr cuts,
    and a datetime argsrepr shows as a call, are sent again as they were."""
    args = [f"boom-{uuid.uuid4().hex[:6]}" + "x" * 2000, datetime.datetime(2024, 1, 2, 3, 4, 5)]
    with celery_client(fleet.broker, fleet.backend) as app:
        failed = app.send_task("tests.fail", args).id
        wait_for(lambda: fleet.task_state(failed) == "FAILURE", 20, message="the task failed")
        assert "..." in fleet.task(failed)["args"], "the events carry a cut argsrepr"  # type: ignore[index]

        check = fleet.monitor.json(f"/api/task/rerun/{failed}")
        assert (check["rerunnable"], check["args-from"]) == (True, "result-backend")
        response = fleet.post(f"/api/task/rerun/{failed}")
        assert response.status_code == 200, response.text
        rerun = response.json()["task-id"]
        assert (response.json()["rerun-of"], response.json()["args-from"]) == (failed, "result-backend")
        wait_for(lambda: fleet.task_state(rerun) == "FAILURE", 20, message="the re-run failed the same way")
        assert app.AsyncResult(rerun).args == args


def test_rerun_of_a_queued_task_takes_its_message(fleet: Fleet) -> None:
    parked = f"ctl-rerun-{fleet.kind}-{uuid.uuid4().hex[:6]}"
    with celery_client(fleet.broker, fleet.backend) as app:
        waiting = app.send_task("tests.echo", ["y" * 1500], kwargs={"when": datetime.date(2024, 5, 6)},
                                queue=parked).id
    wait_for(lambda: fleet.task_state(waiting) == "PENDING", 15, message="the queued task known")

    assert fleet.post(f"/api/task/rerun/{waiting}").status_code == 409, "an unfinished task needs force"
    response = fleet.post(f"/api/task/rerun/{waiting}?force=true")
    assert response.status_code == 200, response.text
    assert response.json()["args-from"] == "queued-message"
    tasks = fleet.monitor.json(f"/api/queues/{parked}/tasks")["tasks"]
    assert [t["uuid"] for t in tasks] == [waiting, response.json()["task-id"]]
    assert tasks[0]["args"] == tasks[1]["args"] and tasks[0]["kwargs"] == tasks[1]["kwargs"]


def test_rerun_refusals(fleet: Fleet) -> None:
    assert fleet.post(f"/api/task/rerun/{uuid.uuid4()}").status_code == 404
    assert fleet.monitor.get(f"/api/task/rerun/{uuid.uuid4()}").status_code == 404

    succeeded = fleet.post("/api/task/apply/tests.add", json={"args": [2, 2]}).json()["task-id"]
    wait_for(lambda: fleet.task_state(succeeded) == "SUCCESS", 20, message="the task in the history")
    response = fleet.post(f"/api/task/rerun/{succeeded}")
    assert response.status_code == 409
    assert "pass force=true" in response.json()["error"]
    assert fleet.post(f"/api/task/rerun/{succeeded}?force=true").status_code == 200

    # Its record gone from the result backend (as after result_expires), nothing holds its arguments.
    with celery_client(fleet.broker, fleet.backend) as app:
        failed = app.send_task("tests.fail", ["z" * 2000]).id
        wait_for(lambda: fleet.task_state(failed) == "FAILURE", 20, message="the task failed")
        app.AsyncResult(failed).forget()
    response = fleet.post(f"/api/task/rerun/{failed}")
    assert response.status_code == 409
    reason = response.json()["error"]
    assert "no exact copy of its arguments" in reason and "no record of it" in reason and "cut short" in reason
    check = fleet.monitor.json(f"/api/task/rerun/{failed}")
    assert (check["rerunnable"], check["reason"]) == (False, reason)
    assert fleet.monitor.json("/api/audit?limit=1&action=task.rerun")["entries"][0]["status"] == 409
