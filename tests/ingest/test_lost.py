"""LOST: the tasks a worker held when it went offline by the heartbeat rule, or came back as a new
process, turn LOST within the bound; any later real event for the task takes over.

The sweep is given the time (``sweep_lost(now=...)``), and events their receive time, so the
heartbeat rule is checked on a clock the test holds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from support.harness import Harness

FREQ = 2.0  # the worker's heartbeat interval
BOUND = 2 * FREQ + 10  # what the issue promises: LOST within twice the interval plus 10 s


def listening(harness: Harness, since: float) -> None:
    """The event stream up since ``since``, as the receiver records it (nothing is started here)."""
    health = harness.monitor.applier.health
    health.connected, health.connected_since = True, since


def task_events(harness: Harness, task_id: str, worker: str, at: float, started: bool = True) -> None:
    harness.feed({"type": "task-received", "uuid": task_id, "name": "tests.slow", "hostname": worker,
                  "args": "()", "kwargs": "{}"}, at=at)
    if started:
        harness.feed({"type": "task-started", "uuid": task_id, "hostname": worker}, at=at + 0.1)


def info(harness: Harness, task_id: str) -> dict[str, Any]:
    response = harness.get(f"/api/task/info/{task_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def listed(harness: Harness, query: str) -> set[str]:
    response = harness.get(f"/api/tasks?{query}")
    assert response.status_code == 200, response.text
    return set(response.json())


def test_tasks_of_a_worker_gone_silent_turn_lost_once_its_heartbeat_expires(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        t0 = time.time()
        listening(harness, t0 - 60)
        harness.feed({"type": "worker-online", "hostname": "w1", "freq": FREQ, "pid": 100}, at=t0)
        harness.feed({"type": "worker-online", "hostname": "w2", "freq": FREQ, "pid": 200}, at=t0)
        task_events(harness, "started", "w1", t0)
        task_events(harness, "received", "w1", t0, started=False)
        task_events(harness, "elsewhere", "w2", t0)
        harness.feed({"type": "task-succeeded", "uuid": "elsewhere", "hostname": "w2", "runtime": 1.0}, at=t0 + 1)
        last_seen = t0 + 0.1  # w1's last sign of life: the task-started event
        applier = harness.monitor.applier

        applier.sweep_lost(now=last_seen + 2 * FREQ - 0.5)  # w1 still online: nothing is lost
        assert info(harness, "started")["state"] == "STARTED"
        applier.health.connected = False  # the event stream is down: silence says nothing
        applier.sweep_lost(now=last_seen + 2 * FREQ + 1.0)
        assert info(harness, "started")["state"] == "STARTED"
        listening(harness, t0 - 60)

        harness.heartbeat("w2", freq=FREQ)  # w2 beats on; w1 has been silent for 2 x its interval
        applier.sweep_lost(now=last_seen + 2 * FREQ + 1.0)  # one sweep a second: well within the bound
        started, received = info(harness, "started"), info(harness, "received")
        assert (started["state"], received["state"]) == ("LOST", "LOST")
        assert started["transitions"][-1][0::2] == ["LOST", "worker offline"]
        assert [state for state, *_ in started["transitions"]] == ["RECEIVED", "STARTED", "LOST"]
        assert info(harness, "elsewhere")["state"] == "SUCCESS"  # finished, and on a live worker

        assert listed(harness, "state=LOST") == {"started", "received"}
        assert listed(harness, "search=state:LOST") == {"started", "received"}
        assert harness.values("celery_monitor_tasks_lost", "celery_monitor_tasks_lost_total") == {("tests.slow",): 2}
        assert harness.values("celery_monitor_tasks", state="LOST") == {("LOST",): 2}

        applier.sweep_lost(now=last_seen + 60)  # swept once per absence: counted once
        assert harness.values("celery_monitor_tasks_lost", "celery_monitor_tasks_lost_total") == {("tests.slow",): 2}
    finally:
        harness.close()


def test_a_worker_back_with_a_new_pid_loses_what_its_old_process_held(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        t0 = time.time()
        harness.feed({"type": "worker-online", "hostname": "w1", "freq": FREQ, "pid": 100}, at=t0)
        task_events(harness, "old", "w1", t0)
        # The connection restarts: worker-online again from the same process, whose task goes on.
        harness.feed({"type": "worker-online", "hostname": "w1", "freq": FREQ, "pid": 100}, at=t0 + 1)
        harness.monitor.applier.sweep_lost(now=t0 + 1.5)
        assert info(harness, "old")["state"] == "STARTED"

        # kill -9 and a quick restart: the new process is online before the old one's heartbeat expires.
        harness.feed({"type": "worker-online", "hostname": "w1", "freq": FREQ, "pid": 101}, at=t0 + 2)
        task_events(harness, "new", "w1", t0 + 2.5)  # the new process's own task, in the same pass
        harness.monitor.applier.sweep_lost(now=t0 + 3)
        old = info(harness, "old")
        assert old["state"] == "LOST" and old["transitions"][-1][0::2] == ["LOST", "worker restarted"]
        assert info(harness, "new")["state"] == "STARTED"
    finally:
        harness.close()


def test_a_later_real_event_wins_over_lost(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        t0 = time.time()
        listening(harness, t0 - 60)
        harness.feed({"type": "worker-online", "hostname": "w1", "freq": FREQ, "pid": 100}, at=t0)
        task_events(harness, "redelivered", "w1", t0)
        task_events(harness, "finished-late", "w1", t0)
        harness.monitor.applier.sweep_lost(now=t0 + BOUND)
        assert info(harness, "redelivered")["state"] == "LOST"

        # acks_late: the message goes back to the queue, and another worker receives it again.
        task_events(harness, "redelivered", "w2", t0 + BOUND + 1, started=False)
        assert info(harness, "redelivered")["state"] == "RECEIVED"
        assert info(harness, "redelivered")["worker"] == "w2"
        harness.feed({"type": "task-started", "uuid": "redelivered", "hostname": "w2"}, at=t0 + BOUND + 2)
        harness.feed({"type": "task-succeeded", "uuid": "redelivered", "hostname": "w2", "runtime": 1.0},
                     at=t0 + BOUND + 3)
        # A final event that was only late (a partition, not a death) wins too.
        harness.feed({"type": "task-failed", "uuid": "finished-late", "hostname": "w1",
                      "exception": "ValueError('x')", "traceback": ""}, at=t0 + BOUND + 1)
        redelivered = info(harness, "redelivered")
        assert redelivered["state"] == "SUCCESS"
        assert [s for s, *_ in redelivered["transitions"]] == ["RECEIVED", "STARTED", "LOST", "RECEIVED",
                                                                 "STARTED", "SUCCESS"]
        assert info(harness, "finished-late")["state"] == "FAILURE"
        assert listed(harness, "state=LOST") == set()
        counts = {s: n for s, n in harness.monitor.live.snapshot().state_counts.items() if n}
        assert counts == {"SUCCESS": 1, "FAILURE": 1}
        # w2 goes silent: its task had finished, so nothing more is lost.
        harness.monitor.applier.sweep_lost(now=t0 + 10 * BOUND)
        assert info(harness, "redelivered")["state"] == "SUCCESS"
    finally:
        harness.close()


def test_tasks_only_the_history_holds_are_found_by_state_and_worker(tmp_path: Path, history_db: str) -> None:
    first = Harness(tmp_path, db=history_db)
    t0 = time.time()
    first.feed({"type": "worker-online", "hostname": "w1", "freq": FREQ, "pid": 100}, at=t0)
    task_events(first, "before-restart", "w1", t0)
    first.flush()
    first.close()

    harness = Harness(tmp_path, db=history_db)  # the monitor restarted: its live view holds no task
    try:
        harness.monitor.restore()  # what start() does first: the workers come back from the history
        assert harness.monitor.live.task_dict("before-restart") is None
        # Just connected: w1's heartbeats may have been sent while the monitor was away.
        connected = t0 + BOUND
        listening(harness, connected)
        harness.monitor.applier.sweep_lost(now=connected + 2 * FREQ - 0.5)
        assert info(harness, "before-restart")["state"] == "STARTED"
        harness.monitor.applier.sweep_lost(now=connected + 2 * FREQ + 0.5)  # a whole window heard: gone
        found = info(harness, "before-restart")
        assert found["state"] == "LOST" and found["transitions"][-1][2] == "worker offline"
        harness.flush()
        assert listed(harness, "state=LOST") == {"before-restart"}
    finally:
        harness.close()

    again = Harness(tmp_path, db=history_db)  # the count of lost tasks is kept with the others
    try:
        again.monitor.restore()
        assert again.values("celery_monitor_tasks_lost", "celery_monitor_tasks_lost_total") == {("tests.slow",): 1}
        assert again.values("celery_monitor_tasks", state="LOST") == {("LOST",): 1}
    finally:
        again.close()


def test_the_index_of_held_tasks_is_bounded_by_the_live_view(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    live = harness.monitor.live
    live._recent_limit = 3  # a small live view
    try:
        t0 = time.time()
        for n in range(5):
            task_events(harness, f"t{n}", "w1", t0 + n)
        assert [task.uuid for task in live.held_tasks("w1")] == ["t2", "t3", "t4"]
        assert len(live._held_by) == 3
    finally:
        harness.close()


def test_many_offline_workers_are_swept_a_bounded_number_at_a_time(tmp_path: Path, monkeypatch: Any) -> None:
    harness = Harness(tmp_path)
    monkeypatch.setattr("celery_monitor.applier.lost.MAX_WORKERS_PER_SWEEP", 2)
    try:
        t0 = time.time()
        listening(harness, t0 - 60)
        for n in range(5):
            task_events(harness, f"t{n}", f"w{n}", t0)
        applier = harness.monitor.applier
        lost_after = []
        for sweep in range(1, 4):
            applier.sweep_lost(now=t0 + 2 * 60 + sweep)  # the workers' freq is Celery's default here
            lost_after.append(sum(info(harness, f"t{n}")["state"] == "LOST" for n in range(5)))
        assert lost_after == [2, 4, 5]
    finally:
        harness.close()
