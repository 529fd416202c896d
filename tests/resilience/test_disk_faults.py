"""The history's disk full or read-only, under a running monitor: ingestion goes on in memory, health
and metrics say the history is not being written, writes resume when they can, and the file is never
corrupted (``PRAGMA integrity_check`` after).

Real file systems: a 2 MB tmpfs filled with a file, and an ext4 image on a loop device that the
kernel turns read-only as after a disk error (see volumes.py for why not ``remount,ro`` or chmod).
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path

from feed import RedisFeed
from support.processes import MonitorProcess, RedisServer, free_port, wait_for
from volumes import check_file_system, ext4_image, fail_read_only, fill, is_read_only, mount, tmpfs, unmount


def monitor_on(db: Path, broker: str, log_dir: Path, *args: str) -> MonitorProcess:
    """A monitor whose history is ``db``, its log elsewhere (a full disk must not take the log too)."""
    return MonitorProcess([f"--broker={broker}", f"--db={db}", "--unauthenticated_api", "--inspect_timeout=300",
                           *args], free_port(), log_dir / "monitor.log", {}).start()


def store(monitor: MonitorProcess) -> dict[str, object]:
    return monitor.json("/api/monitor/status")["store"]  # type: ignore[no-any-return]


def on_disk(db: Path) -> set[str]:
    """The tasks the history file holds, read beside the monitor (lists also show the pending ones)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return {row[0] for row in conn.execute("SELECT uuid FROM tasks")}


def written(monitor: MonitorProcess, db: Path, expected: list[str]) -> bool:
    return on_disk(db) == set(expected) and store(monitor)["pending_tasks"] == 0


def integrity(db: Path) -> tuple[str, set[str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (result,) = conn.execute("PRAGMA integrity_check").fetchone()
    return result, on_disk(db)


def test_a_full_disk_keeps_ingestion_in_memory_and_writes_resume_when_space_returns(
        redis_server: RedisServer, tmp_path: Path) -> None:
    feed = RedisFeed(redis_server.port, db=10)
    with tmpfs(tmp_path / "history", "2m") as volume:
        db = volume / "monitor.db"
        # --max_tasks=40 bounds the writes kept waiting in memory to 40 tasks as well.
        monitor = monitor_on(db, redis_server.url.replace("/0", "/10"), tmp_path, "--max_tasks=40")
        try:
            wait_for(feed.listening, 10, message="the subscription")
            before = feed.send(10)
            wait_for(lambda: written(monitor, db, before), 10, message="the first tasks written")

            fill(volume / "filler")
            during = feed.send(60)
            # Ingestion goes on: every task is current in the live view and /api/task/info.
            wait_for(lambda: monitor.json(f"/api/task/info/{during[-1]}")["state"] == "SUCCESS", 10,
                     message="the last task applied")
            assert monitor.json(f"/api/task/info/{during[0]}")["state"] == "SUCCESS"
            failing = wait_for(lambda: (s := store(monitor))["persisting"] is False and s["write_errors"] >= 2
                               and s["pending_tasks"] == 40 and s, 30, message="two failed writes")
            assert failing["last_error"].startswith(f"cannot write the history at {db}: the disk is full")
            assert failing["writes_dropped"] == 20  # the 20 tasks that waited longest, past the bound of 40
            assert monitor.metric("celery_monitor_store_persisting") == 0
            assert monitor.metric("celery_monitor_store_write_errors_total") >= 2
            assert monitor.metric("celery_monitor_store_pending_tasks") == 40
            assert monitor.metric("celery_monitor_store_writes_dropped_total") == 20
            live = monitor.json("/livez")  # a restart would not make room: alive, and says what is wrong
            assert live["live"] is True
            assert any(w.startswith("the history is not being written (40 tasks pending)") for w in live["warnings"])
            assert monitor.get("/readyz").status_code == 200
            log = monitor.log.read_text()
            assert log.count("cannot write the history") == 1 and "Traceback" not in log

            (volume / "filler").unlink()
            wait_for(lambda: (s := store(monitor))["persisting"] and s["pending_tasks"] == 0, 30,
                     message="the writes resuming")
            assert store(monitor)["last_error"] is None
            # The 40 kept are written; the history holds --max_tasks=40 tasks: the newest.
            wait_for(lambda: on_disk(db) == set(during[20:]), 10, message="the kept writes in the history")
            assert monitor.metric("celery_monitor_store_persisting") == 1
            assert "writing the history again after" in monitor.log.read_text()
        finally:
            monitor.stop()
        result, ids = integrity(db)
        assert result == "ok"
        assert ids == set(during[20:])


def test_a_read_only_disk_keeps_ingestion_in_memory_and_a_restart_on_the_repaired_volume_writes_again(
        redis_server: RedisServer, tmp_path: Path) -> None:
    feed = RedisFeed(redis_server.port, db=10)
    image, directory = tmp_path / "volume.img", tmp_path / "history"
    broker = redis_server.url.replace("/0", "/10")
    with ext4_image(image, directory):
        db = directory / "monitor.db"
        monitor = monitor_on(db, broker, tmp_path)
        try:
            wait_for(feed.listening, 10, message="the subscription")
            before = feed.send(5)
            wait_for(lambda: written(monitor, db, before), 10, message="the first tasks written")

            # What was written some time ago has reached the device (the kernel writes dirty pages
            # back within seconds); a disk that fails loses only what it never got.
            subprocess.run(["sync", "--file-system", str(db)], check=True)
            fail_read_only(directory)
            assert is_read_only(directory)
            during = feed.send(5)
            wait_for(lambda: monitor.json(f"/api/task/info/{during[-1]}")["state"] == "SUCCESS", 10,
                     message="the tasks applied in memory")
            failing = wait_for(lambda: (s := store(monitor))["persisting"] is False and s, 30,
                               message="a failed write")
            assert failing["last_error"].startswith(f"cannot write the history at {db}: the file system is read-only")
            assert failing["pending_tasks"] == 5
            assert monitor.metric("celery_monitor_store_persisting") == 0
            assert monitor.json("/livez")["live"] is True
            assert set(before) <= set(monitor.json("/api/tasks", params={"limit": 1000}))  # lists still answer
        finally:
            monitor.stop()
        log = monitor.log.read_text()
        assert "Application shutdown complete" in log and "Traceback" not in log  # a clean stop

        # The volume repaired and mounted again, as after replacing a failed disk's pod.
        unmount(directory)
        check_file_system(image)
        mount(image, directory)
        result, ids = integrity(db)
        assert (result, ids) == ("ok", set(before))  # what was written before the failure, intact
        restarted = monitor_on(db, broker, tmp_path)
        try:
            wait_for(feed.listening, 10, message="the subscription")
            after = feed.send(5)
            wait_for(lambda: written(restarted, db, before + after), 10, message="writes on the volume again")
            assert store(restarted)["persisting"] is True
        finally:
            restarted.stop()
        assert integrity(db) == ("ok", set(before + after))
