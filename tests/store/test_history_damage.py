"""A history damaged on disk, or written by an older version, costs only its bad rows: they are
repaired in place, their originals quarantined and reported, and everything else keeps serving.
In SQLite and in PostgreSQL (whose typed columns leave fewer ways to be damaged)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import orjson
from support.harness import WORKER, Harness, assert_every_endpoint_answers, assert_good_tasks_applied
from support.hostile_events import encode, good_task_events
from support.postgres import execute, fresh_database


def damage(db: Path, ids: list[str]) -> None:
    """What an older version or a bad disk could leave behind, one kind of damage per task."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE tasks SET data = ? WHERE uuid = ?", (b"\x00not json{", ids[0]))
        conn.execute("UPDATE tasks SET name = X'ff00', received = 'yesterday' WHERE uuid = ?", (ids[1],))
        conn.execute("UPDATE tasks SET data = json_set(CAST(data AS TEXT), '$.children', 'abc', "
                     "'$.transitions', json('[1, 2]'), '$.retries', 'x') WHERE uuid = ?", (ids[2],))
        conn.execute("UPDATE tasks SET state = X'07' WHERE uuid = ?", (ids[3],))
        conn.execute("UPDATE tasks SET data = '[1, 2, 3]' WHERE uuid = ?", (ids[4],))
        conn.execute("INSERT INTO task_names VALUES (X'2a')")
        conn.execute("UPDATE workers SET data = ? WHERE hostname = ?", (orjson.dumps({"hostname": WORKER,
                     "freq": "often", "heartbeats": "none", "counters": {"task-received": "many"}}), WORKER))
        conn.execute("INSERT INTO workers VALUES ('broken@h', 'not json')")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'stats'",
                     (orjson.dumps({"events": [[1, 2, 3, "four"]], "runtime": "x"}),))
    conn.close()


def write_good_tasks(tmp_path: Path, db: Path | str, ids: list[str]) -> None:
    """A monitor on ``db`` applies a sound task for each id, writes them and closes."""
    harness = Harness(tmp_path, db=db)
    try:
        for task_id in ids:
            harness.feed_raw(encode(good_task_events(task_id, worker=WORKER)))
        harness.flush()
    finally:
        harness.close()


def test_damaged_rows_are_repaired_quarantined_and_reported(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    ids = [str(uuid.uuid4()) for _ in range(6)]
    write_good_tasks(tmp_path, db, ids)
    damage(db, ids)

    restarted = Harness(tmp_path, db=db)
    try:
        restarted.monitor.restore()
        assert_every_endpoint_answers(restarted, ids)
        # The sound task is untouched, the damaged ones answer with what could be kept.
        assert_good_tasks_applied(restarted, [ids[5]])
        second = restarted.get(f"/api/task/info/{ids[1]}").json()
        assert second["name"] is None and second["received"] is None and second["state"] == "SUCCESS"
        assert restarted.get(f"/api/task/info/{ids[0]}").json()["uuid"] == ids[0]
        listed = restarted.get("/api/tasks").json()
        assert set(listed) == set(ids)
        assert restarted.get("/api/task/types").json() == {"task-types": ["tests.add"]}

        quarantined = restarted.get("/api/monitor/status").json()["store"]["quarantined"]
        assert quarantined["rows"] == 8, quarantined
        kinds = {(entry["kind"], entry["key"]) for entry in quarantined["latest"]}
        assert {("task", ids[0]), ("task", ids[1]), ("task", ids[2]), ("task", ids[4]),
                ("worker", "broken@h"), ("worker", WORKER), ("meta", "stats")} <= kinds
        assert restarted.values("celery_monitor_store_quarantined_rows") == {(): float(quarantined["rows"])}

        # Ingestion goes on, onto the repaired tasks too.
        for task_id in (ids[1], str(uuid.uuid4())):
            restarted.feed_raw(encode(good_task_events(task_id, worker=WORKER)))
        restarted.flush()
        assert_good_tasks_applied(restarted, [ids[1]])
    finally:
        restarted.close()

    # The originals stay aside for inspection; the repaired rows are sound for the next start.
    conn = sqlite3.connect(db)
    raw = dict(conn.execute("SELECT key, raw FROM quarantine WHERE kind = 'task'").fetchall())
    assert b"yesterday" in raw[ids[1]]
    conn.close()
    again = Harness(tmp_path, db=db)
    try:
        again.monitor.restore()
        before = again.get("/api/monitor/status").json()["store"]["quarantined"]["rows"]
        assert_every_endpoint_answers(again, ids)
        assert again.get("/api/monitor/status").json()["store"]["quarantined"]["rows"] == before
    finally:
        again.close()


def damage_postgres(dsn: str, ids: list[str]) -> None:
    """The same kinds of damage in a PostgreSQL history: its columns are typed, the JSON is not."""
    execute(dsn, "UPDATE tasks SET data = 'not json{' WHERE uuid = %s", (ids[0],))
    execute(dsn, "UPDATE tasks SET received = NULL, data = (data::jsonb || '{\"received\": \"yesterday\"}')::text "
                 "WHERE uuid = %s", (ids[1],))
    execute(dsn, "UPDATE tasks SET data = (data::jsonb || '{\"children\": \"abc\", \"transitions\": [1, 2], "
                 "\"retries\": \"x\"}')::text WHERE uuid = %s", (ids[2],))
    execute(dsn, "UPDATE tasks SET data = '[1, 2, 3]' WHERE uuid = %s", (ids[4],))
    execute(dsn, "INSERT INTO task_names VALUES ('not json')")
    execute(dsn, "UPDATE workers SET data = %s WHERE hostname = %s", (orjson.dumps({"hostname": WORKER,
            "freq": "often", "heartbeats": "none", "counters": {"task-received": "many"}}).decode(), WORKER))
    execute(dsn, "INSERT INTO workers VALUES ('broken@h', 'not json')")
    execute(dsn, "UPDATE meta SET value = %s WHERE key = 'stats'",
            (orjson.dumps({"events": [[1, 2, 3, "four"]], "runtime": "x"}).decode(),))


def test_damaged_postgres_rows_are_repaired_quarantined_and_reported(tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(6)]
    with fresh_database() as dsn:
        write_good_tasks(tmp_path, dsn, ids)
        damage_postgres(dsn, ids)

        restarted = Harness(tmp_path, db=dsn)
        try:
            restarted.monitor.restore()
            assert_every_endpoint_answers(restarted, ids)
            assert_good_tasks_applied(restarted, [ids[3], ids[5]])
            second = restarted.get(f"/api/task/info/{ids[1]}").json()
            assert second["received"] is None and second["state"] == "SUCCESS" and second["name"] == "tests.add"
            assert restarted.get(f"/api/task/info/{ids[0]}").json()["uuid"] == ids[0]
            assert set(restarted.get("/api/tasks").json()) == set(ids)
            assert restarted.get("/api/task/types").json() == {"task-types": ["tests.add"]}
            quarantined = restarted.get("/api/monitor/status").json()["store"]["quarantined"]
            kinds = {(entry["kind"], entry["key"]) for entry in quarantined["latest"]}
            assert kinds == {("task", ids[0]), ("task", ids[1]), ("task", ids[2]), ("task", ids[4]),
                             ("worker", "broken@h"), ("worker", WORKER), ("meta", "stats")}, kinds
            restarted.feed_raw(encode(good_task_events(ids[1], worker=WORKER)))
            restarted.flush()
            assert_good_tasks_applied(restarted, [ids[1]])
        finally:
            restarted.close()
        raw = dict(execute(dsn, "SELECT key, raw FROM quarantine WHERE kind = 'task'"))
        assert b"yesterday" in bytes(raw[ids[1]])  # type: ignore[arg-type]

        again = Harness(tmp_path, db=dsn)
        try:
            again.monitor.restore()
            before = again.get("/api/monitor/status").json()["store"]["quarantined"]["rows"]
            assert_every_endpoint_answers(again, ids)
            assert again.get("/api/monitor/status").json()["store"]["quarantined"]["rows"] == before
        finally:
            again.close()
