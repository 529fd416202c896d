"""The fast paths keep the monitor's answers: huge batches, tasks known only to the history, deep pages."""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.processes import RedisServer, new_monitor, wait_for

from celery_monitor.applier.applier import Applier
from celery_monitor.hub import Hub
from celery_monitor.receiver.handoff import Handoff, RawMessage
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.state.live import LiveView
from celery_monitor.state.models import TASK_FIELDS
from celery_monitor.state.stats import EventStats
from celery_monitor.store.base import Store
from celery_monitor.store.query import TaskQuery
from celery_monitor.store.sqlite import SQLiteStore
from celery_monitor.store.target import open_store
from celery_monitor.store.writer import StoreWriter


@pytest.fixture
def store(history_db: str) -> Iterator[Store]:
    """The history, once per store: SQLite, then PostgreSQL."""
    store = open_store(history_db)
    yield store
    store.close()


def make_applier(store: Store, recent_tasks: int = 20_000) -> tuple[Applier, StoreWriter, LiveView]:
    live = LiveView(EventStats(), recent_tasks=recent_tasks)
    writer = StoreWriter(store)
    return Applier(Handoff(), live, store, writer, ReceiverHealth(), Hub()), writer, live


def message(*events: dict[str, object]) -> RawMessage:
    """A worker's task.multi message body, as the AMQP reader hands it over."""
    return RawMessage(json.dumps(list(events)).encode(), "application/json")


def lifecycle(uuid: str, t: float) -> list[dict[str, object]]:
    return [
        {"type": "task-sent", "uuid": uuid, "name": "tests.add", "args": "(1, 2)", "kwargs": "{}",
         "hostname": "client@h", "timestamp": t},
        {"type": "task-received", "uuid": uuid, "name": "tests.add", "args": "(1, 2)", "kwargs": "{}",
         "hostname": "w@h", "timestamp": t + 1},
        {"type": "task-started", "uuid": uuid, "hostname": "w@h", "timestamp": t + 2},
        {"type": "task-succeeded", "uuid": uuid, "result": "3", "runtime": 0.5, "hostname": "w@h",
         "timestamp": t + 3},
    ]


def test_a_batch_bigger_than_the_live_view_keeps_every_task(store: Store) -> None:
    applier, writer, live = make_applier(store, recent_tasks=10)
    uuids = [f"task-{i}" for i in range(200)]
    # Every task is sent first, then all are received, started and finished: each task has left the
    # ten-task live view long before its next event, inside one batch handed over at once.
    phases = list(zip(*(lifecycle(uuid, 100.0 * i) for i, uuid in enumerate(uuids)), strict=True))
    batch = [message(event) for phase in phases for event in phase]
    applier.apply([(1000.0, batch)])
    writer.flush()
    for uuid in uuids:
        task = store.get_task(uuid)
        assert task is not None and task["state"] == "SUCCESS", task
        assert [t[0] for t in task["transitions"]] == ["PENDING", "RECEIVED", "STARTED", "SUCCESS"]
        assert task["name"] == "tests.add" and task["result"] == "3"
    assert {state: n for state, n in live.snapshot().state_counts.items() if n} == {"SUCCESS": 200}


def test_a_task_known_only_to_the_history_is_continued_not_restarted(store: Store) -> None:
    first, writer, _ = make_applier(store)
    first.apply([(10.0, [message(*lifecycle("old", 1.0)[:3])])])
    writer.flush()
    # A new monitor (an empty live view) gets the task's last event.
    second, writer, _ = make_applier(store)
    second.apply([(20.0, [message(lifecycle("old", 1.0)[3]), message(*lifecycle("new", 5.0)[:1])])])
    writer.flush()
    old = store.get_task("old")
    assert old is not None and old["state"] == "SUCCESS" and old["name"] == "tests.add"
    assert [t[0] for t in old["transitions"]] == ["PENDING", "RECEIVED", "STARTED", "SUCCESS"]
    new = store.get_task("new")
    assert new is not None and new["state"] == "PENDING"


@pytest.mark.parametrize("descending", [True, False])
def test_deep_pages_of_a_trimmed_history_match_a_plain_walk(store: Store, descending: bool) -> None:
    store.write([{"uuid": f"t{i}", "state": "SUCCESS", "args": "()", "kwargs": "{}", "result": None}
                 for i in range(300)], [], {})
    store.trim(250)
    everything = [t["uuid"] for t in store.query_tasks(TaskQuery(descending=descending))]
    assert len(everything) == 250 and store.task_count() == 250
    for offset in (1, 7, 100, 249, 250, 400):
        for limit in (None, 5, 100):
            page = [t["uuid"] for t in store.query_tasks(TaskQuery(offset=offset, limit=limit, descending=descending))]
            assert page == (everything[offset:] if limit is None else everything[offset : offset + limit])


def test_counting_an_empty_history(store: Store) -> None:
    assert store.task_count() == 0
    assert store.trim(5) == {}
    assert store.query_tasks(TaskQuery(offset=10, limit=5)) == []


class PausedStore(SQLiteStore):
    """A real store whose next write waits until the test lets it commit."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writing = threading.Event()
        self.may_commit = threading.Event()

    def write(self, tasks, workers, meta):  # type: ignore[no-untyped-def]
        tasks = list(tasks)
        self.writing.set()
        assert self.may_commit.wait(10)
        super().write(tasks, workers, meta)


def test_a_task_being_written_stays_visible_and_is_continued(tmp_path: Path) -> None:
    store = PausedStore(str(tmp_path / "history.db"))
    applier, writer, live = make_applier(store, recent_tasks=1)
    applier.apply([(10.0, [message(*lifecycle("first", 1.0)[:3]), message(*lifecycle("other", 2.0)[:1])])])
    assert live.task_dict("first") is None  # only the history and the writer know it now
    flushing = threading.Thread(target=writer.flush)
    flushing.start()
    try:
        assert store.writing.wait(10)
        # Between hand-over and commit the task is neither pending nor stored yet.
        assert (writer.pending_task("first") or {}).get("state") == "STARTED"
        assert writer.pending_count == 2
        applier.apply([(11.0, [message(lifecycle("first", 1.0)[3])])])
    finally:
        store.may_commit.set()
        flushing.join()
    writer.flush()
    task = store.get_task("first")
    assert task is not None and task["state"] == "SUCCESS" and task["name"] == "tests.add"
    assert [t[0] for t in task["transitions"]] == ["PENDING", "RECEIVED", "STARTED", "SUCCESS"]
    assert writer.pending_count == 0


def test_bulk_writes_keep_every_value_exactly(store: Store) -> None:
    tricky = {
        "uuid": "exact", "name": 'odd "name" \\ ünïcode', "state": "FAILURE", "worker": "w@h",
        "received": 1795330861.0501714, "started": 1795330861.0501716, "runtime": 1e-07, "timestamp": 0.1 + 0.2,
        "args": "('quote \" and \\\\ and \\n',)", "kwargs": "{}", "result": None, "retries": 2**62,
        "transitions": [["RECEIVED", 1795330861.0501714, "w@h"]], "children": [], "custom": {"X": {"k": [1, None]}},
    }
    store.write([tricky, {"uuid": "plain", "name": None, "state": "PENDING"}], [], {})
    # A task written without a cluster is of the default one (what a history from before clusters holds).
    assert store.get_task("exact") == {**{name: None for name in TASK_FIELDS}, "cluster": "default", **tricky}
    assert store.task_names() == ['odd "name" \\ ünïcode']
    # An update replaces the row in place: same position in the history, new values.
    store.write([{**tricky, "state": "SUCCESS", "result": "4"}], [], {})
    tasks = store.query_tasks(TaskQuery())
    assert [t["uuid"] for t in tasks] == ["plain", "exact"] and tasks[1]["result"] == "4"
    assert store.task_count() == 2


def test_text_holding_nul_characters_is_kept_whole(store: Store) -> None:
    odd = {"uuid": "nul", "name": "a\x00b", "state": "SUCCESS", "args": "('\x00', 1)", "result": "x\x00y"}
    store.write([odd, {"uuid": "plain", "name": "p", "state": "SUCCESS", "args": "()"}], [], {})
    task = store.get_task("nul")
    assert task is not None and (task["name"], task["args"], task["result"]) == (odd["name"], odd["args"], "x\x00y")
    assert store.get_task("plain") is not None and set(store.task_names()) == {"a\x00b", "p"}


def test_memory_freed_after_a_burst_is_returned(store: Store) -> None:
    from celery_monitor.state.memory import release_free_memory

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        # malloc_trim is glibc's: elsewhere the call must say it did nothing, and not fail.
        assert release_free_memory() is False
        return

    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    release_free_memory()
    before = rss()
    burst = [bytes(2000) + str(i).encode() for i in range(100_000)]  # 200 MB of raw messages
    keep = burst[::1000]
    del burst
    assert rss() - before > 50 * 2**20  # freed, but still resident
    assert release_free_memory()
    assert rss() - before < 20 * 2**20
    assert len(keep) == 100


def test_a_burst_waits_before_the_applier_not_in_the_writes_pending(tmp_path: Path) -> None:
    """The applier waits for room (a burst stays raw, in the spool or the hand-off); the writer,
    woken, flushes at once."""
    store = PausedStore(str(tmp_path / "history.db"))
    writer = StoreWriter(store, interval=60)  # never on its own during this test
    writer.start()
    try:
        writer.submit({f"t{i}": {"uuid": f"t{i}", "state": "SUCCESS"} for i in range(10)}, {})
        assert writer.wait_for_room(5, timeout=10)  # the writer took them at once, not a minute later
        assert store.writing.wait(10)
        writer.submit({f"u{i}": {"uuid": f"u{i}", "state": "SUCCESS"} for i in range(10)}, {})
        assert not writer.wait_for_room(5, timeout=0.05)  # queued behind a write that does not end
        store.may_commit.set()
        assert writer.wait_for_room(5, timeout=10)
        wait_for(lambda: writer.pending_count == 0, 10, message="the second write")
        assert store.task_count() == 20
    finally:
        store.may_commit.set()
        writer.stop()
        writer.join(10)
    # Writing refused or no writer running: ingestion goes on, nothing waits.
    assert writer.wait_for_room(0, timeout=10)


@pytest.fixture
def written_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WrittenHistory]:
    """3,000 tasks of 2 KB written to a SQLite file, a writer that lets caches go as soon as it is idle,
    and SQLite's own count of the memory it holds."""
    import ctypes
    import ctypes.util

    try:
        sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    except OSError:
        pytest.skip("no shared libsqlite3 to ask how much memory SQLite holds")
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    store = SQLiteStore(str(tmp_path / "history.db"))
    try:
        monkeypatch.setattr("celery_monitor.store.writer.RELEASE_AFTER", 0.0)
        writer = StoreWriter(store)
        writer.submit({f"t{i}": {"uuid": f"t{i}", "state": "SUCCESS", "args": f"({i}, '{'x' * 2000}')"}
                       for i in range(3000)}, {})
        assert writer.flush()
        yield WrittenHistory(store, writer, sqlite.sqlite3_memory_used)
    finally:
        store.close()


@dataclass
class WrittenHistory:
    store: SQLiteStore
    writer: StoreWriter
    sqlite_memory: Callable[[], int]


def test_the_history_lets_its_page_cache_go_once_idle(written_history: WrittenHistory) -> None:
    writer, memory = written_history.writer, written_history.sqlite_memory
    filled = memory()
    writer.release_memory()
    assert writer.releases == 1
    assert filled - memory() > 4 * 2**20  # the writer's cache, emptied
    writer.release_memory()
    assert writer.releases == 1  # once per busy spell


def test_the_reader_process_loads_no_broker_client_library() -> None:
    """It reads Redis over a bare socket: redis-py, py-amqp and kombu would be 20 MB resident for nothing."""
    import subprocess

    code = ("import sys, celery_monitor.receiver.reader_process, celery_monitor.receiver.redis_reader; "
            "print(sorted({'redis', 'amqp', 'kombu', 'celery'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"


def test_a_sqlite_monitor_never_loads_the_postgresql_driver(redis_server: RedisServer, tmp_path: Path) -> None:
    """psycopg and libpq are 12 MB resident: loaded for a PostgreSQL history only, not at start-up,
    nor by the pages, the API, the metrics or a write of the history."""
    monitor = new_monitor(redis_server.url, tmp_path, "--max_tasks=100").start()
    try:
        for path in ("/", "/tasks", "/api/workers", "/api/tasks?search=add", "/metrics", "/api/monitor/status",
                     "/readyz", "/notifications", "/schedules"):
            assert monitor.get(path).status_code == 200, path
        wait_for(lambda: monitor.json("/api/monitor/status")["store"]["last_flush"], 15, message="a flush")
        assert monitor.process is not None
        mapped = Path(f"/proc/{monitor.process.pid}/maps").read_text()
        assert "psycopg" not in mapped and "libpq" not in mapped
    finally:
        monitor.stop()


def test_a_large_fleets_counters_are_saved_less_often_but_the_state_counts_with_every_flush(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Serialising a fleet's per-event counters can take tens of milliseconds: they are saved no more
    often than a small share of the time allows; the state counts, which a replica that takes over
    goes on from, go with every flush that changed them; a stop saves everything."""
    import time

    from celery_monitor.state import live as live_module

    stats = EventStats()
    real = stats.copy

    def slow_copy() -> EventStats:
        copy = real()
        monkeypatch.setattr(copy, "to_store", lambda: (time.sleep(0.02), {"events": []})[1])
        return copy

    monkeypatch.setattr(stats, "copy", slow_copy)
    view = LiveView(stats)
    with view.applying():
        pass
    first = view.counters_to_save(now=100.0)
    assert set(first) == {"state_counts", "stats"}
    soon = 100.0 + 0.02 / live_module.STATS_SAVE_SHARE * 0.9  # sooner than 20 ms of saving allows
    with view.applying():
        pass
    assert set(view.counters_to_save(now=soon)) == {"state_counts"}
    assert view.counters_to_save(now=soon) == {}  # nothing changed, nothing due
    assert set(view.counters_to_save(now=1000.0)) == {"stats"}  # due: the change held back
    with view.applying():
        pass
    view.save_all_counters_next()
    assert set(view.counters_to_save(now=1000.001)) == {"state_counts", "stats"}


def test_idle_history_closes_the_readers_of_ended_threads(written_history: WrittenHistory) -> None:
    """Each server thread reads through a connection of its own with a page cache of up to 4 MB; the
    server's threads come and go, and once idle the history closes the connections of those that ended."""
    store, memory = written_history.store, written_history.sqlite_memory

    def read_everything() -> None:
        assert len(store.tasks_in_order(store.ordered_seqs(TaskQuery(limit=None)))) == 3000

    def read_on_four_threads() -> None:
        threads = [threading.Thread(target=read_everything) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    read_on_four_threads()
    store.release_memory()
    read_everything()  # this thread's connection is kept, and works
    held = memory()
    read_on_four_threads()
    filled = memory()
    assert filled - held > 8 * 2**20  # four more caches of about 4 MB
    store.release_memory()
    assert filled - memory() > 8 * 2**20
    read_everything()
