"""Reconciliation and late start, applied through the applier: the rules, on a clock the test holds.

The result backend is a real Redis, written with Celery's own backend calls (what a worker does
when a task ends); the reconciler's sweep and the applier's pass are run by the test instead of
their threads. The real-cluster tests are in test_reconcile_cluster.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from support.harness import Harness
from support.processes import RedisServer

from celery_monitor.applier.settle import InspectedTask
from celery_monitor.reconciler import reconciler as reconciler_module
from celery_monitor.reconciler.late_start import inspected_tasks
from celery_monitor.states import INSPECTED, RECONCILED

FREQ = 2.0


@pytest.fixture
def backend_url(redis_server: RedisServer) -> str:
    return redis_server.url.replace("/0", "/4")


def backend_app(url: str) -> Celery:
    return Celery("reconcile-test", backend=url, set_as_current=False)


def running(harness: Harness, task_id: str, at: float, worker: str = "w1", args: str = "(1,)") -> None:
    harness.feed({"type": "task-received", "uuid": task_id, "name": "tests.job", "hostname": worker,
                  "args": args, "kwargs": "{}"}, at=at)
    harness.feed({"type": "task-started", "uuid": task_id, "hostname": worker}, at=at + 0.1)


def info(harness: Harness, task_id: str) -> dict[str, Any]:
    response = harness.get(f"/api/task/info/{task_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def reconcile(harness: Harness) -> None:
    """One full pass of the reconciler, then the applier's pass over what it handed over."""
    reconciler = harness.monitor.reconciler
    assert reconciler is not None, "a result backend is configured: the reconciler exists"
    assert reconciler.sweep(full=True)
    harness.monitor.applier.apply_facts()


def test_final_states_missed_by_a_previous_run_come_from_the_backend(tmp_path: Path, history_db: str,
                                                                     backend_url: str) -> None:
    first = Harness(tmp_path, f"--result_backend={backend_url}", db=history_db)
    t0 = time.time() - 30
    for task_id in ("done", "failed", "running", "revoked"):
        running(first, task_id, t0)
    first.flush()
    first.close()  # the monitor dies with the four tasks STARTED in its history

    backend = backend_app(backend_url).backend
    backend.store_result("done", {"answer": 42}, "SUCCESS")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        backend.mark_as_failure("failed", exc, traceback="Traceback (most recent call last):\nValueError: boom\n")
    backend.mark_as_revoked("revoked", reason="revoked")
    backend.mark_as_started("running")  # still running: not a final state, nothing to settle

    harness = Harness(tmp_path, f"--result_backend={backend_url}", db=history_db)
    try:
        harness.monitor.restore()
        reconcile(harness)
        done, failed = info(harness, "done"), info(harness, "failed")
        assert (done["state"], done["result"]) == ("SUCCESS", "{'answer': 42}")
        assert done["transitions"][-1][0::2] == ["SUCCESS", RECONCILED]
        assert [s for s, *_ in done["transitions"]] == ["RECEIVED", "STARTED", "SUCCESS"]
        assert done["succeeded"] == pytest.approx(time.time(), abs=30)
        assert (done["name"], done["worker"], done["args"]) == ("tests.job", "w1", "(1,)")  # the events' own
        assert (failed["state"], failed["exception"]) == ("FAILURE", "ValueError('boom')")
        assert failed["traceback"].endswith("ValueError: boom\n")
        assert failed["transitions"][-1][0::2] == ["FAILURE", RECONCILED]
        assert info(harness, "revoked")["state"] == "REVOKED"
        assert info(harness, "running")["state"] == "STARTED"

        assert harness.values("celery_monitor_tasks_reconciled", "celery_monitor_tasks_reconciled_total") == {
            ("FAILURE",): 1, ("REVOKED",): 1, ("SUCCESS",): 1}
        counts = {s: n for s, n in harness.monitor.live.snapshot().state_counts.items() if n}
        assert counts == {"SUCCESS": 1, "FAILURE": 1, "REVOKED": 1, "STARTED": 1}
        harness.flush()
        assert set(harness.get("/api/tasks?state=SUCCESS").json()) == {"done"}
        assert set(harness.get("/api/tasks?search=result:answer").json()) == {"done"}

        reconcile(harness)  # settled once: a second pass changes nothing
        assert len(info(harness, "done")["transitions"]) == 3
        assert harness.values("celery_monitor_tasks_reconciled", "celery_monitor_tasks_reconciled_total")[
            ("SUCCESS",)] == 1
    finally:
        harness.close()

    again = Harness(tmp_path, f"--result_backend={backend_url}", db=history_db)
    try:  # the count is kept with the other counters
        again.monitor.restore()
        assert again.values("celery_monitor_tasks_reconciled", "celery_monitor_tasks_reconciled_total") == {
            ("FAILURE",): 1, ("REVOKED",): 1, ("SUCCESS",): 1}
        assert info(again, "done")["transitions"][-1][2] == RECONCILED
    finally:
        again.close()


def test_a_file_system_backend_is_read_as_well(tmp_path: Path) -> None:
    """Another key-value backend (results in files): its multi-get is a generator, not a list."""
    results = tmp_path / "results"
    results.mkdir()
    url = f"file://{results}"
    harness = Harness(tmp_path, f"--result_backend={url}")
    try:
        running(harness, "in-a-file", time.time() - 60)
        running(harness, "not-yet", time.time() - 60)
        backend_app(url).backend.store_result("in-a-file", [1, 2], "SUCCESS")
        reconcile(harness)
        assert (info(harness, "in-a-file")["state"], info(harness, "in-a-file")["result"]) == ("SUCCESS", "[1, 2]")
        assert info(harness, "not-yet")["state"] == "STARTED"
    finally:
        harness.close()


def test_an_event_newer_than_the_backend_is_never_overridden(tmp_path: Path, backend_url: str) -> None:
    harness = Harness(tmp_path, f"--result_backend={backend_url}")
    try:
        backend = backend_app(backend_url).backend
        backend.store_result("sent-again", 1, "SUCCESS")  # a first run, under the same id
        backend.store_result("finished", 2, "SUCCESS")
        time.sleep(0.01)
        running(harness, "sent-again", time.time() + 1)  # the second run's events are newer than its result
        running(harness, "finished", time.time() - 60)
        backend.store_result("running-again", 3, "SUCCESS")
        time.sleep(0.01)  # a worker's inspect reply says it runs the task again, after that result
        harness.monitor.applier.submit([InspectedTask(uuid="running-again", worker="w1", state="STARTED",
                                                      seen_at=time.time(), name="tests.job")])
        harness.monitor.applier.apply_facts()
        reconcile(harness)
        assert info(harness, "sent-again")["state"] == "STARTED"
        assert info(harness, "running-again")["state"] == "STARTED"
        assert info(harness, "finished")["state"] == "SUCCESS"

        # The real final event comes after all (it was late, not lost): it wins, and is recorded too.
        harness.feed({"type": "task-succeeded", "uuid": "finished", "hostname": "w1", "runtime": 1.5,
                      "result": "2"}, at=time.time())
        finished = info(harness, "finished")
        assert (finished["state"], finished["runtime"]) == ("SUCCESS", 1.5)
        assert [t[2] for t in finished["transitions"][-2:]] == [RECONCILED, "w1"]
    finally:
        harness.close()


def test_a_lost_task_the_backend_saw_succeed_is_reconciled(tmp_path: Path, backend_url: str) -> None:
    harness = Harness(tmp_path, f"--result_backend={backend_url}")
    try:
        t0 = time.time() - 60
        health = harness.monitor.applier.health
        health.connected, health.connected_since = True, t0 - 60
        harness.feed({"type": "worker-online", "hostname": "w1", "freq": FREQ, "pid": 100}, at=t0)
        running(harness, "lost", t0)
        harness.monitor.applier.sweep_lost(now=t0 + 2 * FREQ + 1)
        assert info(harness, "lost")["state"] == "LOST"

        backend_app(backend_url).backend.store_result("lost", "done", "SUCCESS")
        reconciler = harness.monitor.reconciler
        assert reconciler is not None
        # The applier asked for the tasks it turned LOST: they are read a few seconds later.
        reconciler.step(now=time.monotonic() + reconciler_module.SETTLE + 1)
        harness.monitor.applier.apply_facts()
        found = info(harness, "lost")
        assert (found["state"], found["result"]) == ("SUCCESS", "'done'")
        assert [(s, why) for s, _, why in found["transitions"]] == [
            ("RECEIVED", "w1"), ("STARTED", "w1"), ("LOST", "worker offline"), ("SUCCESS", RECONCILED)]
        assert harness.values("celery_monitor_tasks_lost", "celery_monitor_tasks_lost_total") == {("tests.job",): 1}
    finally:
        harness.close()


def test_a_new_connection_or_dropped_events_bring_a_full_pass_and_old_tasks_a_periodic_one(
        tmp_path: Path, backend_url: str) -> None:
    harness = Harness(tmp_path, f"--result_backend={backend_url}")
    try:
        reconciler = harness.monitor.reconciler
        assert reconciler is not None
        applier, health = harness.monitor.applier, harness.monitor.applier.health
        backend = backend_app(backend_url).backend
        settle_for = reconciler_module.SETTLE
        clock = time.monotonic()

        def step(at: float) -> None:
            reconciler.step(now=at)
            applier.apply_facts()

        step(clock + settle_for + 1)  # the start-up pass: nothing unfinished yet
        assert reconciler.last_pass_at is not None and reconciler.asked == 0

        running(harness, "after-reconnect", time.time() - 5)
        backend.store_result("after-reconnect", 1, "SUCCESS")
        step(clock + settle_for + 2)  # no trigger: the task is recent, the periodic pass not due
        assert info(harness, "after-reconnect")["state"] == "STARTED"
        health.connected_since = time.time()  # the event stream came back
        step(clock + settle_for + 3)  # queued events come first: the pass waits a few seconds
        assert info(harness, "after-reconnect")["state"] == "STARTED"
        step(clock + 2 * settle_for + 4)
        assert info(harness, "after-reconnect")["state"] == "SUCCESS"

        running(harness, "after-drop", time.time() - 5)
        backend.store_result("after-drop", 2, "SUCCESS")
        health.messages_dropped += 1  # the hand-off was full: events were lost
        step(clock + 2 * settle_for + 5)
        step(clock + 3 * settle_for + 6)
        assert info(harness, "after-drop")["state"] == "SUCCESS"

        old = time.time() - reconciler_module.STALE_AFTER - 60
        running(harness, "stuck", old)
        running(harness, "young", time.time() - 5)
        backend.store_result("stuck", 3, "SUCCESS")
        backend.store_result("young", 4, "SUCCESS")
        step(clock + reconciler_module.PERIOD + 1)  # the periodic pass: only what is unfinished for long
        assert (info(harness, "stuck")["state"], info(harness, "young")["state"]) == ("SUCCESS", "STARTED")
    finally:
        harness.close()


def test_reconciled_data_is_redacted_as_an_event_s(tmp_path: Path, backend_url: str) -> None:
    harness = Harness(tmp_path, f"--result_backend={backend_url}", "--redact=result.token,traceback")
    try:
        backend = backend_app(backend_url).backend
        backend.store_result("quiet", {"token": "s3cret", "user": "ann"}, "SUCCESS")
        try:
            raise RuntimeError("no")
        except RuntimeError as exc:
            backend.mark_as_failure("broke", exc, traceback="Traceback: password=s3cret")
        running(harness, "quiet", time.time() - 60)
        running(harness, "broke", time.time() - 60)
        reconcile(harness)
        # The same result carried by an event, for comparison.
        running(harness, "by-event", time.time() - 60)
        harness.feed({"type": "task-succeeded", "uuid": "by-event", "hostname": "w1", "runtime": 1.0,
                      "result": "{'token': 's3cret', 'user': 'ann'}"})
        quiet = info(harness, "quiet")
        assert quiet["result"] == info(harness, "by-event")["result"] == "{'token': '[redacted]', 'user': 'ann'}"
        broke = info(harness, "broke")
        assert broke["traceback"] == "'[redacted]'" and "s3cret" not in str(broke)
    finally:
        harness.close()


def test_an_unreachable_backend_is_reported_and_retried_not_counted_as_a_bug(tmp_path: Path) -> None:
    harness = Harness(tmp_path, "--result_backend=redis://127.0.0.1:9/0")
    try:
        running(harness, "waiting", time.time() - 60)
        reconciler = harness.monitor.reconciler
        assert reconciler is not None
        assert not reconciler.sweep(full=True)
        status = harness.get("/api/monitor/status").json()["reconciler"]
        assert "ConnectionError" in status["last_error"] and status["full_pass_due"]
        assert reconciler.loop.errors == 0
        assert info(harness, "waiting")["state"] == "STARTED"
    finally:
        harness.close()


def test_without_a_result_backend_there_is_no_reconciler(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        assert harness.monitor.reconciler is None
        status = harness.get("/api/monitor/status").json()["reconciler"]
        assert status == {"off": "no result backend is configured (--result_backend)"}
    finally:
        harness.close()


# -- late start: inspect replies, as Celery's workers give them -----------------------------------

def replies(worker: str, **methods: list[Any]) -> dict[str, dict[str, Any]]:
    return {worker: {name: methods.get(name, []) for name in ("active", "reserved", "scheduled")}}


def request(task_id: str, *args: Any, started: float | None = None) -> dict[str, Any]:
    return {"id": task_id, "name": "tests.hold", "args": list(args), "kwargs": {"mode": "x"}, "type": "tests.hold",
            "hostname": "w1", "time_start": started, "acknowledged": True, "delivery_info": {}, "worker_pid": 7}


def test_tasks_a_worker_runs_or_holds_appear_with_what_is_known(tmp_path: Path) -> None:
    harness = Harness(tmp_path, "--redact=args.1")
    try:
        now = time.time()
        facts = inspected_tasks(replies(
            "w1",
            active=[request("active", 60, "secret", started=now - 5)],
            reserved=[request("reserved", 1, "secret")],
            scheduled=[{"eta": "2030-01-01T00:00:00+00:00", "priority": 0, "request": request("eta", 2, "x")}],
        ), now)
        harness.monitor.applier.submit(facts)
        harness.monitor.applier.apply_facts()
        active = info(harness, "active")
        assert (active["state"], active["worker"], active["name"]) == ("STARTED", "w1", "tests.hold")
        assert active["args"] == "(60, '[redacted]')" and active["kwargs"] == "{'mode': 'x'}"
        assert active["started"] == pytest.approx(now - 5)
        assert active["transitions"] == [["STARTED", pytest.approx(now - 5), INSPECTED]]
        reserved = info(harness, "reserved")
        assert (reserved["state"], reserved["worker"], reserved["args"]) == ("RECEIVED", "w1", "(1, '[redacted]')")
        eta = info(harness, "eta")
        assert (eta["state"], eta["eta"]) == ("RECEIVED", "2030-01-01T00:00:00+00:00")
        counts = {s: n for s, n in harness.monitor.live.snapshot().state_counts.items() if n}
        assert counts == {"STARTED": 1, "RECEIVED": 2}
        harness.flush()
        assert set(harness.get("/api/tasks?state=RECEIVED&workername=w1").json()) == {"reserved", "eta"}
    finally:
        harness.close()


def test_an_inspect_reply_never_overrides_newer_event_data(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        t0 = time.time()
        harness.feed({"type": "task-sent", "uuid": "sent", "name": "tests.hold", "args": "(9,)", "kwargs": "{}"},
                     at=t0 - 10)
        running(harness, "started-then-done", t0 - 10)
        harness.feed({"type": "task-succeeded", "uuid": "started-then-done", "hostname": "w1", "runtime": 1.0},
                      at=t0 - 5)
        harness.feed({"type": "task-received", "uuid": "received-later", "name": "tests.hold", "hostname": "w2",
                      "args": "(5,)", "kwargs": "{}"}, at=t0 + 5)
        harness.feed({"type": "task-retried", "uuid": "retried", "name": "tests.hold", "hostname": "w1"},
                     at=t0 - 10)
        seen = [InspectedTask(uuid=uuid, worker="w1", state="STARTED", seen_at=t0, name="tests.hold", args="(0,)")
                for uuid in ("sent", "started-then-done", "received-later", "retried")]
        harness.monitor.applier.submit(seen)
        harness.monitor.applier.apply_facts()
        sent = info(harness, "sent")
        assert (sent["state"], sent["worker"], sent["args"]) == ("STARTED", "w1", "(9,)")  # the event's args kept
        assert info(harness, "started-then-done")["state"] == "SUCCESS"
        later = info(harness, "received-later")  # an event newer than the reply
        assert (later["state"], later["worker"]) == ("RECEIVED", "w2")
        assert info(harness, "retried")["state"] == "STARTED"  # a retry runs again
    finally:
        harness.close()
