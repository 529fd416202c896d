"""Worker controls on real prefork workers: the worker's own state must change, errors keep their codes."""

from __future__ import annotations

import pytest
from support.client import celery_client
from support.fleet import Fleet
from support.processes import start_worker, wait_for

from celery_monitor.inspector.inspector import METHODS, Inspector


def pool_size(fleet: Fleet, worker: str) -> int:
    return len(fleet.inspect(worker, "stats")["pool"]["processes"])


def pool_pids(fleet: Fleet, worker: str) -> set[int]:
    return set(fleet.inspect(worker, "stats")["pool"]["processes"])


def consumed_queues(fleet: Fleet, worker: str) -> set[str]:
    return {queue["name"] for queue in fleet.inspect(worker, "active_queues")}


def test_grow_then_shrink_changes_the_pool_size(fleet: Fleet) -> None:
    name = fleet.plain.hostname
    before = pool_size(fleet, name)

    response = fleet.post(f"/api/worker/pool/grow/{name}?n=1")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": f"Growing '{name}' worker's pool by 1"}
    wait_for(lambda: pool_size(fleet, name) == before + 1, 15, message="the pool grown by one")
    # The monitor re-inspects a worker it changed: its cached details follow without ?refresh=1.
    wait_for(lambda: len(fleet.monitor.json(f"/api/workers?workername={name}")[name]["stats"]["pool"]["processes"])
             == before + 1, 15, message="the monitor's cached details showing the grown pool")

    response = fleet.post(f"/api/worker/pool/shrink/{name}", data={"n": "1"})
    assert response.status_code == 200, response.text
    assert response.json() == {"message": f"Shrinking '{name}' worker's pool by 1"}
    wait_for(lambda: pool_size(fleet, name) == before, 15, message="the pool back to its size")


def test_grow_on_an_autoscaling_worker_is_refused_with_its_reason(fleet: Fleet) -> None:
    response = fleet.post(f"/api/worker/pool/grow/{fleet.auto.hostname}?n=2")
    assert response.status_code == 403
    assert "not supported with autoscale" in response.json()["error"]


def test_autoscale_sets_the_workers_range(fleet: Fleet) -> None:
    name = fleet.auto.hostname
    response = fleet.post(f"/api/worker/pool/autoscale/{name}?min=2&max=4")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": f"Autoscaling '{name}' worker (min=2, max=4)"}
    autoscaler = wait_for(lambda: (a := fleet.inspect(name, "stats").get("autoscaler")) and a["max"] == 4 and a,
                          15, message="the autoscaler's new range in stats")
    assert autoscaler["min"] == 2


def test_autoscale_without_an_autoscaler_is_refused(fleet: Fleet) -> None:
    response = fleet.post(f"/api/worker/pool/autoscale/{fleet.plain.hostname}?min=1&max=3")
    assert response.status_code == 403
    assert response.json()["error"].endswith(": Autoscale not enabled")


def test_pool_restart_replaces_the_pool_processes(fleet: Fleet) -> None:
    name = fleet.plain.hostname
    before = pool_pids(fleet, name)
    response = fleet.post(f"/api/worker/pool/restart/{name}")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": f"Restarting '{name}' worker's pool"}
    # Idle processes leave at their next poll and are replaced (one may wait on the queue lock longer).
    wait_for(lambda: pool_pids(fleet, name) - before, 20, message="new pool processes after the restart")


def test_pool_restart_not_enabled_is_refused_with_its_reason(fleet: Fleet) -> None:
    response = fleet.post(f"/api/worker/pool/restart/{fleet.auto.hostname}")
    assert response.status_code == 403
    assert response.json() == {"error": f"Failed to restart the '{fleet.auto.hostname}' pool: "
                                        "Pool restarts not enabled"}


def test_add_and_cancel_consumer_change_the_consumed_queues(fleet: Fleet) -> None:
    name, queue = fleet.plain.hostname, f"ctl-extra-{fleet.kind}"
    assert queue not in consumed_queues(fleet, name)

    response = fleet.post(f"/api/worker/queue/add-consumer/{name}?queue={queue}")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": f"add consumer {queue}"}
    wait_for(lambda: queue in consumed_queues(fleet, name), 15, message=f"{queue} consumed")

    response = fleet.post(f"/api/worker/queue/cancel-consumer/{name}", json={"queue": queue})
    assert response.status_code == 200, response.text
    assert response.json() == {"message": f"no longer consuming from {queue}"}
    wait_for(lambda: queue not in consumed_queues(fleet, name), 15, message=f"{queue} no longer consumed")
    assert fleet.second_queue in consumed_queues(fleet, name)


WORKER_PATHS = [
    "/api/worker/shutdown/{}", "/api/worker/pool/restart/{}", "/api/worker/pool/grow/{}?n=1",
    "/api/worker/pool/shrink/{}?n=1", "/api/worker/pool/autoscale/{}?min=1&max=2",
    "/api/worker/queue/add-consumer/{}?queue=q", "/api/worker/queue/cancel-consumer/{}?queue=q",
]


@pytest.mark.parametrize("path", WORKER_PATHS)
def test_unknown_worker_is_404(fleet: Fleet, path: str) -> None:
    response = fleet.post(path.format("nobody@nowhere"))
    assert response.status_code == 404
    assert response.json() == {"error": "Unknown worker 'nobody@nowhere'"}


@pytest.mark.parametrize(("path", "error"), [
    ("/api/worker/pool/grow/{}?n=abc", "Invalid 'n': 'abc' is not an integer"),
    ("/api/worker/pool/shrink/{}?n=0", "Invalid 'n': 0 (must be at least 1)"),
    ("/api/worker/pool/autoscale/{}?min=5&max=2", "Invalid autoscale range: min=5 is greater than max=2"),
    ("/api/worker/pool/autoscale/{}?min=1", "Missing 'min' or 'max'"),
    ("/api/worker/queue/add-consumer/{}", "Missing 'queue'"),
    ("/api/worker/queue/cancel-consumer/{}?queue=", "Missing 'queue'"),
])
def test_malformed_parameters_are_400(fleet: Fleet, path: str, error: str) -> None:
    response = fleet.post(path.format(fleet.plain.hostname))
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_malformed_json_body_is_400(fleet: Fleet) -> None:
    response = fleet.post(f"/api/worker/pool/grow/{fleet.plain.hostname}", content=b"{n: 1",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid JSON body")


def test_shutdown_stops_the_worker_process(fleet: Fleet) -> None:
    victim = fleet.victim
    response = fleet.post(f"/api/worker/shutdown/{victim.hostname}")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Shutting down!"}
    wait_for(lambda: victim.process.poll() is not None, 20, message="the worker process to exit")
    assert victim.process.returncode == 0

    # Still known to the monitor, but nobody answers any more.
    response = fleet.post(f"/api/worker/pool/grow/{victim.hostname}")
    assert response.status_code == 504
    assert response.json() == {"error": f"Worker '{victim.hostname}' did not reply within 1 s"}


def test_inspector_freshness_per_worker(fleet: Fleet) -> None:
    with celery_client(fleet.broker, fleet.backend) as app:
        inspector = Inspector(app, timeout=1.0)
        try:
            name = fleet.plain.hostname
            inspector.refresh(name).result(timeout=20)
            fresh = inspector.freshness(name)[name]
            assert fresh["age"] < 10
            assert set(fresh["methods"]) == set(METHODS)
            assert fresh["missed_refreshes"] == 0
            assert inspector.freshness("nobody@nowhere") == {}
        finally:
            inspector.stop()


def test_a_worker_started_later_gets_its_details_without_a_refresh(fleet: Fleet) -> None:
    late = start_worker(fleet.broker, f"ctl-late-{fleet.kind}", fleet.tmp, "-Q", f"ctl-late-{fleet.kind}",
                        backend=fleet.backend)
    try:
        details = wait_for(lambda: fleet.monitor.json("/api/workers").get(late.hostname, {}).get("stats"), 40,
                           message="the late worker's details in the monitor")
        assert details["pool"]["max-concurrency"] == 2
    finally:
        late.stop()
