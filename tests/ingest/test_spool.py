"""The spool on its own: what the reader process appends comes out once, in order, with positions a
restart can resume from; segments the history has flushed are deleted; a torn last record is skipped."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.processes import BIN

from celery_monitor.receiver.handoff import Handoff, RawMessage, SpooledBatch
from celery_monitor.receiver.spool import SpoolError, SpoolTailer, SpoolWriter, segment_name, segments


def tail_all(tailer: SpoolTailer, handoff: Handoff) -> list[bytes]:
    while tailer.step():
        pass
    return [m.body for _, batch in handoff.take(timeout=0) for m in batch]


def write(spool: Path, bodies: list[bytes], segment_bytes: int = 300) -> SpoolWriter:
    writer = SpoolWriter(spool, segment_bytes)
    for body in bodies:
        assert writer.put(1.0, [RawMessage(body)], len(body))
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

    # The monitor restarts having saved the position after the second record only.
    record = batch.position[1] // 3  # three records of one size
    saved = (1, 2 * record)
    again = SpoolTailer(tmp_path, handoff, lambda: None)
    again.resume(saved)
    assert tail_all(again, handoff) == [b"c" * 50, b"d" * 50]
    assert again.torn_records == 1


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

