"""Change notices between replicas of one PostgreSQL history: LISTEN/NOTIFY, ids only.

The replica that ingests sends, inside each flush's transaction, which tasks and workers it wrote
(PostgreSQL delivers a notification when, and only when, its transaction commits). Standbys listen,
re-read those rows from the history and push them to their own pages. A payload holds ids only and
stays under PostgreSQL's 8000-byte limit; a flush of many tasks sends several, and beyond
``MAX_NOTICED_TASKS`` only the most recent are named (``"more"`` counts the rest): a page cannot
take more in one push anyway, and the hub tells a client that missed notices to fetch afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg

log = logging.getLogger(__name__)
CHANNEL = "celery_monitor_changes"
PAYLOAD_BYTES = 7900  # PostgreSQL refuses a payload of 8000 bytes or more
MAX_NOTICED_TASKS = 2000
MAX_ID_BYTES = 300  # a longer id (no real task or worker has one) is not worth a notice


@dataclass
class Changes:
    """What one or more flushes wrote: task ids, worker hostnames, and how many tasks went unnamed."""

    tasks: dict[str, None] = field(default_factory=dict)
    workers: dict[str, None] = field(default_factory=dict)
    more: int = 0

    def add(self, other: Changes) -> None:
        self.tasks.update(other.tasks)
        self.workers.update(other.workers)
        self.more += other.more

    def __bool__(self) -> bool:
        return bool(self.tasks or self.workers or self.more)


def payloads(task_ids: Iterable[str], hostnames: Iterable[str]) -> list[str]:
    """The notification payloads of one flush (JSON ``{"t": [...], "w": [...], "more": n}`` each)."""
    tasks = [t for t in task_ids if len(t.encode()) <= MAX_ID_BYTES]
    more = max(0, len(tasks) - MAX_NOTICED_TASKS)
    tasks = tasks[more:]
    workers = [w for w in hostnames if len(w.encode()) <= MAX_ID_BYTES]
    out: list[str] = []
    current: dict[str, Any] = {"t": [], "w": [], "more": more}
    size = len(orjson.dumps(current))
    for key, ids in (("t", tasks), ("w", workers)):
        for ident in ids:
            cost = len(orjson.dumps(ident)) + 1
            if size + cost > PAYLOAD_BYTES:
                out.append(orjson.dumps(current).decode())
                current = {"t": [], "w": [], "more": 0}
                size = len(orjson.dumps(current))
            current[key].append(ident)
            size += cost
    if current["t"] or current["w"] or current["more"]:
        out.append(orjson.dumps(current).decode())
    return out


def parse(payload: str) -> Changes:
    """The changes one payload names (nothing, for a payload that is not ours)."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Changes()
    if not isinstance(data, dict):
        return Changes()
    tasks, workers, more = data.get("t"), data.get("w"), data.get("more")
    return Changes(dict.fromkeys(t for t in tasks if isinstance(t, str)) if isinstance(tasks, list) else {},
                   dict.fromkeys(w for w in workers if isinstance(w, str)) if isinstance(workers, list) else {},
                   max(0, more) if isinstance(more, int) else 0)


def send(conn: psycopg.Connection[Any], task_ids: Iterable[str], hostnames: Iterable[str]) -> None:
    """Queue the notices of one flush on ``conn`` (inside its transaction: sent when it commits)."""
    for payload in payloads(task_ids, hostnames):
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


class ChangeListener:
    """A connection of its own that LISTENs for the leader's notices (a standby's)."""

    def __init__(self, connect: Any) -> None:
        self._connect = connect  # () -> a new autocommit connection
        self._conn: psycopg.Connection[Any] | None = None

    def _listening(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            conn.execute(f"LISTEN {CHANNEL}")
            self._conn = conn
        return self._conn

    def wait(self, timeout: float) -> Changes:
        """What was notified within ``timeout`` seconds (gathered after the first notice arrives).

        Raises psycopg.OperationalError when the database is out of reach (the next call reconnects:
        notices sent meanwhile are missed, and the pages' next fetch shows them).
        """
        conn = self._listening()
        found = Changes()
        try:
            for notice in conn.notifies(timeout=timeout, stop_after=1):
                found.add(parse(notice.payload))
            if found:  # the rest of a flush's payloads arrive together
                for notice in conn.notifies(timeout=0.05):
                    found.add(parse(notice.payload))
        except psycopg.OperationalError:
            conn.close()
            raise
        return found

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            try:
                self._conn.close()
            except psycopg.Error as exc:
                log.debug("closing the change listener: %s", exc)
