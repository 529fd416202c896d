"""Rows that failed their checks on the way out: the original is kept aside, counted and reported.

The history keeps serving: the caller puts a repaired row in place of the bad one (same ``seq``,
so counts and deep pages stay exact), and the original stays in the ``quarantine`` table for
whoever wants to see what an older version or a damaged disk left there.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Any

import orjson

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL, kind TEXT NOT NULL, key TEXT, problem TEXT,
    raw BLOB
);
"""
LATEST = 20


def raw_text(columns: Any) -> bytes:
    """The original row as bytes, whatever its values are."""
    try:
        return orjson.dumps(columns, default=repr)
    except (TypeError, orjson.JSONEncodeError):
        return repr(columns).encode("utf-8", "replace")


class Quarantine:
    def __init__(self, conn: sqlite3.Connection, write_lock: threading.Lock) -> None:
        self._conn = conn
        self._write_lock = write_lock
        self._conn.executescript(SCHEMA)

    def keep(self, kind: str, key: str, problem: str, raw: bytes) -> None:
        """Set the original row aside (logged once per row; never fails the read that found it)."""
        log.warning("the history's %s %s is damaged or from an older version (%s): repaired, original "
                    "kept in the quarantine table", kind, key[:80], problem[:200])
        try:
            with self._write_lock:
                self._conn.execute("INSERT INTO quarantine (time, kind, key, problem, raw) VALUES (?, ?, ?, ?, ?)",
                                   (time.time(), kind, key, problem, raw))
        except sqlite3.Error as exc:
            log.warning("could not keep the damaged %s %s aside: %s", kind, key[:80], exc)

    def count(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    def latest(self, conn: sqlite3.Connection, limit: int = LATEST) -> list[dict[str, Any]]:
        rows = conn.execute("SELECT time, kind, key, problem FROM quarantine ORDER BY seq DESC LIMIT ?", (limit,))
        return [{"at": at, "kind": kind, "key": key, "problem": problem} for at, kind, key, problem in rows]
