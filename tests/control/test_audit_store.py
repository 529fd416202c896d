"""The audit trail in the history database: newest first, filters, paging, and it outlives the process."""

from __future__ import annotations

from celery_monitor.control.audit import AuditFilter, AuditTrail
from celery_monitor.store.sqlite import SQLiteStore
from celery_monitor.store.target import open_store


def test_entries_newest_first_with_filters_and_paging(history_db: str) -> None:
    store = open_store(history_db)
    trail = AuditTrail(store)
    trail.record("alice", "worker.pool_grow", "w1@h", {"n": "2"}, 200, {"message": "Growing"})
    trail.record("bob", "task.revoke", "abc", {"terminate": "true"}, 200, {"message": "Revoked 'abc'"})
    trail.record("alice", "worker.shutdown", "w2@h", {}, 404, {"error": "Unknown worker 'w2@h'"}, "prod")

    entries = trail.entries()
    assert [e["action"] for e in entries] == ["worker.shutdown", "task.revoke", "worker.pool_grow"]
    assert entries[0] | {"id": 0, "time": 0} == {
        "id": 0, "time": 0, "user": "alice", "action": "worker.shutdown", "target": "w2@h", "params": {},
        "status": 404, "ok": False, "result": {"error": "Unknown worker 'w2@h'"}, "cluster": "prod"}
    assert entries[1]["cluster"] is None  # recorded without one: an action on every cluster
    assert [e["target"] for e in trail.entries(user="alice")] == ["w2@h", "w1@h"]
    assert [e["target"] for e in trail.entries(action="task.revoke")] == ["abc"]
    assert [e["target"] for e in trail.entries(limit=1, offset=1)] == ["abc"]
    assert (trail.count(), trail.count(user="alice"), trail.count(user="carol")) == (3, 2, 0)
    store.close()

    reopened = open_store(history_db)
    assert AuditTrail(reopened).entries() == entries
    reopened.close()


def test_memory_only_history_keeps_an_audit_trail_too() -> None:
    trail = AuditTrail(SQLiteStore(None))
    trail.record("", "task.abort", "t", {}, 503, {"error": "Result backend is not configured"})
    assert [(e["user"], e["ok"]) for e in trail.entries()] == [("anonymous", False)]


def test_filters_by_target_and_time_and_the_facets(history_db: str) -> None:
    store = open_store(history_db)
    trail = AuditTrail(store)
    pushed: list[dict[str, object]] = []
    trail.listeners.append(pushed.append)
    first = trail.record("alice", "task.revoke", "abc", {}, 200, {"message": "Revoked 'abc'"})
    second = trail.record("bob", "task.revoke", "def", {}, 200, {"message": "Revoked 'def'"})
    third = trail.record("bob", "worker.shutdown", "abc", {}, 404, {"error": "Unknown worker 'abc'"})

    assert [e["id"] for e in pushed] == [first["id"], second["id"], third["id"]], "each entry is pushed as recorded"
    assert [e["id"] for e in trail.entries(where=AuditFilter(target="abc"))] == [third["id"], first["id"]]
    assert trail.count(where=AuditFilter(target="abc", user="bob")) == 1
    assert [e["id"] for e in trail.entries(where=AuditFilter(since=second["time"]))] == [third["id"], second["id"]]
    assert [e["id"] for e in trail.entries(where=AuditFilter(until=second["time"]))] == [second["id"], first["id"]]
    assert trail.entries(where=AuditFilter(since=third["time"] + 1)) == []
    assert trail.facets() == {"user": ["alice", "bob"], "action": ["task.revoke", "worker.shutdown"]}
    store.close()


def test_a_listener_that_fails_does_not_fail_the_action() -> None:
    trail = AuditTrail(SQLiteStore(None))

    def broken(entry: dict[str, object]) -> None:
        raise RuntimeError("page gone")

    trail.listeners.append(broken)
    assert trail.record("alice", "task.abort", "t", {}, 200, {})["ok"] is True
    assert trail.count() == 1
