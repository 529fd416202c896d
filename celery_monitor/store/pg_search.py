"""The PostgreSQL history's search table, filled behind the writer, and the searches it serves.

GIN indexes kept up to date inside every write made ingesting six times slower (each written task
version updated them), so search has a table of its own (``task_search``: seq, the case-folded
searchable text, the kwargs pairs; pg_schema, migration 9), filled by the leader's writer between
flushes, a bounded slice at a time (:class:`SearchIndexer`), with settled tasks only: finished, and
their last event ``SETTLE_SECONDS`` old. Standbys only read it.

A search reads the index's hits and what the table does not hold yet — the tasks above the
watermark, and the skipped ones (unfinished when the walk passed them, or changed after they were
indexed: a trigger moves them there) — and checks every one with the very SQL a scan uses, so its
answers are exactly a scan's. As in SQLite's index (``search_index.py``), a search whose index
cannot narrow it down (terms shorter than three characters, no pg_trgm), with too many hits, or
over a history mostly not indexed yet, is a scan.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
import psycopg

from celery_monitor.store import pg_schema
from celery_monitor.store.search import All, Expression, Term, like_pattern

MAX_HITS = 20_000  # past this many hits a scan in the page's order is as quick, and reads no index
MAX_UNINDEXED = 0.25  # share of the tasks not in the table beyond which a search scans them all
SKIPPED_WINDOW = 1000  # skipped tasks looked at again per run: bounded however many there are
# The rows a search reads when the index answers (%s: the hits, the watermark twice): the three
# parts are disjoint (an indexed task is at or below the watermark and never skipped).
CANDIDATE_TASKS = ("(SELECT * FROM tasks WHERE seq = ANY(%s::bigint[]) UNION ALL SELECT * FROM tasks WHERE seq > %s"
                   " UNION ALL SELECT * FROM tasks WHERE seq IN (SELECT seq FROM search_skipped WHERE seq <= %s))"
                   " AS tasks")
# The same with the hits as a subquery ({predicate}: index_predicate's SQL, then the watermark
# twice): for totals of searches with more hits than a page should read one by one.
CANDIDATE_MATCHES = ("(SELECT * FROM tasks WHERE seq IN (SELECT seq FROM task_search WHERE {predicate})"
                     " UNION ALL SELECT * FROM tasks WHERE seq > %s"
                     " UNION ALL SELECT * FROM tasks WHERE seq IN (SELECT seq FROM search_skipped WHERE seq <= %s))"
                     " AS tasks")

class Rows(Protocol):
    def __call__(self, sql: str, params: Sequence[Any] = (), prepare: bool | None = None) -> list[Any]: ...


def kwargs_term(key: str, expected: str) -> tuple[str, str]:
    """``kwargs:key=value``'s key and value as the stored pairs hold them: case-folded, without NULs."""
    return key.casefold().replace("\x00", ""), expected.casefold().replace("\x00", "")


def index_predicate(node: Expression, trigram: bool) -> tuple[str, list[Any]] | None:
    """SQL over ``task_search`` true for every task whose row the search's SQL accepts (its AND and
    OR as in the search); None where the indexes cannot narrow it down (and an OR holding such a part)."""
    if isinstance(node, Term):
        return _term_predicate(node, trigram)
    parts = [index_predicate(child, trigram) for child in node.children]
    if isinstance(node, All):
        kept = [part for part in parts if part is not None]
        if not kept:
            return None
        return "(" + " AND ".join(sql for sql, _ in kept) + ")", [p for _, params in kept for p in params]
    if any(part is None for part in parts):
        return None
    known = [part for part in parts if part is not None]
    return "(" + " OR ".join(sql for sql, _ in known) + ")", [p for _, params in known for p in params]


def _term_predicate(term: Term, trigram: bool) -> tuple[str, list[Any]] | None:
    if not trigram or term.field == "state":  # states are few: the state's own index serves them
        return None
    if term.pair is not None:
        key, expected = kwargs_term(*term.pair)
        # Literal kwargs by their pairs; the others by their text (which the search text holds).
        pair = orjson.dumps([{"k": key, "v": expected}]).decode()
        return ("(kwargs_pairs @> %s::jsonb OR text LIKE %s OR text LIKE %s)",
                [pair, like_pattern(f"'{key}': {expected}"), like_pattern(f"'{key}': '{expected}'")])
    # The text holds every searchable column folded: a column holding the term (as the check
    # folds it, ASCII letters only or str.casefold()) puts it there too. As SQLite's LIKE reads its
    # pattern, nothing after a NUL character takes part.
    folded = term.folded.split("\x00", 1)[0]
    if len(folded) < 3:  # no trigram to look up: every row would be a hit
        return None
    return "text LIKE %s", [like_pattern(folded)]


class HitCache:
    """The hits of the latest searches, each with the watermark and the version it was read at.

    Hits read at the watermark and version a search sees now are still its hits: since then tasks
    may only have left the history (nothing to read); the indexer's walk moves the watermark, and
    tasks moving between the table and the skipped ones bump the version. So the task table's page
    and total, and its refreshes while nothing is indexed, look the index up once (the common
    trigrams' posting lists are a search's main cost).
    """

    SIZE = 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, tuple[Any, ...]], tuple[int, int, list[int] | None]] = OrderedDict()

    def get(self, key: tuple[str, tuple[Any, ...]], version: int, watermark: int) -> tuple[list[int] | None] | None:
        """(hits, or None for too many) read at ``version`` and ``watermark``, if kept."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[:2] != (version, watermark):
                return None
            self._entries.move_to_end(key)
            return (entry[2],)

    def put(self, key: tuple[str, tuple[Any, ...]], version: int, watermark: int, hits: list[int] | None) -> None:
        with self._lock:
            self._entries[key] = (version, watermark, hits)
            self._entries.move_to_end(key)
            while len(self._entries) > self.SIZE:
                self._entries.popitem(last=False)


def index_hits(rows: Rows, predicate: tuple[str, list[Any]], cache: HitCache | None = None
               ) -> tuple[list[int], int] | None:
    """The index's hits and the watermark, read in the caller's snapshot (or kept from an earlier one
    at the same version); None when more than MAX_UNINDEXED of the tasks are not indexed: a scan is
    the better answer. Past MAX_HITS only the first MAX_HITS + 1 found (in no order): a page is then
    quicker read in its order, an exact total from the index (``CANDIDATE_MATCHES``), and a total
    counted up to a cap below MAX_HITS often from these alone."""
    state = rows("SELECT watermark, version, (SELECT min(seq) FROM tasks), (SELECT max(seq) FROM tasks) "
                 "FROM search_state", ())
    if not state:
        return None
    watermark, version, low, high = state[0]
    if high is None:
        return None
    sql, params = predicate
    key = (sql, tuple(params))
    kept = cache.get(key, int(version), int(watermark)) if cache is not None else None
    most = int((high - low + 1) * MAX_UNINDEXED)
    tail = high - max(watermark, low - 1)
    if tail > most:
        return None
    skipped = rows("SELECT count(*) FROM (SELECT 1 FROM search_skipped LIMIT %s) s", (most + 1,))[0][0]
    if tail + skipped > most:
        return None
    if kept is not None and kept[0] is not None:
        return kept[0], int(watermark)
    # Never prepared: psycopg prepares a statement run five times, and PostgreSQL may then choose a
    # generic plan, which cannot take trigrams from a LIKE pattern it does not know and reads every
    # row of the table instead (1.4 s at a million tasks, against 40 ms).
    hits = [row[0] for row in rows(f"SELECT seq FROM task_search WHERE {sql} LIMIT %s", (*params, MAX_HITS + 1),
                                   prepare=False)]
    if cache is not None:
        cache.put(key, version, int(watermark), hits)
    return hits, int(watermark)


# One slice of the walk above the watermark (or of the skipped tasks): the settled ones into the
# table, the others into (or left in) search_skipped; the slice's last seq and its sizes.
_WALK = f"""WITH walk AS (
    SELECT seq, {pg_schema.READY} AS ready FROM tasks
    WHERE seq > %(after)s AND seq <= %(horizon)s ORDER BY seq LIMIT %(limit)s
), added AS ({pg_schema.SEARCH_ROWS % {"seqs": "SELECT seq FROM walk WHERE ready"}} RETURNING 1
), skipped AS (
    INSERT INTO search_skipped SELECT seq FROM walk WHERE NOT ready ON CONFLICT DO NOTHING
)
SELECT (SELECT max(seq) FROM walk), (SELECT count(*) FROM added), (SELECT count(*) FROM walk)"""
_REVISIT = f"""WITH walk AS (
    SELECT s.seq, {pg_schema.READY} AS ready
    FROM search_skipped s JOIN tasks t ON t.seq = s.seq
    WHERE s.seq > %(after)s ORDER BY s.seq LIMIT %(limit)s
), added AS ({pg_schema.SEARCH_ROWS % {"seqs": "SELECT seq FROM walk WHERE ready"}} RETURNING 1
), gone AS (
    DELETE FROM search_skipped WHERE seq IN (SELECT seq FROM walk WHERE ready)
), moved AS (
    UPDATE search_state SET version = version + 1 WHERE EXISTS (SELECT 1 FROM walk WHERE ready)
)
SELECT (SELECT max(seq) FROM walk), (SELECT count(*) FROM added), (SELECT count(*) FROM walk)"""


class SearchIndexer:
    """Fills ``task_search`` in short transactions on the leader's writing connection (the caller
    holds the store's write lock: the writer's flushes and the indexing take turns)."""

    def __init__(self, settle_seconds: float = pg_schema.SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        # (monotonic time, highest seq then): tasks are walked once they were written at least
        # settle_seconds ago. Those already there at the first run count as old.
        self._seen: deque[tuple[float, int]] = deque()
        self._revisit_after = 0
        self._row_seconds = 300e-6  # running estimate of one task's indexing time: sizes the slices
        self.caught_up = False  # the last run left nothing to do

    def _horizon(self, conn: psycopg.Connection[Any], now: float) -> int:
        row = conn.execute("SELECT max(seq) FROM tasks").fetchone()
        top = int(row[0]) if row and row[0] is not None else 0
        seen = self._seen
        if not seen:
            seen.append((float("-inf"), top))
        seen.append((now, top))
        limit = now - self.settle_seconds
        while len(seen) > 1 and seen[1][0] <= limit:
            seen.popleft()
        return min(seen[0][1], top)

    def run(self, conn: psycopg.Connection[Any], budget_seconds: float) -> int:
        """Index for about ``budget_seconds`` (at least one slice); how many tasks were indexed."""
        started = time.monotonic()
        deadline = started + budget_seconds
        horizon = self._horizon(conn, started)
        indexed, last, walked = self._slice(conn, _REVISIT, after=self._revisit_after, limit=SKIPPED_WINDOW)
        self._revisit_after = last if walked == SKIPPED_WINDOW else 0
        while True:
            now = time.monotonic()
            size = min(max(int(max(deadline - now, 0.0) / self._row_seconds), 16), 5000)
            row = conn.execute("SELECT watermark FROM search_state").fetchone()
            after = int(row[0]) if row else 0
            count, last, _ = self._slice(conn, _WALK, after=after, horizon=horizon, limit=size)
            if not last:
                self.caught_up = self._revisit_after == 0
                return indexed
            if count:
                took = max((time.monotonic() - now) / count, 1e-6)
                self._row_seconds = 0.7 * self._row_seconds + 0.3 * took
            indexed += count
            if time.monotonic() >= deadline:
                self.caught_up = False
                return indexed

    def _slice(self, conn: psycopg.Connection[Any], sql: str, **params: Any) -> tuple[int, int, int]:
        """Run one slice in a transaction: how many tasks it indexed, the last seq it passed (0: none
        was left) and how many it passed."""
        wall = time.time()
        params.update(recent=wall - self.settle_seconds, future=wall + self.settle_seconds)
        with conn.transaction():
            row = conn.execute(sql, params).fetchone()
            last, added, walked = row if row else (None, 0, 0)
            if last is not None and sql is _WALK:
                conn.execute("UPDATE search_state SET watermark = %s", (last,))
        return int(added), int(last or 0), int(walked)
