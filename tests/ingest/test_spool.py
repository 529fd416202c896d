"""The spool on its own: what the reader process appends (the bytes as received, replies cut anywhere)
comes out once, in order, with positions a restart can resume from; segments the history has flushed
are deleted; a torn last record, or a reply a killed reader left incomplete, is skipped."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.processes import BIN

from celery_monitor.receiver import spool as spool_module
from celery_monitor.receiver.handoff import Handoff, RawMessage, SpooledBatch
from celery_monitor.receiver.redis_reader import encode_command
from celery_monitor.receiver.resp import RespSplitter
from celery_monitor.receiver.spool import (
    RAW,
    SEGMENT_HEAD,
    SpoolError,
    SpoolTailer,
    SpoolWriter,
    encode,
    segment_name,
    segments,
)


def tail_all(tailer: SpoolTailer, handoff: Handoff) -> list[bytes]:
    while tailer.step():
        pass
    return [m.body for _, batch in handoff.take(timeout=0) for m in batch]


def pmessage(body: bytes) -> bytes:
    """A pub/sub message as Redis sends it to a PSUBSCRIBE subscriber (an array of bulk strings)."""
    return encode_command("pmessage", "/0.celeryev/*", "/0.celeryev/task.multi", body)


def write(spool: Path, bodies: list[bytes], segment_bytes: int = 300, cut: int | None = None) -> SpoolWriter:
    """Each message one read, or (``cut``) the stream read that many bytes at a time."""
    writer = SpoolWriter(spool, segment_bytes)
    writer.new_stream()
    stream = b"".join(pmessage(body) for body in bodies)
    reads = [pmessage(body) for body in bodies] if cut is None else [
        stream[i : i + cut] for i in range(0, len(stream), cut)]
    for data in reads:
        assert writer.write(1.0, data)
    return writer


def test_everything_spooled_comes_out_once_in_order_and_flushed_segments_go(tmp_path: Path) -> None:
    bodies = [b"event-%03d" % i + b"x" * 40 for i in range(40)]
    write(tmp_path, bodies).close()
    assert len(segments(tmp_path)) > 5
    flushed: list[tuple[int, int]] = []
    handoff = Handoff()
    tailer = SpoolTailer(tmp_path, handoff, lambda: flushed[-1] if flushed else None)
    tailer.resume(None)
    while tailer.step():
        pass
    taken = handoff.take(timeout=0)
    assert [m.body for _, batch in taken for m in batch] == bodies
    assert all(isinstance(batch, SpooledBatch) for _, batch in taken)
    assert tailer.backlog_bytes() == 0

    # The history flushed up to the last batch: every segment before its segment is deleted.
    last = taken[-1][1]
    assert isinstance(last, SpooledBatch)
    flushed.append(last.position)
    tailer.step()
    assert segments(tmp_path) == [last.position[0]]


def test_a_restart_resumes_after_the_saved_position_and_skips_a_torn_record(tmp_path: Path) -> None:
    first = [b"a" * 50, b"b" * 50, b"c" * 50]
    write(tmp_path, first, segment_bytes=10_000).close()
    handoff = Handoff()
    tailer = SpoolTailer(tmp_path, handoff, lambda: None)
    tailer.resume(None)
    tailer.step()
    (_, batch), = handoff.take(timeout=0)
    assert isinstance(batch, SpooledBatch)
    # The reader process was killed while writing a record; the next one writes a segment of its own.
    with open(tmp_path / segment_name(1), "ab") as segment:
        segment.write(b"\x40\x00\x00\x00partial")
    write(tmp_path, [b"d" * 50], segment_bytes=10_000).close()

    # The monitor restarts having saved the position after the second message only.
    saved = (1, SEGMENT_HEAD + 2 * (RAW.size + len(pmessage(b"a" * 50))))
    again = SpoolTailer(tmp_path, handoff, lambda: None)
    again.resume(saved)
    assert tail_all(again, handoff) == [b"c" * 50, b"d" * 50]
    assert again.torn_records == 1


def test_replies_cut_across_reads_and_segments_come_out_whole_and_every_position_resumes_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader spools reads as received: a reply often spans reads, and segments. Each batch's
    position is where a fresh parser can start: a restart from any of them gives exactly the rest."""
    monkeypatch.setattr(spool_module, "BATCH_MESSAGES", 1)
    bodies = [b"event-%03d-" % i + b"z" * (i % 90) for i in range(60)]
    write(tmp_path, bodies, segment_bytes=400, cut=37).close()
    assert len(segments(tmp_path)) > 10
    handoff = Handoff()
    tailer = SpoolTailer(tmp_path, handoff, lambda: None)
    tailer.resume(None)
    while tailer.step():
        pass
    taken = [batch for _, batch in handoff.take(timeout=0)]
    assert [m.body for batch in taken for m in batch] == bodies
    assert tailer.torn_records == 0
    for i, batch in enumerate(taken):
        assert isinstance(batch, SpooledBatch)
        again = SpoolTailer(tmp_path, Handoff(), lambda: None)
        again.resume(batch.position)
        assert tail_all(again, again.handoff) == bodies[i + 1 :], f"resumed after message {i}"


def test_a_reply_left_incomplete_by_a_killed_reader_is_skipped_and_the_next_stream_read(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    writer.new_stream()
    whole, cut = pmessage(b"first"), pmessage(b"cut short")
    assert writer.write(1.0, whole + cut[:20])  # killed before the rest of the reply was read
    writer.close()
    write(tmp_path, [b"after"]).close()  # the next reader process: a new connection, a new segment
    handoff = Handoff()
    tailer = SpoolTailer(tmp_path, handoff, lambda: None)
    tailer.resume(None)
    assert tail_all(tailer, handoff) == [b"first", b"after"]
    assert tailer.torn_records == 1


def test_a_continued_segment_whose_start_is_gone_is_read_from_its_next_message(tmp_path: Path) -> None:
    bodies = [b"m-%02d" % i + b"q" * 30 for i in range(20)]
    write(tmp_path, bodies, segment_bytes=200, cut=45).close()
    first = segments(tmp_path)[0]
    (tmp_path / segment_name(first)).unlink()  # as if another spool's position had deleted it
    handoff = Handoff()
    tailer = SpoolTailer(tmp_path, handoff, lambda: None)
    tailer.resume(None)
    out = tail_all(tailer, handoff)
    assert out and out == bodies[-len(out) :] and len(out) < len(bodies)


def test_segments_of_parsed_messages_from_an_older_version_are_replayed(tmp_path: Path) -> None:
    with open(tmp_path / segment_name(1), "wb") as old:
        old.write(encode(1.0, [RawMessage(b"old-1"), RawMessage(b"old-2")]) + encode(2.0, [RawMessage(b"old-3")]))
    write(tmp_path, [b"new-1"]).close()
    handoff = Handoff()
    tailer = SpoolTailer(tmp_path, handoff, lambda: None)
    tailer.resume(None)
    assert tail_all(tailer, handoff) == [b"old-1", b"old-2", b"old-3", b"new-1"]
    resumed = SpoolTailer(tmp_path, Handoff(), lambda: None)
    resumed.resume((1, len(encode(1.0, [RawMessage(b"old-1"), RawMessage(b"old-2")]))))
    assert tail_all(resumed, resumed.handoff) == [b"old-3", b"new-1"]


def test_the_spool_is_for_this_user_alone(tmp_path: Path) -> None:
    """It holds task arguments before any redaction: a private directory, private segments."""
    spool = tmp_path / "history.db-spool"
    writer = write(spool, [b"secret-args"])
    writer.close()
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in spool.iterdir()} == {0o600}
    spool.chmod(0o755)  # made by an older version, or by hand: taken back
    SpoolTailer(spool, Handoff(), lambda: None)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700


@pytest.mark.parametrize("made_by", ["a link", "another user"])
def test_a_spool_directory_someone_else_prepared_is_refused(tmp_path: Path, made_by: str) -> None:
    spool = tmp_path / "history.db-spool"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if made_by == "a link":
        spool.symlink_to(elsewhere)
    else:
        spool.mkdir()
        os.chown(spool, 65534, 65534)
    with pytest.raises(SpoolError, match="the event spool"):
        SpoolWriter(spool)
    with pytest.raises(SpoolError, match="the event spool"):
        SpoolTailer(spool, Handoff(), lambda: None)
    assert not list(elsewhere.iterdir())


def test_the_monitor_refuses_such_a_spool_in_one_line(tmp_path: Path, redis_server: Any) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "history.db-spool").symlink_to(tmp_path / "elsewhere")
    finished = subprocess.run([str(BIN / "celery-monitor"), f"--broker={redis_server.url}", "--event_spool",
                               f"--db={tmp_path / 'history.db'}", "--unauthenticated_api"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("celery-monitor: error: --db: the event spool "), lines


def test_a_position_saved_from_another_spool_starts_this_one_from_its_beginning(tmp_path: Path) -> None:
    """A replica leading a PostgreSQL history after one on another host (or after a reboot emptied
    the temporary directory) finds a position its own spool never had: it reads all it spools."""
    handoff = Handoff()
    tailer = SpoolTailer(tmp_path, handoff, lambda: None)
    tailer.resume((7, 4096))
    bodies = [b"new-%02d" % i + b"y" * 40 for i in range(12)]
    write(tmp_path, bodies).close()
    assert max(segments(tmp_path)) < 7
    assert tail_all(tailer, handoff) == bodies



@pytest.mark.parametrize("wire", [
    b"*3\r\n$10\r\npsubscribe\r\n$11\r\n/0.celeryev\r\n:1\r\n",  # the subscription's confirmation
    b"*2\r\n$4\r\npong\r\n$0\r\n\r\n",  # the idle PING's answer, while subscribed
    b"-NOPERM this user has no permissions to access one of the channels\r\n",
    b"*4\r\n$8\r\npmessage\r\n$13\r\n/0.celeryev/*\r\n$22\r\n/0.celeryev/task.multi\r\n$3\r\n{\"}\r\n",
    b"*2\r\n$-1\r\n:-12\r\n",
])
def test_each_reply_a_subscriber_gets_is_measured_as_sent(wire: bytes) -> None:
    """Positions are counted from the replies hiredis returns: every kind must add up to its bytes."""
    splitter = RespSplitter()
    splitter.feed(memoryview(wire + b"*4\r\n$8\r\npmess"), 3, 100)
    assert splitter.clean == (3, 100 + len(wire)) and splitter.pending
