"""Replicas of one PostgreSQL history, built in the test process: the first leads, the next stands by
and serves the leader's history, hears its change notices, and leads once the first lets go."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from support.harness import Harness
from support.postgres import execute, fresh_database
from support.processes import wait_for

from celery_monitor.store import pg_notices


def _task_events(task_id: str, worker: str) -> list[dict[str, object]]:
    return [{"type": "worker-heartbeat", "hostname": worker, "freq": 2.0, "active": 0, "processed": 1},
            {"type": "task-received", "uuid": task_id, "name": "app.replicated", "hostname": worker,
             "args": "(1,)", "kwargs": "{}"},
            {"type": "task-succeeded", "uuid": task_id, "hostname": worker, "result": "2", "runtime": 0.1}]


def test_a_standby_serves_the_leaders_history_and_leads_when_it_lets_go(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with fresh_database() as dsn:
        leader = Harness(tmp_path / "a", db=dsn)
        standby = Harness(tmp_path / "b", db=dsn)
        try:
            assert leader.monitor.leading and not standby.monitor.leading
            assert standby.get("/api/monitor/status").json()["replica"]["role"] == "standby"
            listener = standby.monitor.store.change_listener()  # type: ignore[attr-defined]
            listener.wait(0.01)  # listening from now on

            task_id = str(uuid.uuid4())
            leader.feed(*_task_events(task_id, "celery@replicated"))
            assert leader.monitor.writer.flush()
            changes = listener.wait(5)
            assert list(changes.tasks) == [task_id] and list(changes.workers) == ["celery@replicated"]
            listener.close()

            # The standby answers from the history, and its live view follows what the leader saved.
            assert standby.get(f"/api/task/info/{task_id}").json()["state"] == "SUCCESS"
            assert standby.get("/api/tasks").json().keys() == {task_id}
            standby.monitor.refresh_from_history()
            assert "celery@replicated" in standby.get("/api/workers").json()
            assert standby.get("/api/task/types").json()["task-types"] == ["app.replicated"]
            # The counts the leader saved with its flush (no count over the whole history every second).
            assert standby.monitor.live.snapshot().state_counts == leader.monitor.live.snapshot().state_counts
            assert standby.monitor.live.snapshot().state_counts["SUCCESS"] == 1
            # Counters come from the leader alone: the standby says it does not lead, and no more.
            assert standby.families().keys() == {"celery_monitor_leader", "celery_monitor_live",
                                                 "celery_monitor_background_errors"}
            assert standby.values("celery_monitor_leader") == {(): 0.0}
            assert leader.values("celery_monitor_leader") == {(): 1.0}
            succeeded = ("app.replicated", "task-succeeded", "celery@replicated")
            assert leader.values("flower_events", "flower_events_total")[succeeded] == 1.0
            # Nor does it reload them every second: they are read when it takes over (below).
            assert standby.monitor.live.snapshot().stats.events == []
            # A standby writes no task (the writer is the leader's), but audits the control actions
            # it runs in the one trail.
            assert not standby.monitor.store.try_lead()  # type: ignore[attr-defined]
            standby.monitor.audit.record("ops", "worker.shutdown", "celery@replicated", {}, 200, {})
            assert [e["action"] for e in leader.monitor.audit.entries()] == ["worker.shutdown"]

            leader.close()
            assert standby.monitor.store.try_lead()  # type: ignore[attr-defined]
            assert standby.monitor.leading
            assert standby.get("/api/monitor/status").json()["replica"]["role"] == "leader"
            standby.monitor.restore(saved_counts=True)  # what taking over starts with
            assert standby.values("flower_events", "flower_events_total")[succeeded] == 1.0
        finally:
            standby.close()
            leader.close()


def test_a_leader_cut_off_while_another_took_over_writes_nothing_more_and_asks_for_a_restart(
        tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with fresh_database() as dsn:
        old = Harness(tmp_path / "a", db=dsn)
        new = Harness(tmp_path / "b", db=dsn)
        try:
            database = dsn.rsplit("/", 1)[1]
            execute(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # the old leader's sessions end
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
            # (the new one's sessions too: its standby loop tries again, on a new connection)
            wait_for(new.monitor.store.try_lead, 5, message="the standby to lead")  # type: ignore[attr-defined]

            stale = str(uuid.uuid4())
            old.feed(*_task_events(stale, "celery@old"))
            assert old.monitor.writer.flush() is False and old.monitor.writer.flush() is False
            assert not old.monitor.leading and old.get("/api/monitor/status").json()["replica"]["deposed"]
            old.monitor.running = True  # as started: /livez judges a running monitor
            livez = old.get("/livez")
            assert livez.status_code == 503 and "another replica leads" in livez.text
            assert old.values("celery_monitor_leader") == {(): 0.0}
            assert new.monitor.store.get_task(stale) is None
            new.close()
            assert not old.monitor.store.try_lead()  # type: ignore[attr-defined]  # not even once free again
        finally:
            new.close()
            old.close()


def test_sign_outs_and_failed_logins_count_on_every_replica(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with fresh_database() as dsn:
        first = Harness(tmp_path / "a", "--basic_auth=ops:secret", db=dsn)
        second = Harness(tmp_path / "b", "--basic_auth=ops:secret", db=dsn)
        try:
            a, b = first.app.state.auth, second.app.state.auth
            for _ in range(a.failures.limit - 1):
                a.failures.failed("203.0.113.9", "basic", "ops", "wrong user name or password")
            first.monitor.exchange_auth()
            second.monitor.exchange_auth()
            assert b.failures.retry_after("203.0.113.9") == 0  # nine, counted once
            b.failures.failed("203.0.113.9", "basic", "ops", "wrong user name or password")
            assert a.failures.retry_after("203.0.113.9") == 0
            second.monitor.exchange_auth()
            first.monitor.exchange_auth()
            assert a.failures.retry_after("203.0.113.9") > 0 and b.failures.retry_after("203.0.113.9") > 0
            assert a.failures.retry_after("198.51.100.1") == 0

            a.revoke("session-signed-out-on-a")
            assert not b.is_revoked("session-signed-out-on-a")
            first.monitor.exchange_auth()
            second.monitor.exchange_auth()
            assert b.is_revoked("session-signed-out-on-a") and not b.is_revoked("another-session")
        finally:
            second.close()
            first.close()


def test_a_single_sqlite_monitor_leads(tmp_path: Path) -> None:
    harness = Harness(tmp_path, db=tmp_path / "history.db")
    try:
        assert harness.get("/api/monitor/status").json()["replica"]["role"] == "leader"
        assert harness.values("celery_monitor_leader") == {(): 1.0}
    finally:
        harness.close()


def test_notices_stay_under_postgresqls_limit_and_name_the_newest() -> None:
    ids = [str(uuid.uuid4()) for _ in range(pg_notices.MAX_NOTICED_TASKS + 500)]
    payloads = pg_notices.payloads(ids, ["celery@a", "celery@b"])
    assert all(len(p.encode()) < 8000 for p in payloads) and len(payloads) > 1
    merged = pg_notices.Changes()
    for payload in payloads:
        merged.add(pg_notices.parse(payload))
    assert list(merged.tasks) == ids[500:] and merged.more == 500
    assert list(merged.workers) == ["celery@a", "celery@b"]
    assert not pg_notices.parse("not json") and not pg_notices.parse('{"t": "x", "w": 3}')


def test_the_graphs_are_the_leaders_on_every_replica_and_outlive_it(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    with fresh_database() as dsn:
        leader = Harness(tmp_path / "a", db=dsn)
        standby = Harness(tmp_path / "b", db=dsn)
        late: Harness | None = None
        try:
            leader.monitor.timeline.sample()  # the baseline
            leader.run_task("app.graphed", "celery@graphs")
            point = leader.monitor.timeline.sample()
            assert point is not None and point["rates"]["SUCCESS"] > 0
            assert leader.monitor.writer.flush()

            # A standby samples nothing of its own (its counters are the leader's last flush): it
            # follows the points the leader saved, once each.
            assert standby.monitor.timeline.follow() == [point]
            assert standby.monitor.timeline.follow() == []
            assert standby.get("/ui/graphs.json").json()["points"] == leader.get("/ui/graphs.json").json()["points"]

            # A monitor that starts on the history later (a restart, a new replica) takes up the last hour.
            leader.close()
            late = Harness(tmp_path / "c", db=dsn)
            late.monitor.timeline.restore(time.time())
            assert late.get("/ui/graphs.json").json()["points"] == [point]
            late.monitor.timeline.restore(time.time() + 3600 + 60)
            assert late.get("/ui/graphs.json").json()["points"] == []
        finally:
            for harness in (late, standby, leader):
                if harness is not None:
                    harness.close()
