"""Planner statistics for a history that grows faster than autovacuum looks at it.

A monitor that starts on an empty database writes thousands of tasks a second. PostgreSQL's
autovacuum analyzes a table at most once a minute, and only after a tenth of it has changed, so
for the first minute or more the planner believes the tasks table is empty. The statements the
monitor runs most (the applier's look-up of the tasks of each batch, the writer's of their seqs)
are prepared, and a generic plan made for an empty table is a sequential scan: measured at 16,000
task events/s from an empty database, those scans took a whole core of the server within half a
minute and left the monitor 15-20 s behind the stream. ANALYZE invalidates the cached plans, so the
writer analyzes the tables a young history grows each time they have doubled since it last did.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

log = logging.getLogger(__name__)

# The tables whose plans follow the history's size: the tasks, their search table, the failed ones.
ANALYZED_TABLES = ("tasks", "task_search", "failures")
# Below this many new tasks, the plans of a table of any size stay as they are.
MIN_GROWTH = 1_000


class TableStatistics:
    """When the history has doubled since the planner last counted it (``grown``), count it again."""

    def __init__(self) -> None:
        self._counted: float | None = None  # the tasks the planner last knew of (None: not asked yet)
        self._added = 0  # tasks written since

    def grown(self, conn: psycopg.Connection[Any], added: int) -> None:
        """Note ``added`` new tasks (just committed on ``conn``, the writer's own connection, outside
        a transaction) and analyze the tables if the history has doubled since they were last."""
        if not added:
            return
        if self._counted is None:
            row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'tasks'::regclass").fetchone()
            self._counted = max(0.0, float(row[0])) if row else 0.0  # -1: never analyzed
        self._added += added
        if self._added < max(MIN_GROWTH, self._counted):
            return
        try:  # a role that does not own the tables gets a warning from the server, and no statistics
            conn.execute(f"ANALYZE {', '.join(ANALYZED_TABLES)}")
        except psycopg.Error as exc:  # the flush has committed: this one costs nothing but the plans
            log.debug("could not analyze the history's tables: %s", exc)
        self._counted += self._added
        self._added = 0
