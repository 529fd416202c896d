"""The delivery log and the rules and channels added through the API, in tables of their own beside the history.

``notification_deliveries`` holds one row per message and channel with its outcome (pending,
delivered, failed, dropped), the attempts made and the last error (a short reason, never a
secret); the newest ``MAX_ROWS`` are kept. ``notification_settings`` holds what admins added
through the API (the config file's rules and channels are read from the file at every start).
Both live in the history's database, SQLite or PostgreSQL, through a connection of their own, so
the notifier never waits for the history's writer. On PostgreSQL the history's migrations create them
(``celery-monitor db upgrade`` too, for a monitor whose role may not create tables); on SQLite the
ledger does.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from celery_monitor.store import dsn

MAX_ROWS = 10_000
COLUMNS = ("id", "message_id", "at", "rule", "channel", "status", "summary", "outcome", "attempts",
           "last_error", "updated_at")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS notification_deliveries (
    id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, rule TEXT NOT NULL,
    channel TEXT NOT NULL, status TEXT NOT NULL, summary TEXT NOT NULL, outcome TEXT NOT NULL,
    attempts INTEGER NOT NULL, last_error TEXT, updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS notification_settings (
    kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, name));
"""


class Ledger:
    def __init__(self, db: str | None) -> None:
        self.postgres = dsn.is_postgres(db)
        self._db = db or ""
        self._lock = threading.Lock()
        self._conn: Any
        # A connection PostgreSQL dropped is opened again once; SQLite has nothing of the kind.
        self._dropped: tuple[type[BaseException], ...] = ()
        self._connect: Callable[[], Any] = lambda: None
        if self.postgres:
            assert db is not None
            import psycopg  # only for a PostgreSQL history: a SQLite monitor never loads it (12 MB)

            self._connect = lambda: psycopg.connect(db, autocommit=True, connect_timeout=10)
            self._dropped = (psycopg.OperationalError,)
            self._conn = self._connect()
            self._mark = "%s"
        else:
            self._conn = sqlite3.connect(db or ":memory:", check_same_thread=False, timeout=10,
                                         isolation_level=None)
            self._mark = "?"
        if not self.postgres:  # PostgreSQL's are created by the history's migrations (store/pg_schema.py)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._run(statement)

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        sql = sql.replace("?", self._mark)
        with self._lock:
            try:
                cursor = self._conn.execute(sql, params)
            except self._dropped:
                # PostgreSQL dropped the connection (a restart, a failover): once more on a new one.
                if not self._conn.closed:
                    raise
                self._conn = self._connect()
                cursor = self._conn.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []

    def describe(self, exc: Exception) -> str:
        """An error of this database on one line, its URL's password masked."""
        return dsn.scrub(str(exc), self._db) if self.postgres else " ".join(str(exc).split())

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- deliveries ----------------------------------------------------------------------------

    def add(self, message_id: str, rule: str, channel: str, status: str, summary: str) -> int:
        now = time.time()
        rows = self._run("INSERT INTO notification_deliveries (message_id, at, rule, channel, status, summary, "
                         "outcome, attempts, last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, NULL, ?) "
                         "RETURNING id", (message_id, now, rule, channel, status, summary[:500], now))
        row_id = int(rows[0][0])
        if row_id % 100 == 0:
            self._run("DELETE FROM notification_deliveries WHERE id <= ?", (row_id - MAX_ROWS,))
        return row_id

    def update(self, row_id: int, outcome: str, attempts: int, last_error: str | None) -> None:
        self._run("UPDATE notification_deliveries SET outcome = ?, attempts = ?, last_error = ?, updated_at = ? "
                  "WHERE id = ?", (outcome, attempts, last_error, time.time(), row_id))

    def recent(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._run(f"SELECT {', '.join(COLUMNS)} FROM notification_deliveries ORDER BY id DESC "
                         "LIMIT ? OFFSET ?", (limit, offset))
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    def count(self) -> int:
        return int(self._run("SELECT count(*) FROM notification_deliveries")[0][0])

    # -- rules and channels added through the API ----------------------------------------------

    def settings(self) -> list[tuple[str, str, dict[str, Any]]]:
        rows = self._run("SELECT kind, name, body FROM notification_settings ORDER BY kind, name")
        return [(kind, name, orjson.loads(body)) for kind, name, body in rows]

    def save(self, kind: str, name: str, body: dict[str, Any]) -> None:
        self._run("INSERT INTO notification_settings (kind, name, body) VALUES (?, ?, ?) "
                  "ON CONFLICT (kind, name) DO UPDATE SET body = excluded.body",
                  (kind, name, orjson.dumps(body).decode()))

    def delete(self, kind: str, name: str) -> None:
        self._run("DELETE FROM notification_settings WHERE kind = ? AND name = ?", (kind, name))
