"""On Redis the events are read by a process of its own into a spool on disk, and the monitor applies
them from there: a burst far larger than the memory buffer is applied whole, a `kill -9` of the
monitor is replayed from the spool once, and the reader process follows the monitor's fate."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from support.envelopes import kombu_envelope
from support.processes import MonitorProcess, RedisServer, free_port, new_monitor, wait_for

from celery_monitor.receiver import reader_process
from celery_monitor.receiver.handoff import Handoff
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.receiver.reader_process import RECORD, ReaderProcess, SpoolOrPipe
from celery_monitor.receiver.redis_reader import encode_command
from celery_monitor.receiver.spool import SpoolTailer, SpoolWriter, decode, segment_name, segments

CHANNEL = "/0.celeryev/task.multi"


def publish_burst(port: int, tasks: int, prefix: str) -> int:
    """Each task received, started and succeeded, in task.multi batches of 30 events, published as
    fast as one pipelined connection can; returns the number of messages."""
    client = redis.Redis(port=port)
    pipe = client.pipeline(transaction=False)
    events: list[dict[str, Any]] = []
    messages = 0
    for i in range(tasks):
        uuid = f"{prefix}-{i}"
        base = {"uuid": uuid, "hostname": "celery@burst", "timestamp": 1000.0 + i}
        events += [{**base, "type": "task-received", "name": "tests.burst", "args": f"({i},)", "kwargs": "{}"},
                   {**base, "type": "task-started"},
                   {**base, "type": "task-succeeded", "result": str(i), "runtime": 0.01}]
        if len(events) >= 30 or i == tasks - 1:
            pipe.publish(CHANNEL, kombu_envelope(json.dumps(events).encode()))
            events = []
            messages += 1
            if messages % 500 == 0:
                pipe.execute()
    pipe.execute()
    client.close()
    return messages


def receiver(monitor: MonitorProcess) -> dict[str, Any]:
    status: dict[str, Any] = monitor.json("/api/monitor/status")["receiver"]
    return status


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie has exited too (its parent, the killed monitor, is not there to reap it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_a_burst_far_larger_than_the_memory_buffer_is_applied_whole(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path).start()
    monitor = new_monitor(server.url, tmp_path, "--event_spool", "--event_buffer_mb=1", "--max_tasks=1000000").start()
    try:
        tasks = 20_000  # about 60,000 events and 12 MB of messages: twelve times the memory buffer
        messages = publish_burst(server.port, tasks, "whole")
        wait_for(lambda: receiver(monitor)["messages_received"] == messages, 60, message="the burst read")
        wait_for(lambda: receiver(monitor)["events_received"] == 3 * tasks, 120, message="the burst applied")
        wait_for(lambda: monitor.json("/api/monitor/status")["store"]["tasks"] == tasks, 30,
                 message="the burst in the history")
        status = receiver(monitor)
        assert status["messages_dropped"] == 0
        assert status["broker_disconnects"] == 0
        assert monitor.json("/api/task/info/whole-19999")["state"] == "SUCCESS"
        wait_for(lambda: monitor.metric("celery_monitor_spool_backlog_bytes") == 0, 5,
                 message="the backlog measured empty")
    finally:
        monitor.stop()
        server.stop()


def spooled(spool: Path, last: bytes) -> bool:
    """The newest segment's end holds ``last`` (the reader process spools what it reads as received)."""
    numbers = segments(spool)
    if not numbers:
        return False
    with open(spool / segment_name(numbers[-1]), "rb") as segment:
        segment.seek(max(0, segment.seek(0, os.SEEK_END) - 65536))
        return last in segment.read()


def test_kill_9_during_a_burst_is_replayed_from_the_spool_once(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path).start()
    monitor = new_monitor(server.url, tmp_path, "--event_spool", "--event_buffer_mb=1", "--max_tasks=1000000").start()
    tasks = 40_000
    try:
        publish_burst(server.port, tasks, "replay")
        end = kombu_envelope(b"[]")  # a last message, found as published at the spool's end
        redis.Redis(port=server.port).publish(CHANNEL, end)
        wait_for(lambda: spooled(tmp_path / "monitor.db-spool", end), 60, message="the burst spooled")
        before = receiver(monitor)
        assert before["events_received"] < 3 * tasks, "the applier had already caught up: nothing to replay"
        assert monitor.metric("celery_monitor_spool_backlog_bytes") > 0
        reader_pid = before["reader_pid"]
        monitor.kill9()
        wait_for(lambda: gone(reader_pid), 10, message="the reader process exiting with the monitor")

        monitor.start()
        wait_for(lambda: monitor.json("/api/monitor/status")["store"]["tasks"] == tasks, 120,
                 message="every task of the burst after the replay")
        wait_for(lambda: monitor.json(f"/api/task/info/replay-{tasks - 1}")["state"] == "SUCCESS", 30,
                 message="the last task of the burst")
        for i in range(0, tasks, tasks // 50):
            task = monitor.json(f"/api/task/info/replay-{i}")
            assert [t[0] for t in task["transitions"]] == ["RECEIVED", "STARTED", "SUCCESS"], task["transitions"]
        counts = monitor.json("/api/monitor/status")
        assert counts["store"]["tasks"] == tasks
    finally:
        monitor.stop()
        server.stop()


def test_a_crashed_reader_process_is_restarted_and_reported(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path).start()
    monitor = new_monitor(server.url, tmp_path, "--event_spool").start()
    try:
        first = receiver(monitor)["reader_pid"]
        assert first and first != monitor.process.pid  # type: ignore[union-attr]
        os.kill(first, signal.SIGKILL)
        status = wait_for(lambda: (r := receiver(monitor))["connected"] and r["reader_pid"] not in (None, first)
                          and r, 20, message="a new reader process, connected")
        assert status["reader_restarts"] == 1
        assert monitor.metric("celery_monitor_reader_restarts_total") == 1
        background = monitor.json("/api/monitor/status")["background"]
        assert background["reader"]["errors"] >= 1 and "exited" in background["reader"]["last_error"]
        assert monitor.metric("celery_monitor_background_errors_total", loop="reader") >= 1
        publish_burst(server.port, 10, "after-crash")
        wait_for(lambda: monitor.get("/api/task/info/after-crash-9").status_code == 200, 15,
                 message="events read by the new reader process")
        assert monitor.get("/livez").status_code == 200
    finally:
        monitor.stop()
        server.stop()


class Pipe:
    def __init__(self) -> None:
        self.records: list[bytes] = []

    def send(self, kind: bytes, payload: bytes) -> None:
        assert kind == RECORD
        self.records.append(payload)


class FullDisk(SpoolWriter):
    """A spool whose disk refuses writes while ``full``."""

    full = False

    def write(self, received_at: float, data: memoryview | bytes) -> bool:
        if self.full:
            self.failing = OSError(28, "No space left on device")
            return False
        return super().write(received_at, data)


def test_while_the_disk_refuses_the_spool_messages_go_over_the_pipe_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader process then parses what it reads itself (losing, and counting, only the message
    cut across the switch), and goes back to the spool at a reply's start once the disk takes writes."""
    monkeypatch.setattr(reader_process, "RETRY_SPOOL_AFTER", 0.0)
    bodies = [b"msg-%03d" % i + b"w" * 20 for i in range(30)]
    stream = b"".join(encode_command("pmessage", "/0.celeryev/*", "/0.celeryev/task.multi", b) for b in bodies)
    reads = [memoryview(stream[i : i + 50]) for i in range(0, len(stream), 50)]
    spool = FullDisk(tmp_path)
    pipe = Pipe()
    health = ReceiverHealth()
    sink = SpoolOrPipe(spool, pipe, health)  # type: ignore[arg-type]  # the pipe: its send() alone
    sink.new_stream()
    for i, data in enumerate(reads):
        spool.full = 8 <= i < 14
        sink.write_raw(1.0, data)
    handoff = Handoff()
    tailer = SpoolTailer(tmp_path, handoff, lambda: None)
    tailer.resume(None)
    while tailer.step():
        pass
    spooled_bodies = [m.body for _, batch in handoff.take(timeout=0) for m in batch]
    piped = [m.body for payload in pipe.records for m in decode(payload, 0)[2]]  # type: ignore[index]
    assert piped and health.messages_received == len(piped)
    lost = [b for b in bodies if b not in spooled_bodies + piped]
    assert len(lost) == 1 and health.messages_dropped == 1
    # In order: what was spooled before the disk filled, the pipe, then the spool again.
    before = spooled_bodies[: bodies.index(lost[0])]
    assert [*before, lost[0], *piped, *spooled_bodies[len(before) :]] == bodies
    assert tailer.torn_records == 1  # the spool's half of the message cut across the switch


def test_an_idle_tailer_sleeps_until_the_reader_process_spools(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling the spool every 10 ms cost an idle monitor 3% of a core; the reader process now
    wakes the tailer. With the idle tailer's longest sleep made a minute, it reads the spool once in
    a while, and a message published still reaches the hand-off at once."""
    monkeypatch.setattr(reader_process, "IDLE_WAIT", 60.0)
    handoff = Handoff()
    health = ReceiverHealth()
    config = {"url": redis_server.url, "exchange": "celeryev", "ssl_options": None, "transport_options": {}}
    reader = ReaderProcess(config, tmp_path / "spool", handoff, health, lambda: None)
    steps = 0
    step = reader.tailer.step

    def counted_step() -> bool:
        nonlocal steps
        steps += 1
        return step()

    monkeypatch.setattr(reader.tailer, "step", counted_step)
    reader.resume(None)
    reader.start()
    try:
        wait_for(lambda: health.connected, 15, message="the reader process to subscribe")
        before = steps
        time.sleep(0.5)  # a span with nothing in it: what the idle tailer does meanwhile
        assert steps - before <= 3  # polling read it 50 times (a wake-up left from the subscribing may come)
        redis.Redis(port=redis_server.port).publish(CHANNEL, kombu_envelope(b'[{"uuid": "woken"}]'))
        received: list[bytes] = []

        def handed_over() -> bool:
            received.extend(bytes(m.body) for _, batch in handoff.take(timeout=0.1) for m in batch)
            return bool(received)

        wait_for(handed_over, 5, message="the message to reach the hand-off before the idle sleep ends")
        assert received == [kombu_envelope(b'[{"uuid": "woken"}]')]
    finally:
        reader.stop()


def test_the_reader_process_of_a_broker_without_tls_loads_no_tls_library(tmp_path: Path) -> None:
    """ssl (and libssl, libcrypto: ~5 MB resident) is loaded by the reader process only for a TLS broker."""
    server = RedisServer(free_port(), tmp_path).start()
    monitor = new_monitor(server.url, tmp_path, "--event_spool").start()
    try:
        reader_pid = receiver(monitor)["reader_pid"]
        publish_burst(server.port, 10, "plain")
        wait_for(lambda: monitor.get("/api/task/info/plain-9").status_code == 200, 15, message="events read")
        maps = Path(f"/proc/{reader_pid}/maps").read_text()
        assert "python3" in maps or "libpython" in maps  # the process's own mappings were read
        assert "libssl" not in maps and "_ssl." not in maps
    finally:
        monitor.stop()
        server.stop()
