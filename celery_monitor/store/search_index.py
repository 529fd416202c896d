"""A trigram index over the tasks' args, kwargs and result (and id, name, state, worker), filled behind the writer.

Substring search over a large history is a scan of every row unless an index narrows it down, and
an FTS5 index kept up to date inside every write would multiply the cost of ingesting. So the
index is filled afterwards, a bounded slice at a time (``SearchIndexer.run``), with finished tasks
only: their text seldom changes any more. Whatever is not indexed yet (the rows above the watermark,
and the skipped rows: tasks that were unfinished when the walk passed them) is scanned, so a search
returns exactly what a scan of every row would.

That scan is what a search right after a heavy stream pays for, so the walk stays close behind the
writes: a finished task is indexed as soon as the walk reaches it, and an unfinished one holds the
walk only while it is young (written less than the settle delay ago, and fewer than ``HOLD_ROWS``
tasks after it), then it is skipped and looked at again later. The rows above the watermark are
then the tasks still running near the top plus whatever the indexer has not reached yet, and the
writer gives the indexer its idle time between flushes (``StoreWriter.index``) for the latter.

Index hits are only candidates: the query checks each with the very LIKE a scan uses. The index
therefore only has to find a superset, so it keeps no positions (``detail=none``: every trigram of
a term present, in any column and order, is enough), its Unicode case folding (wider than LIKE's
ASCII-only folding) merely adds candidates, and it may keep entries of text a task no longer has.

Invariant: the text of every task whose seq is at most the watermark and not in ``search_skipped``
is in the index. A trigger keeps it true when an indexed task's text changes after all (a late
out-of-order event, a revoked task that finishes later, a task run again under the same id): in the
same transaction the row joins the skipped ones, to be indexed again.

The index is a ring of FTS5 tables ("slots") filled one after the other, and trimming empties a
slot once all its tasks are gone. Deleting rows from one big FTS5 table instead leaves delete
markers that only go away when its segments are merged: a history kept at its size while tasks
keep coming made that index three times its size and its searches thirty times slower.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import orjson

from celery_monitor.states import FINISHED_STATES
from celery_monitor.store.search import All, Expression, SearchTerms, Term, fold_expansions

# The slots' tables are all made with the schema: an in-memory store could not take a schema change
# while it is being read. 32 of 65,536 tasks hold two million before a slot has to take more.
SLOTS = 32
SLOT_ROWS = 65_536  # a slot takes this many tasks before the next empty one is started
MERGE_PAGES = 64  # pages one merge step of a full slot writes: a few milliseconds
MAX_TRIGRAMS = 32  # per query: more add doclists to read, hardly fewer candidates
SETTLE_SECONDS = 10.0  # how long an unfinished task may hold the walk, at most
HOLD_ROWS = 1000  # ...and while fewer than this many tasks came after it: the scanned tail stays short
SKIPPED_WINDOW = 1000  # skipped rows looked at again per run: bounded however many there are
BATCH_SECONDS = 0.05  # one batch of indexing at most (a transaction): a flush waits no longer for it


def slot_table(slot: int) -> str:
    return f"task_search_{slot}"


SCHEMA = "".join(
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {slot_table(slot)} USING fts5(search_args, search_kwargs,"
    " search_result, content='', detail=none, columnsize=0, tokenize='trigram');\n"
    for slot in range(SLOTS)
) + f"""
CREATE TABLE IF NOT EXISTS search_slots (
    slot INTEGER PRIMARY KEY, high INTEGER, rows INTEGER NOT NULL DEFAULT 0, merged INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO search_slots (slot) VALUES {", ".join(f"({slot})" for slot in range(SLOTS))};
CREATE TABLE IF NOT EXISTS search_skipped (seq INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS search_state (
    id INTEGER PRIMARY KEY CHECK (id = 0), watermark INTEGER NOT NULL, slot INTEGER NOT NULL
);
INSERT OR IGNORE INTO search_state VALUES (0, 0, 0);
"""
# No "OR IGNORE" in here: the upsert that fires it would impose its own conflict handling.
_STALE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS task_search_stale AFTER UPDATE ON tasks
WHEN (new.args IS NOT old.args OR new.kwargs IS NOT old.kwargs OR new.result IS NOT old.result
      OR new.name IS NOT old.name OR new.state IS NOT old.state OR new.worker IS NOT old.worker)
    AND old.seq <= (SELECT watermark FROM search_state)
    AND NOT EXISTS (SELECT 1 FROM search_skipped WHERE seq = old.seq)
BEGIN
    INSERT INTO search_skipped (seq) VALUES (old.seq);
END;
"""
SCHEMA += _STALE_TRIGGER
# Version 2: a bare term also matches the task's id, name, state and worker, so the index holds
# them too (in the third column, after the result: columns are not told apart, detail=none).
INDEX_VERSION = 2
_INDEXED_TEXT = ("args, kwargs, coalesce(result, '') || char(10) || uuid || char(10) || coalesce(name, '')"
                 " || char(10) || coalesce(state, '') || char(10) || coalesce(worker, '')")


def upgrade(conn: sqlite3.Connection) -> None:
    """Empty an index made by an older version, to be filled again (searches scan meanwhile)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'search_index_version'").fetchone()
    if row is not None and orjson.loads(row[0]) >= INDEX_VERSION:
        return
    with _transaction(conn):
        conn.execute("DROP TRIGGER IF EXISTS task_search_stale")
        conn.execute(_STALE_TRIGGER)
        for slot in range(SLOTS):
            conn.execute(f"INSERT INTO {slot_table(slot)} ({slot_table(slot)}) VALUES ('delete-all')")
        conn.execute("UPDATE search_slots SET high = NULL, rows = 0, merged = 0")
        conn.execute("DELETE FROM search_skipped")
        conn.execute("UPDATE search_state SET watermark = 0, slot = 0")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('search_index_version', ?)", (orjson.dumps(INDEX_VERSION),))

WATERMARK = "(SELECT watermark FROM search_state)"
# Past this many index hits a search reads the rows in the order asked for instead, and stops at
# the page's end: the hits are dense enough then for that to be quick.
MAX_HITS = 20_000
HIT_COST = 3.0  # reading, checking and sorting a hit, in rows a scan passes in the same time (measured)
MAX_UNINDEXED = 0.25  # share of the tasks not in the index beyond which a search scans them all
# The rows a search reads when the index answers: the hits, the rows above the watermark and the
# skipped ones (the watermark and the hits as read in the query's snapshot), looked up by seq.
CANDIDATES = ("seq IN (SELECT seq FROM tasks WHERE seq > ? UNION ALL SELECT seq FROM search_skipped"
              " UNION ALL SELECT value FROM json_each(?))")
# The same as a table, for queries sorted by other keys. "LIMIT -1" keeps SQLite from merging the
# outer query's filters and order into it, where they could make it walk every task in some
# index's order, looking for the few candidates.
CANDIDATE_TASKS = f"(SELECT * FROM tasks WHERE {CANDIDATES} LIMIT -1) AS tasks"

_FINISHED = ", ".join(f"'{state}'" for state in sorted(FINISHED_STATES))
# Finished: ready to index. A late event that changes its text after all is rare (the trigger
# sends the row back to the scanned part); waiting for one would leave every recent task scanned.
_READY = f"coalesce(state IN ({_FINISHED}), 0)"
# A slice of rows, each with 1 (ready to index), 0 (not yet) or -1 (revisited, but trimmed meanwhile).
_WALK = f"SELECT seq, {_READY} FROM tasks WHERE seq > :after ORDER BY seq LIMIT :limit"
_REVISIT = (f"SELECT s.seq, CASE WHEN t.seq IS NULL THEN -1 ELSE {_READY} END"
            " FROM search_skipped s LEFT JOIN tasks t ON t.seq = s.seq"
            " WHERE s.seq > :after ORDER BY s.seq LIMIT :limit")
_MAX_SEQ = "SELECT max(seq) FROM tasks"


def match_expression(terms: SearchTerms) -> str | None:
    """An FTS5 query every row the search's SQL accepts also matches (AND and OR as in the search).

    A term stands for the AND of its trigrams; one too short to have any (or an expression with no
    such term) narrows nothing down: None, and where it is ORed the whole OR is None.
    """
    return None if terms.expression is None else _fts(terms.expression)


def _fts(node: Expression) -> str | None:
    if isinstance(node, Term):
        return _term_trigrams(node.pair[0] if node.pair is not None else node.value)
    parts = [_fts(child) for child in node.children]
    if isinstance(node, All):
        kept = [part for part in parts if part is not None]
        return None if not kept else " AND ".join(f"({part})" for part in kept)
    if any(part is None for part in parts):
        return None
    return " OR ".join(f"({part})" for part in parts)


def _term_trigrams(value: str) -> str | None:
    """The AND of the term's trigrams that every text holding the term (ignoring case) has in the index.

    Search folds case as str.casefold() does, the index as FTS5 does, letter by letter: the two
    differ only where casefold() turns one letter into several (ß into ss, the ligature ﬁ into
    fi...). A text with "straße" holds "STRASSE" for the search, but the index has "raß", not
    "ras". So trigrams that touch such a sequence in the term are not asked for.
    """
    # LIKE reads its pattern as a C string: nothing after a NUL character takes part.
    folded = value.split("\0", 1)[0].casefold()
    unsafe = _expansion_marks(folded)
    grams = list(dict.fromkeys(folded[i : i + 3] for i in range(len(folded) - 2) if not any(unsafe[i : i + 3])))
    if not grams:
        return None
    if len(grams) > MAX_TRIGRAMS:
        step = len(grams) / MAX_TRIGRAMS
        grams = [grams[int(i * step)] for i in range(MAX_TRIGRAMS)]
    # A quoted string of three characters is one trigram token; juxtaposed tokens are ANDed.
    return " ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def _expansion_marks(folded: str) -> list[bool]:
    """For each position of a case-folded term: could it stem from a letter that casefold() expands?

    Also at the edges, where the term may begin inside such a sequence or end inside one.
    """
    marks = [False] * len(folded)
    for expansion in fold_expansions():
        start = folded.find(expansion)
        while start >= 0:
            marks[start : start + len(expansion)] = [True] * len(expansion)
            start = folded.find(expansion, start + 1)
        for cut in range(1, len(expansion)):
            if folded.startswith(expansion[cut:]):
                marks[: len(expansion) - cut] = [True] * min(len(expansion) - cut, len(folded))
            if folded.endswith(expansion[:cut]):
                marks[len(folded) - cut :] = [True] * min(cut, len(folded))
    return marks


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so that the index's hits and the rows they stand for agree."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def hit_limit(rows: int, wanted: int) -> int:
    """How many hits a search sorted by another key than seq may read before a scan is quicker.

    All the hits are read and sorted, at HIT_COST times the cost of a row a scan passes; the scan,
    in the key's order, stops after ``wanted`` matches, about ``wanted * rows / hits`` rows in.
    """
    return min(MAX_HITS, int(math.sqrt(wanted * rows / HIT_COST)))


def hits_sql(slots: list[int]) -> str:
    """The index hits for a match expression (?1), at most ?2 of them, from the given slots."""
    return " UNION ALL ".join(
        f"SELECT rowid AS hit FROM {slot_table(slot)} WHERE {slot_table(slot)} MATCH ?1" for slot in slots
    ) + " LIMIT ?2"


def index_hits(conn: sqlite3.Connection, match: str, limit: int) -> tuple[int, str] | None:
    """The watermark and the index's hits for ``match`` (a JSON array).

    None past ``limit`` hits, or when more than MAX_UNINDEXED of the tasks are not in the index (a
    history just opened, an indexer far behind): every one of those is a candidate, and a scan
    reads them quicker than a lookup each.
    """
    watermark, low, high = conn.execute(
        f"SELECT {WATERMARK}, (SELECT min(seq) FROM tasks), (SELECT max(seq) FROM tasks)").fetchone()
    if high is None:
        return None
    most = int((high - low + 1) * MAX_UNINDEXED)
    tail = high - max(watermark, low - 1)
    if tail > most or tail + conn.execute("SELECT count(*) FROM (SELECT 1 FROM search_skipped LIMIT ?)",
                                          (most + 1,)).fetchone()[0] > most:
        return None
    slots = [row[0] for row in conn.execute("SELECT slot FROM search_slots WHERE high IS NOT NULL")]
    if not slots:
        return watermark, "[]"
    # All the hits in one step, as a JSON array (row by row, every row would wait for the GIL).
    hits, count = conn.execute(f"SELECT json_group_array(hit), count(*) FROM ({hits_sql(slots)})",
                               (match, limit + 1)).fetchone()
    return None if count > limit else (watermark, hits)


def forget(conn: sqlite3.Connection, end: int) -> None:
    """After tasks up to ``end`` are deleted: drop them from the skipped ones, empty the slots that
    held only them. Called in the transaction that deletes them."""
    conn.execute("DELETE FROM search_skipped WHERE seq <= ?", (end,))
    for (slot,) in conn.execute("SELECT slot FROM search_slots WHERE high <= ?", (end,)).fetchall():
        table = slot_table(slot)
        conn.execute(f"INSERT INTO {table} ({table}) VALUES ('delete-all')")
        conn.execute("UPDATE search_slots SET high = NULL, rows = 0, merged = 0 WHERE slot = ?", (slot,))
    if conn.execute(_MAX_SEQ).fetchone()[0] is None:
        # An emptied table hands out seqs from 1 again: they must not count as indexed.
        conn.execute("UPDATE search_state SET watermark = 0")


class SearchIndexer:
    """Fills the index in short transactions on the store's writing connection.

    ``lock`` guards that connection; ``index_lock`` keeps searches out while the index changes
    (needed where readers see uncommitted writes). ``settle_seconds`` (with ``HOLD_ROWS``) is how
    long an unfinished task holds the walk before it is skipped.
    """

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock, index_lock: AbstractContextManager[Any],
                 settle_seconds: float = SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self._conn = conn
        self._lock = lock
        self._index_lock = index_lock
        # (monotonic time, highest seq then): rows are walked once they were written at least
        # settle_seconds ago. Rows already there when the store opened count as old.
        self._seen: deque[tuple[float, int]] = deque([(float("-inf"), self._max_seq())])
        self._revisit_after = 0
        self._row_seconds = 100e-6  # running estimate of one row's indexing time: sizes the batches
        self.caught_up = False  # the last run left nothing to do: all walked, skipped seen, slots merged

    def _max_seq(self) -> int:
        with self._lock:
            return int(self._conn.execute(_MAX_SEQ).fetchone()[0] or 0)

    def _hold_above(self, now: float) -> int:
        """The seq above which an unfinished task is young: it holds the walk rather than being skipped.

        Written less than ``settle_seconds`` ago (a task about to finish), and fewer than HOLD_ROWS
        tasks written after it (else the rows it holds back would make searches scan too many).
        """
        seen = self._seen
        top = self._max_seq()
        seen.append((now, top))
        limit = now - self.settle_seconds
        while len(seen) > 1 and seen[1][0] <= limit:
            seen.popleft()
        return max(seen[0][1], top - HOLD_ROWS)

    def run(self, budget_seconds: float, until: Callable[[], bool] | None = None) -> int:
        """Index for about ``budget_seconds`` (at least one batch), or until ``until()`` says to stop
        (checked between batches); returns how many rows were indexed.

        Time left over goes to merging the segments of full slots, which keeps searches quick.
        """
        started = time.monotonic()
        deadline = started + budget_seconds
        hold_above = self._hold_above(started)
        self.caught_up = False
        indexed = max(self._batch(walk=False, after=self._revisit_after, limit=SKIPPED_WINDOW), 0)
        while until is None or not until():
            now = time.monotonic()
            size = int(min(max(deadline - now, 0.0), BATCH_SECONDS) / self._row_seconds)
            count = self._batch(walk=True, hold_above=hold_above, limit=min(max(size, 16), 5000))
            if count < 0:
                break
            if count:
                self._row_seconds = 0.7 * self._row_seconds + 0.3 * max((time.monotonic() - now) / count, 1e-6)
            indexed += count
            if time.monotonic() >= deadline:
                return indexed
        while time.monotonic() < deadline and (until is None or not until()):
            if not self._merge_step():
                self.caught_up = self._revisit_after == 0
                break
        return indexed

    def _batch(self, walk: bool, hold_above: int = 0, **params: Any) -> int:
        """Index the ready rows of one slice (of the walk or of the skipped rows).

        The walk ends its slice before the first unfinished task above ``hold_above``. Returns how
        many were indexed, or -1 when the slice was empty.
        """
        conn = self._conn
        with self._lock, self._index_lock:
            # Two transactions: the index entries are committed before their rows leave the scanned
            # part (readers of an in-memory store see uncommitted rows, but not FTS5's pending ones).
            with _transaction(conn):
                if walk:
                    params["after"] = conn.execute(f"SELECT {WATERMARK}").fetchone()[0]
                rows = _fetch_pairs(conn, _WALK if walk else _REVISIT, params)
                if walk:
                    rows = _until_held(rows, hold_above)
                ready = [seq for seq, flag in rows if flag > 0]
                if ready:
                    _index(conn, ready)
            if not rows:
                if not walk:
                    self._revisit_after = 0
                return -1
            with _transaction(conn):
                if walk:
                    conn.execute("INSERT OR IGNORE INTO search_skipped (seq) SELECT value FROM json_each(?)",
                                 (orjson.dumps([seq for seq, flag in rows if not flag]).decode(),))
                    conn.execute("UPDATE search_state SET watermark = ?", (rows[-1][0],))
                else:  # indexed now, or trimmed meanwhile
                    conn.execute("DELETE FROM search_skipped WHERE seq IN (SELECT value FROM json_each(?))",
                                 (orjson.dumps([seq for seq, flag in rows if flag]).decode(),))
        if not walk:
            self._revisit_after = rows[-1][0] if len(rows) == params["limit"] else 0
        return len(ready)

    def _merge_step(self) -> bool:
        """Merge some segments of a full slot (built from many small transactions); False when none is left.

        The newest full slot first: it stays longest.
        """
        conn = self._conn
        with self._lock, self._index_lock, _transaction(conn):
            row = conn.execute(
                "SELECT slot FROM search_slots WHERE merged = 0 AND high IS NOT NULL"
                " AND slot != (SELECT slot FROM search_state) ORDER BY high DESC LIMIT 1").fetchone()
            if row is None:
                return False
            table = slot_table(row[0])
            before = conn.total_changes
            conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('merge', ?)", (-MERGE_PAGES,))
            if conn.total_changes - before < 2:  # nothing left to merge
                conn.execute("UPDATE search_slots SET merged = 1 WHERE slot = ?", row)
        return True


def _until_held(rows: list[tuple[int, int]], hold_above: int) -> list[tuple[int, int]]:
    """The rows of a slice of the walk up to the first young unfinished task (not included)."""
    for position, (seq, flag) in enumerate(rows):
        if not flag and seq > hold_above:
            return rows[:position]
    return rows


def _index(conn: sqlite3.Connection, seqs: list[int]) -> None:
    """Add these tasks' text to the slot being filled (the next empty one once it is full)."""
    slot, rows = conn.execute(
        "SELECT slot, rows FROM search_slots WHERE slot = (SELECT slot FROM search_state)").fetchone()
    if rows >= SLOT_ROWS:
        empty = conn.execute("SELECT slot FROM search_slots WHERE high IS NULL ORDER BY (slot - ? + ?) % ? LIMIT 1",
                             (slot, SLOTS, SLOTS)).fetchone()
        if empty is not None:  # else the history outgrew the ring: the slot takes more
            slot = empty[0]
            conn.execute("UPDATE search_state SET slot = ?", (slot,))
    table = slot_table(slot)
    conn.execute(f"INSERT INTO {table} (rowid, search_args, search_kwargs, search_result)"
                 f" SELECT seq, {_INDEXED_TEXT} FROM tasks WHERE seq IN (SELECT value FROM json_each(?))",
                 (orjson.dumps(seqs).decode(),))
    conn.execute("UPDATE search_slots SET high = max(coalesce(high, 0), ?), rows = rows + ? WHERE slot = ?",
                 (max(seqs), len(seqs), slot))


def _fetch_pairs(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> list[tuple[int, int]]:
    """All rows of a two-column query in one step of SQLite, as one JSON array.

    Fetching row by row hands the GIL back and forth for every row, and while the applier keeps
    the GIL busy each hand-back waits for a thread switch: thousands of rows would take seconds.
    """
    sql = f"WITH q(a, b) AS ({sql}) SELECT json_group_array(json_array(a, b)) FROM q"
    text = conn.execute(sql, params).fetchone()[0]
    return [(seq, flag) for seq, flag in orjson.loads(text)]


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
