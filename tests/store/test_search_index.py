"""Search through the trigram index answers exactly what a LIKE scan of every task answers.

The same store is asked twice: through the index (the normal path), and with the index turned
away (``MAX_HITS = -1``: the plain scan every search was before the index existed). Between the
rounds the history changes the ways it does in life: unfinished tasks finish, finished ones change
after all, new ones arrive, the oldest are trimmed.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.processes import wait_for

from celery_monitor.store import search_index
from celery_monitor.store.query import SORT_KEYS, TaskQuery
from celery_monitor.store.search import parse_search
from celery_monitor.store.sqlite import SQLiteStore
from celery_monitor.store.writer import StoreWriter

NOW = time.time()
OLD = NOW - 3600
FINISHED = ("SUCCESS", "FAILURE", "REVOKED", "REJECTED")
UNFINISHED = ("PENDING", "RECEIVED", "STARTED", "RETRY", "PROGRESS")
# Case, LIKE's wildcards and escape character, non-ASCII letters LIKE does not fold.
PIECES = (
    "customer-12", "Customer-123", "CUSTOMER-1234", "customer-99", "order 100%", "100% done", "a_b", "aXb",
    "back\\slash", "c:\\temp\\x", "école", "ÉCOLE", "straße", "STRASSE", "naïve", "NAÏVE", "kelvin \u212a",
    "sku-1_2", "x%y_z", "日本語テキスト", "party 🎉", "tab\there", "nul\x00after", "ok", "Ab",
)
SEARCHES = (
    "customer-12", "CUSTOMER-123", "cUsToMeR", "customer-1234 ", "100%", "%", "0% d", "a_b", "_", "x%y",
    "back\\slash", "\\", "\\temp\\", "école", "ÉCOLE", "ÉCOle", "straße", "STRASSE", "naïve", "kelvin k",
    "日本語", "🎉", "nul\x00zzz", "ul\x00", "customer-12\x00zzz", "ab", "é", "ok", "args:customer-12",
    "result:DONE", "result:none", "args:ok result:done", "kwargs:tenant=t3", "kwargs:tenant=t3 customer", "tenant",
    "name:billing customer", "worker:w2 customer-1", "state:FAILURE customer", "state:FAILURE state:REVOKED école",
    '"order 100%"', "customer-12 école", "args:ÉCOLE", "late-result", "rerun-args", "fresh-tail", "zzz-nowhere",
)  # fmt: skip
# Trigrams whose index entries are checked one by one (their case folding agrees with str.lower()).
TRIGRAMS = ("cus", "ome", "-12", "éco", "ole", "100", "0% ", "a_b", "\\sl", "日本語", "ass", "ïve", "one", "ult")


def make_task(rnd: random.Random, i: int, state: str | None = None, timestamp: Any = OLD) -> dict[str, Any]:
    state = state or rnd.choice(FINISHED)
    args = None if i % 17 == 0 else repr(tuple(rnd.sample(PIECES, rnd.randint(1, 3))))
    kwargs = "{}" if i % 3 else repr({"tenant": f"t{i % 5}", "note": rnd.choice(PIECES)})
    result = repr({"status": rnd.choice(("done", "DONE", "Ok")), "id": i}) if state == "SUCCESS" else None
    return {"uuid": f"task-{i}", "name": rnd.choice(("app.add", "billing.charge", "Billing.refund")),
            "state": state, "worker": rnd.choice(("celery@w1", "celery@W2", None)), "args": args,
            "kwargs": kwargs, "result": result, "received": None if i % 11 == 0 else OLD + rnd.random() * 100,
            "started": OLD + i, "runtime": rnd.choice((None, 0.5, rnd.random())), "timestamp": timestamp,
            "sent": OLD + (i % 7), "succeeded": OLD + i if state == "SUCCESS" else None}


def history(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Mostly finished and settled tasks; some unfinished, some just finished, odd timestamps."""
    rnd = random.Random(seed)
    tasks = []
    for i in range(count):
        kind = i % 10
        if kind == 0:
            tasks.append(make_task(rnd, i, state=rnd.choice(UNFINISHED)))
        elif kind == 1:
            tasks.append(make_task(rnd, i, timestamp=time.time()))  # finished a moment ago: not settled
        elif kind == 2:
            tasks.append(make_task(rnd, i, timestamp=rnd.choice((None, NOW + 86400))))
        else:
            tasks.append(make_task(rnd, i))
    return tasks


def variants(text: str) -> Iterator[TaskQuery]:
    terms = parse_search(text)
    yield TaskQuery(limit=100, search=terms)
    yield TaskQuery(limit=None, search=terms)
    yield TaskQuery(limit=7, offset=5, search=terms)
    yield TaskQuery(limit=10, descending=False, search=terms)
    for key in SORT_KEYS:
        yield TaskQuery(limit=20, offset=3, sort_by=key, descending=len(key) % 2 == 0, search=terms)
    yield TaskQuery(limit=50, states=["FAILURE", "STARTED"], search=terms)
    yield TaskQuery(limit=50, names=["billing.charge"], workers=["celery@W2"], search=terms)
    yield TaskQuery(limit=50, received_start=OLD + 10, received_end=OLD + 60, search=terms)


def scanned(monkeypatch: pytest.MonkeyPatch, store: SQLiteStore, query: TaskQuery) -> tuple[list[Any], int]:
    with monkeypatch.context() as patch:
        patch.setattr(search_index, "MAX_HITS", -1)
        assert "json_each" not in store.query_sql(query)[0]
        return store.query_tasks(query), store.count_tasks(query)


def assert_same_as_scan(monkeypatch: pytest.MonkeyPatch, store: SQLiteStore, share: int = 1, turn: int = 0) -> None:
    """Every search, each in the query shapes of ``variants``: all of them (``share=1``), or the
    whole list plus one shape in ``share`` of the others, chosen by ``turn`` so that successive
    rounds of a test, given successive turns, together ask every shape."""
    found = 0
    for number, text in enumerate(SEARCHES):
        shapes = list(variants(text))
        chosen = [query for index, query in enumerate(shapes)
                  if query.limit is None or (index + number + turn) % share == 0]
        for query in chosen:
            expected = scanned(monkeypatch, store, query)
            assert (store.query_tasks(query), store.count_tasks(query)) == expected, (text, query)
            # However many hits a query sorted by another key has (a small history has few rows
            # to scan, so reading the hits pays off only for very few of them), and however much of
            # the history the index does not cover yet.
            with monkeypatch.context() as patch:
                patch.setattr(search_index, "HIT_COST", 1e-9)
                patch.setattr(search_index, "MAX_UNINDEXED", 1.0)
                if search_index.match_expression(query.search) is not None:
                    assert "json_each" in store.query_sql(query)[0], text
                assert (store.query_tasks(query), store.count_tasks(query)) == expected, (text, query)
            found += len(expected[0])
    assert found > 1000  # the searches do find things


def slot_hits(store: SQLiteStore, gram: str) -> dict[int, set[int]]:
    found = {}
    for slot in range(search_index.SLOTS):
        table = search_index.slot_table(slot)
        found[slot] = {row[0] for row in store._reader.execute(f"SELECT rowid FROM {table} WHERE {table} MATCH ?",
                                                                (f'"{gram}"',))}
    return found


def assert_index_consistent(store: SQLiteStore) -> None:
    """The text of every task at or below the watermark and not skipped is in the index, and a slot
    is emptied once all its tasks are trimmed (text the tasks no longer have may stay till then)."""
    watermark, skipped = state(store)
    rows = store._reader.execute("SELECT seq, args, kwargs, result FROM tasks").fetchall()
    assert skipped <= {row[0] for row in rows}
    lowest = min((row[0] for row in rows), default=None)
    highs = dict(store._reader.execute("SELECT slot, high FROM search_slots").fetchall())
    for gram in TRIGRAMS:
        per_slot = slot_hits(store, gram)
        for slot, high in highs.items():
            if high is None:
                assert not per_slot[slot], (slot, gram)
            else:
                assert lowest is not None and high >= lowest and max(per_slot[slot], default=0) <= high, (slot, gram)
        hits = set().union(*per_slot.values())
        expected = {seq for seq, *texts in rows if seq <= watermark and seq not in skipped
                    and any(gram in text.lower() for text in texts if text)}
        assert expected <= hits, (gram, sorted(expected - hits)[:10])


def index_all(store: SQLiteStore) -> int:
    total = 0
    while count := store.index_search(1.0):
        total += count
    return total


def state(store: SQLiteStore) -> tuple[int, set[int]]:
    conn = store._reader
    return (conn.execute("SELECT watermark FROM search_state").fetchone()[0],
            {row[0] for row in conn.execute("SELECT seq FROM search_skipped")})


def seq_of(store: SQLiteStore, uuid: str) -> int:
    return store._reader.execute("SELECT seq FROM tasks WHERE uuid = ?", (uuid,)).fetchone()[0]


def test_match_expression() -> None:
    assert search_index.match_expression(parse_search("ab é kwargs:ke=value")) is None
    # The index also holds the name and the worker: their terms narrow the rows down too.
    assert search_index.match_expression(parse_search("ab name:abc worker:xyz")) == '("abc") AND ("xyz")'
    # The key of kwargs:key=value must be in kwargs; the value is compared after parsing.
    assert search_index.match_expression(parse_search("kwargs:tenant=t3")) == '"ena" "nan"'  # t: maybe ﬅ or ẗ
    assert search_index.match_expression(parse_search('abcd args:"x y" result:ab')) == '("abc" "bcd")'  # y: maybe ẙ
    assert search_index.match_expression(parse_search(r'result:"a\"bc"')) == '"a""b" """bc"'
    assert search_index.match_expression(parse_search("ab\x00cdef")) is None  # LIKE stops at the NUL
    assert search_index.match_expression(parse_search("aaaaaa")) == '"aaa"'
    assert search_index.match_expression(parse_search("x" * 50 + "".join(map(chr, range(0x4E00, 0x4E60))))).count('"') \
        == 2 * search_index.MAX_TRIGRAMS
    # OR: every side must narrow something down, or the index cannot answer.
    assert search_index.match_expression(parse_search("abcd OR wxyz")) == '("abc" "bcd") OR ("wxy" "xyz")'
    assert search_index.match_expression(parse_search("abcd OR wx")) is None


def test_search_through_the_index_matches_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "history.db")
    first = SQLiteStore(path)
    tasks = history(2000)
    first.write(tasks[:1000], [], {})
    first.write(tasks[1000:], [], {})
    first.close()
    # Reopened: the rows are as old as the store, so the walk may pass them at once.
    store = SQLiteStore(path)
    assert index_all(store) > 1000
    watermark, skipped = state(store)
    assert watermark == 2000
    # Skipped: unfinished. A finished task is indexed however recent its last event (a late event
    # that changes its text sends it back to the scanned part: below).
    assert skipped == {i + 1 for i in range(2000) if i % 10 == 0}
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store)

    rnd = random.Random(11)
    # Unfinished tasks finish (scanned while skipped, indexed once revisited).
    finishing = [dict(tasks[i], state="SUCCESS", result=f"'late-result {i} ÉCOLE'", timestamp=OLD)
                 for i in range(0, 400, 10)]
    # Indexed tasks change after all: a revoked task finishes, a failed one is run again.
    changed = [dict(tasks[i], state="SUCCESS", result=f"'late-result {i}'", timestamp=OLD)
               for i in range(3, 2000, 10) if tasks[i]["state"] == "REVOKED"]
    changed += [dict(tasks[i], args=f"('rerun-args', {i}, 'customer-12')", state="SUCCESS", timestamp=OLD)
                for i in range(4, 2000, 10) if tasks[i]["state"] == "FAILURE"]
    # A rejected task is received again: unfinished once more, with other args.
    reopened = [dict(tasks[i], state="RECEIVED", args=f"('rerun-args', {i})") for i in range(5, 2000, 10)
                if tasks[i]["state"] == "REJECTED"]
    # Indexed tasks that move to another worker: the worker is in their indexed text.
    changed += [dict(tasks[i], worker="celery@w9") for i in range(7, 2000, 10)]
    # Indexed tasks that change, but not in their text.
    moved = [dict(tasks[i], runtime=9.5) for i in range(6, 2000, 10)]
    # New tasks, not yet walked.
    fresh = [dict(make_task(rnd, i), args=f"('fresh-tail', {i}, 'customer-12')") for i in range(2000, 2300)]
    assert changed and reopened
    store.write(finishing + changed + reopened + moved + fresh, [], {})
    _, skipped = state(store)
    for task in changed + reopened:
        assert seq_of(store, task["uuid"]) in skipped
    assert not {seq_of(store, task["uuid"]) for task in moved} & skipped
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store, share=3, turn=1)

    store.search_indexer.settle_seconds = 0
    index_all(store)
    watermark, skipped = state(store)
    assert watermark == 2300
    assert {seq_of(store, task["uuid"]) for task in reopened} <= skipped
    assert not {seq_of(store, task["uuid"]) for task in finishing + changed} & skipped
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store, share=3, turn=2)

    # Trimming takes the oldest rows out of the skipped ones; their index entries stay, extra hits
    # that match no row, until their slot is emptied (test_slots_fill_in_turn_and_empty_when_trimmed).
    assert sum(store.trim(1100).values()) == 1200
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store, share=3, turn=3)

    # Emptied, the table hands out seqs from 1 again: they must not pass for indexed.
    store.trim(0)
    assert state(store) == (0, set())
    store.write(history(300, seed=3), [], {})
    assert_same_as_scan(monkeypatch, store, share=3, turn=4)
    index_all(store)
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store, share=3, turn=5)


def test_slots_fill_in_turn_and_empty_when_trimmed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_index, "SLOT_ROWS", 100)
    store = SQLiteStore(str(tmp_path / "h.db"), search_settle_seconds=0)

    def used() -> dict[int, int]:
        return dict(store._reader.execute("SELECT slot, high FROM search_slots WHERE high IS NOT NULL"))

    rnd = random.Random(3)
    serial = 0
    # A history kept at 600 tasks while 6,000 come, a slot's worth at a time: the ring goes round.
    for _ in range(60):
        store.write([make_task(rnd, serial + i) for i in range(100)], [], {})
        serial += 100
        index_all(store)
        store.trim(600)
        assert len(used()) <= 600 // 100 + 2
        if serial % 1000 == 0:
            assert_index_consistent(store)
    assert store._reader.execute("SELECT slot FROM search_state").fetchone()[0] == 59 % search_index.SLOTS
    assert_same_as_scan(monkeypatch, store, share=3, turn=0)
    # Full slots are merged with the time left over.
    while not store.search_indexer.caught_up:
        store.index_search(1.0)
    merged = dict(store._reader.execute("SELECT slot, merged FROM search_slots WHERE high IS NOT NULL"))
    current = store._reader.execute("SELECT slot FROM search_state").fetchone()[0]
    assert merged.pop(current) == 0 and set(merged.values()) == {1}, merged
    # A history larger than the ring holds: the last slot takes the rest.
    for _ in range(40):
        store.write([make_task(rnd, serial + i) for i in range(100)], [], {})
        serial += 100
        index_all(store)
    assert len(used()) == search_index.SLOTS
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store, share=3, turn=1)
    store.trim(600)
    assert len(used()) <= 600 // 100 + 2
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store, share=3, turn=2)


def test_in_memory_store(monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(None, search_settle_seconds=0)
    store.write(history(600), [], {})
    assert index_all(store) > 300
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store)


@pytest.mark.parametrize("in_memory", [True, False], ids=["memory", "file"])
def test_searches_while_the_index_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool) -> None:
    """Readers search while the writer writes, indexes (small slots: merges too) and trims."""
    monkeypatch.setattr(search_index, "SLOT_ROWS", 300)
    store = SQLiteStore(None if in_memory else str(tmp_path / "h.db"), search_settle_seconds=0)
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        rnd = random.Random(1)
        try:
            for batch in range(100):
                store.write([make_task(rnd, batch * 200 + i) for i in range(200)], [], {})
                store.index_search(0.02)
                store.trim(2000)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def search() -> None:
        try:
            while not done.is_set():
                for text in ("customer-12", "école", "ab"):
                    store.query_tasks(TaskQuery(limit=20, search=parse_search(text)))
                    store.query_tasks(TaskQuery(limit=20, sort_by="runtime", search=parse_search(text)))
                    store.count_tasks(TaskQuery(search=parse_search(text)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write), *(threading.Thread(target=search) for _ in range(3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store)


def test_many_hits_fall_back_to_reading_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(str(tmp_path / "h.db"), search_settle_seconds=0)
    store.write(history(500), [], {})
    index_all(store)
    for query in (TaskQuery(limit=10, search=parse_search("customer")),
                  TaskQuery(limit=10, sort_by="runtime", search=parse_search("customer"))):
        with monkeypatch.context() as patch:
            patch.setattr(search_index, "HIT_COST", 1e-9)
            assert "json_each" in store.query_sql(query)[0]
            expected = store.query_tasks(query), store.count_tasks(query)
        with monkeypatch.context() as patch:
            patch.setattr(search_index, "MAX_HITS", 20)
            sql = store.query_sql(query)[0]
            assert "json_each" not in sql and "LIKE" in sql
            assert (store.query_tasks(query), store.count_tasks(query)) == expected
    # Left to itself, a store this small reads the hits of a sorted query only when they are few.
    sort = {"limit": 30, "sort_by": "runtime"}  # up to sqrt(30 * 500 / 3) = 70 hits
    assert "json_each" not in store.query_sql(TaskQuery(search=parse_search("customer"), **sort))[0]
    assert "json_each" in store.query_sql(TaskQuery(search=parse_search("customer-99"), **sort))[0]


def test_a_young_unfinished_task_holds_the_walk_then_is_skipped(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "h.db"), search_settle_seconds=0.3)
    rnd = random.Random(1)
    tasks = [make_task(rnd, i, state="STARTED" if i == 10 else None, timestamp=time.time()) for i in range(50)]
    store.write(tasks, [], {})
    # Finished tasks are indexed at once, however recent; the running one may finish any moment:
    # the walk waits there, and the rows after it stay in the scanned tail meanwhile.
    assert store.index_search() == 10
    assert state(store) == (10, set())
    deadline = time.monotonic() + 10
    indexed = 10
    while indexed < 49 and time.monotonic() < deadline:
        indexed += store.index_search()
    # Written longer than the settle delay ago, it is skipped: scanned, and looked at again later.
    assert indexed == 49 and state(store) == (50, {11})
    store.write([dict(tasks[10], state="SUCCESS", result="'done at last'")], [], {})
    assert store.index_search() == 1 and state(store) == (50, set())


def test_an_unfinished_task_holds_the_walk_for_a_few_rows_at_most(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_index, "HOLD_ROWS", 100)
    store = SQLiteStore(str(tmp_path / "h.db"), search_settle_seconds=3600)
    rnd = random.Random(2)
    store.write([make_task(rnd, i, state="RECEIVED" if i == 5 else None) for i in range(50)], [], {})
    assert index_all(store) == 5 and state(store) == (5, set())
    # However young it is, once HOLD_ROWS tasks came after it, it no longer holds them back.
    store.write([make_task(rnd, i) for i in range(50, 200)], [], {})
    assert index_all(store) == 194 and state(store) == (200, {6})


def test_right_after_many_writes_a_search_reads_a_short_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches written as a busy writer writes them, each followed by the indexing the writer does
    before its next flush: the index stays right behind the writes, and answers exactly as a scan."""
    monkeypatch.setattr(search_index, "HOLD_ROWS", 150)
    store = SQLiteStore(str(tmp_path / "h.db"))  # the default settle delay: far longer than this test
    rnd = random.Random(9)
    for start in range(0, 3000, 300):
        # Just finished, most of them; some still running (and a few of those finish later).
        batch = [make_task(rnd, i, state=rnd.choice(UNFINISHED) if i % 40 == 0 else None, timestamp=time.time())
                 for i in range(start, start + 300)]
        batch += [dict(make_task(rnd, i, timestamp=time.time()), result=f"'finished late {i}'")
                  for i in range(0, start, 400)]
        store.write(batch, [], {})
        store.index_search(1.0)
        watermark, skipped = state(store)
        assert start + 300 - watermark <= search_index.HOLD_ROWS
        assert len(skipped) <= (start + 300) // 40  # only tasks still running
        if start >= 1200:  # (a history mostly not indexed is scanned whole: not the case here)
            query = TaskQuery(limit=100, search=parse_search("customer-12"))
            assert "json_each" in store.query_sql(query)[0]  # the index answers: no scan of every row
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store, share=4)


def test_the_writer_keeps_the_index_up_with_its_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heavy stream of finished tasks: soon after the writer has written the last of them, all
    are in the index (with the default settle delay, which no longer holds finished tasks back)."""
    store = SQLiteStore(str(tmp_path / "h.db"))
    writer = StoreWriter(store, interval=0.1)
    writer.start()
    rnd = random.Random(4)
    try:
        for start in range(0, 10_000, 1000):
            writer.submit({f"task-{i}": make_task(rnd, i, timestamp=time.time()) for i in range(start, start + 1000)},
                          {})
            time.sleep(0.02)
        wait_for(lambda: writer.pending_count == 0, 30, message="the writes")
        written = time.monotonic()
        wait_for(lambda: state(store) == (10_000, set()), 30, message="the index to catch up")
        assert time.monotonic() - written < 5.0
    finally:
        writer.stop()
        writer.join(10)
    for text in ("customer-12", "école", "zzz-nowhere"):
        query = TaskQuery(limit=50, search=parse_search(text))
        assert "json_each" in store.query_sql(query)[0]
        assert (store.query_tasks(query), store.count_tasks(query)) == scanned(monkeypatch, store, query)


def test_indexing_leaves_the_cpu_to_ingestion_while_the_applier_waits_for_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    budgets: list[float] = []

    class Recording(SQLiteStore):
        def index_search(self, budget_seconds: float = 0.05, until: Any = None) -> int:
            budgets.append(budget_seconds)
            return super().index_search(budget_seconds, until)

    monkeypatch.setattr("celery_monitor.store.writer.PRESSED_SECONDS", 0.5)
    store = Recording(str(tmp_path / "h.db"))
    writer = StoreWriter(store, interval=60)  # passes only when woken
    writer.start()
    rnd = random.Random(6)
    try:
        writer.submit({f"task-{i}": make_task(rnd, i) for i in range(10)}, {})
        assert writer.wait_for_room(5, timeout=10)  # the applier waits: the writer flushes at once
        wait_for(lambda: budgets, 10, message="the indexing after that flush")
        assert budgets == [6.0]  # a tenth of the interval
        time.sleep(0.5)
        writer.index()  # the press is over: the time up to the next flush
        assert budgets == [6.0, 48.0]
    finally:
        writer.stop()
        writer.join(10)


def test_each_call_does_a_bounded_amount_of_work(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "h.db"), search_settle_seconds=0)
    rnd = random.Random(5)
    store.write([make_task(rnd, i) for i in range(20_000)], [], {})
    started = time.monotonic()
    first = store.index_search(0.005)
    assert time.monotonic() - started < 0.5
    assert 0 < first < 20_000
    assert first + index_all(store) == 20_000


def plan(store: SQLiteStore, sql: str, params: list[Any]) -> list[str]:
    return [row[-1] for row in store._reader.execute("EXPLAIN QUERY PLAN " + sql, params)]


@pytest.fixture
def analyzed(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(str(tmp_path / "h.db"), search_settle_seconds=0)
    store.write(history(3000), [], {})
    index_all(store)
    store._reader.execute("ANALYZE")
    return store


def searched(text: str = "customer-12 args:école", **fields: Any) -> TaskQuery:
    return TaskQuery(search=parse_search(text), **fields)


@pytest.mark.parametrize("query", [
    searched(limit=100),
    searched(limit=100, offset=50),
    searched(limit=100, descending=False),
    *[searched(limit=100, sort_by=key) for key in SORT_KEYS],
    searched(limit=100, states=["FAILURE"]),
    searched(limit=100, states=["FAILURE", "REVOKED"], names=["app.add"], workers=["celery@w1"]),
    searched(limit=100, received_start=OLD, received_end=OLD + 100),
    searched("customer kwargs:tenant=t3 name:billing worker:w1 state:SUCCESS ab"),
], ids=lambda q: (f"{q.sort_by}-{q.offset}-{q.states}{q.names}{q.workers}"
                  f"{'window' if q.received_start is not None else ''}-{q.descending}"))
def test_a_search_reads_only_the_index_hits(analyzed: SQLiteStore, query: TaskQuery,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_index, "HIT_COST", 1e-9)  # a history this small is quick to scan
    sql, params = analyzed.query_sql(query)
    assert "json_each" in sql
    lines = plan(analyzed, sql, params)
    # Tasks are fetched by seq: the index hits and the skipped ones one by one, the tail as a range.
    # Never a walk over all of them.
    for line in lines:
        if "tasks " in line and line != "SCAN tasks":
            assert any(f"{key}{op}?" in line for key in ("rowid", "seq") for op in "=>"), lines
    if query.sort_by is None and query.received_start is None:
        # In seq order, straight from the candidates' order: the page ends after its last match.
        assert "CO-ROUTINE tasks" not in lines, lines
        if not query.states:
            assert not any("TEMP B-TREE" in line for line in lines), lines
    else:
        # Sorted by another key: the candidates are read in a subquery ("SCAN tasks" is its rows).
        assert lines[0] == "CO-ROUTINE tasks" and "SCAN tasks" in lines, lines
    hits = plan(analyzed, search_index.hits_sql([0, 1]), [search_index.match_expression(query.search), 10])
    scans = [line for line in hits if line.startswith("SCAN")]
    assert len(scans) == 2 and all("VIRTUAL TABLE INDEX" in line and ":M" in line for line in scans), hits


V1_SCHEMA = """
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT, state TEXT, worker TEXT,
    received REAL, sent REAL, started REAL, succeeded REAL, failed REAL, timestamp REAL, runtime REAL,
    args TEXT, kwargs TEXT, result TEXT,
    data BLOB NOT NULL
);
CREATE INDEX tasks_state ON tasks(state, seq);
CREATE INDEX tasks_name ON tasks(name, seq);
CREATE INDEX tasks_worker ON tasks(worker, seq);
CREATE INDEX tasks_received ON tasks(received);
CREATE INDEX tasks_started ON tasks(started);
CREATE INDEX tasks_sent ON tasks(sent);
CREATE INDEX tasks_succeeded ON tasks(succeeded);
CREATE INDEX tasks_failed ON tasks(failed);
CREATE INDEX tasks_timestamp ON tasks(timestamp);
CREATE INDEX tasks_runtime ON tasks(runtime);
CREATE TABLE task_names (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE workers (hostname TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL, user TEXT, action TEXT, target TEXT, status INTEGER,
    data BLOB NOT NULL
);
CREATE INDEX audit_user ON audit(user, seq);
CREATE INDEX audit_action ON audit(action, seq);
"""
V1_COLUMNS = ("uuid", "name", "state", "worker", "received", "sent", "started", "succeeded", "failed",
              "timestamp", "runtime", "args", "kwargs", "result")  # fmt: skip


def test_a_version_1_history_gets_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (orjson.dumps(1),))
    tasks = history(1000)
    for task in tasks[3::50]:  # written before the JSON path existed: text may hold a NUL
        task["args"] = "('pre customer-12\x00 post nul',)"
    conn.executemany(
        f"INSERT INTO tasks ({', '.join(V1_COLUMNS)}, data) VALUES ({', '.join('?' * (len(V1_COLUMNS) + 1))})",
        [(*(t.get(c) for c in V1_COLUMNS), orjson.dumps({})) for t in tasks])
    conn.commit()
    conn.close()

    store = SQLiteStore(str(path))
    assert state(store) == (0, set())
    # Nothing indexed yet: every row is in the tail, and a scan reads them quicker than one by one.
    assert "json_each" not in store.query_sql(TaskQuery(limit=10, search=parse_search("customer-12")))[0]
    assert_same_as_scan(monkeypatch, store)
    assert index_all(store) == sum(1 for i in range(1000) if i % 10 != 0)  # the finished ones
    assert state(store)[0] == 1000
    assert_index_consistent(store)
    assert_same_as_scan(monkeypatch, store)
    store.close()
    reopened = SQLiteStore(str(path))
    assert reopened.load_meta("schema_version") == 1
    assert state(reopened)[0] == 1000
    assert reopened.count_tasks(TaskQuery(search=parse_search("customer-12"))) > 0
