"""A failure group's bulk actions: a dry run counts and sends nothing, the real run re-runs (with the
exact arguments) or revokes every task of the group, and each call is in the audit trail."""

from __future__ import annotations

import uuid
from typing import Any

from support.client import celery_client
from support.fleet import Fleet
from support.processes import wait_for


def group_total(fleet: Fleet, kind: str) -> int:
    page = fleet.monitor.json("/api/failures/tasks", params={"name": "tests.fail_as", "exception": kind})
    return int(page["total"])


def audited(fleet: Fleet, action: str, kind: str) -> list[dict[str, Any]]:
    entries = fleet.monitor.json("/api/audit", params={"action": action, "limit": 100})["entries"]
    return [entry for entry in entries if kind in (entry["target"] or "")]


def test_a_group_is_re_run_and_revoked_after_a_dry_run_count(fleet: Fleet) -> None:
    kind = f"GroupFail{uuid.uuid4().hex[:8]}"  # an exception type, so a group, of this test's own
    with celery_client(fleet.broker, fleet.backend) as app:
        failed = [app.send_task("tests.fail_as", (kind, f"attempt {i}"), queue="celery").id for i in range(3)]
    wait_for(lambda: group_total(fleet, kind) == 3, 30, message="the three failures grouped")
    group = {"name": "tests.fail_as", "exception": kind}

    dry = fleet.post("/api/failures/rerun", params={**group, "dry_run": "true"})
    assert dry.status_code == 200, dry.text
    assert (dry.json()["count"], dry.json()["sample_rerunnable"]) == (3, 3)
    assert sorted(dry.json()["sample"]) == sorted(failed)

    done = fleet.post("/api/failures/rerun", params=group)
    assert done.status_code == 200, done.text
    assert (done.json()["sent"], done.json()["refused"]) == (3, 0)
    assert sorted(run["rerun-of"] for run in done.json()["reruns"]) == sorted(failed)
    # The re-runs get new ids, run with the same arguments, and fail the same way: the group doubles.
    wait_for(lambda: group_total(fleet, kind) == 6, 30, message="the re-runs failed into the group")
    rerun = fleet.task(done.json()["reruns"][0]["task-id"])
    assert rerun is not None and f"'{kind}', 'attempt " in rerun["args"]

    dry = fleet.post("/api/failures/revoke", params={**group, "dry_run": "true"})
    assert dry.status_code == 200 and dry.json()["count"] == 6, dry.text
    done = fleet.post("/api/failures/revoke", params=group)
    assert done.status_code == 200, done.text
    assert len(done.json()["task-ids"]) == 6 and done.json()["workers"] >= 1
    revoked = fleet.inspect(fleet.plain.hostname, "revoked")
    assert set(failed) <= set(revoked)

    # Every call, dry runs included, is in the audit trail with its outcome.
    reruns = audited(fleet, "failures.rerun", kind)
    assert [entry["status"] for entry in reruns] == [200, 200]
    assert reruns[0]["result"]["sent"] == 3 and reruns[1]["result"]["dry_run"] is True
    assert [entry["result"]["count"] for entry in audited(fleet, "failures.revoke", kind)] == [6, 6]


def test_an_unknown_group_is_a_404_and_recorded(fleet: Fleet) -> None:
    params = {"name": "tests.fail_as", "exception": f"Never{uuid.uuid4().hex[:8]}", "dry_run": "true"}
    response = fleet.post("/api/failures/rerun", params=params)
    assert response.status_code == 404 and response.json()["error"].startswith("No failure group")
    assert audited(fleet, "failures.rerun", params["exception"])[0]["status"] == 404
