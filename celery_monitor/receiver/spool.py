"""The spool: an append-only log of raw event messages on disk, between the reader process and the applier.

The reader process appends; the monitor tails. A spool is a directory of segment files named by a
growing number (``00000000000000000001.seg``); each reader process writes segments of its own (a
new one at start, the next one past ``SEGMENT_BYTES``), so a segment left with a torn last record
by a killed reader is never appended to again. A record is one batch as the reader took it off
the socket::

    u32 length of the rest | f64 received_at | u32 count | count x u32 message length | messages

(little-endian). A position is ``(segment, offset)``, the offset just past a record: the history
saves the position of what it has flushed, a restart tails from there, and segments wholly below
it are deleted.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from celery_monitor.receiver.handoff import Handoff, RawMessage, SpooledBatch

log = logging.getLogger(__name__)
SUFFIX = ".seg"
SEGMENT_BYTES = 64 * 1024 * 1024
HEADER = struct.Struct("<IdI")  # length of the rest, received_at, count
LENGTH = struct.Struct("<I")
READ_BYTES = 8 * 1024 * 1024
BATCH_MESSAGES = 1000  # records merged into one hand-off batch up to about this many messages
AHEAD_BYTES = 64 * 1024 * 1024  # what the tailer lets wait in memory before it waits for the applier

Position = tuple[int, int]


class SpoolError(OSError):
    """The spool's directory cannot be used safely (its line is shown as it is)."""


def private_directory(directory: Path) -> None:
    """Create the spool's directory for this user alone, or check that it is one.

    The spool holds raw event messages (task arguments before any redaction), and a spool beside
    a PostgreSQL history sits in the shared temporary directory under a predictable name: a
    directory someone else made (or a link to one) is refused rather than written to.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = os.lstat(directory)
    if not stat.S_ISDIR(found.st_mode):
        raise SpoolError(f"the event spool {directory} is not a directory (a link or a file is there)")
    if found.st_uid != os.geteuid():
        raise SpoolError(f"the event spool {directory} belongs to another user (uid {found.st_uid}): "
                         "remove it, or give --db another place")
    if stat.S_IMODE(found.st_mode) & 0o077:
        os.chmod(directory, 0o700)


def segment_name(number: int) -> str:
    return f"{number:020d}{SUFFIX}"


def segments(directory: Path) -> list[int]:
    """The segment numbers in the spool, oldest first."""
    numbers = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        if name.endswith(SUFFIX) and name[: -len(SUFFIX)].isdigit():
            numbers.append(int(name[: -len(SUFFIX)]))
    return sorted(numbers)


def encode(received_at: float, batch: list[RawMessage]) -> bytes:
    lengths = [len(m.body) for m in batch]
    rest = HEADER.size - 4 + 4 * len(lengths) + sum(lengths)
    return b"".join([HEADER.pack(rest, received_at, len(batch)), struct.pack(f"<{len(lengths)}I", *lengths),
                     *(m.body for m in batch)])


def decode(data: bytes | memoryview, start: int) -> tuple[int, float, list[RawMessage]] | None:
    """The record at ``start``: (the offset past it, received_at, messages), or None if incomplete."""
    if len(data) - start < HEADER.size:
        return None
    rest, received_at, count = HEADER.unpack_from(data, start)
    end = start + 4 + rest
    if end > len(data):
        return None
    at = start + HEADER.size
    lengths = struct.unpack_from(f"<{count}I", data, at)
    at += 4 * count
    messages = []
    for length in lengths:
        messages.append(RawMessage(bytes(data[at : at + length])))
        at += length
    return end, received_at, messages


class SpoolWriter:
    """The reader process's sink: appends each batch, written through to the OS before the next read.

    A write the disk refuses returns False (the caller keeps the batch another way) and is taken
    back; a segment it could not take back from is never written again: the next write opens a new one.
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        private_directory(directory)
        existing = segments(directory)
        self.number = existing[-1] if existing else 0
        self._file: BinaryIO | None = None
        self.written = 0
        self.failing: OSError | None = None

    def put(self, received_at: float, batch: list[RawMessage], size: int) -> bool:
        data = encode(received_at, batch)
        record = memoryview(data)
        try:
            if self._file is None or (self.written and self.written + len(record) > self.segment_bytes):
                # The next segment is created only once this one is complete: a tailer that sees it
                # knows the previous one has all it will ever have.
                self._roll()
            assert self._file is not None
            while record:
                record = record[self._file.write(record) or 0 :]
        except OSError as exc:
            if self._file is not None:
                try:  # the record the disk cut short is taken back (shrinking needs no space)
                    os.ftruncate(self._file.fileno(), self.written)
                except OSError:
                    self._file.close()
                    self._file = None  # cut short, perhaps: written no more
            self.failing = exc
            return False
        self.failing = None
        self.written += len(data)
        return True

    def _roll(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.number += 1
        self.written = 0
        path = self.directory / segment_name(self.number)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        self._file = os.fdopen(fd, "ab", buffering=0)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class SpoolTailer:
    """The monitor's side: reads what the reader process spooled into the hand-off, never ahead of
    the applier by more than ``AHEAD_BYTES``, and deletes the segments the history has flushed."""

    def __init__(self, directory: Path, handoff: Handoff, flushed: Callable[[], Position | None],
                 ahead_bytes: int = AHEAD_BYTES) -> None:
        try:
            private_directory(directory)
        except SpoolError:
            raise
        except OSError:
            pass  # a disk that refuses it now: the reader process's batches come over its pipe meanwhile
        self.directory = directory
        self.handoff = handoff
        self.flushed = flushed
        self.ahead_bytes = ahead_bytes
        self.read_bytes = max(64 * 1024, min(READ_BYTES, ahead_bytes // 4))
        self.position: Position = (0, 0)
        self.torn_records = 0
        self._deleted_below = 0

    def resume(self, saved: Position | None) -> None:
        """Start after what the history saved (everything still spooled, when it saved nothing)."""
        numbers = segments(self.directory)
        if saved is None:
            self.position = (numbers[0], 0) if numbers else (0, 0)
            return
        number, offset = saved
        if number in numbers:
            self.position = (number, offset)
        else:  # that segment is gone: the next one from its start
            later = [n for n in numbers if n > number]
            # None either: this spool is not the one the position was saved from (another replica's
            # host, a temporary directory emptied by a reboot): all it holds, from its first segment.
            self.position = (later[0], 0) if later else (0, 0)
        self._delete_below(self.position[0])

    def backlog_bytes(self) -> int:
        """Spooled but not yet read into memory."""
        number, offset = self.position
        total = 0
        for n in segments(self.directory):
            if n < number:
                continue
            try:
                size = (self.directory / segment_name(n)).stat().st_size
            except FileNotFoundError:
                continue
            total += size - offset if n == number else size
        return max(0, total)

    def step(self) -> bool:
        """Read what is new into the hand-off; True when something was read (more may follow)."""
        saved = self.flushed()
        if saved is not None:
            self._delete_below(min(saved[0], self.position[0]))
        if self.handoff.pending_bytes > self.ahead_bytes:
            return False
        number, offset = self.position
        if number == 0 or not (self.directory / segment_name(number)).exists():
            numbers = [n for n in segments(self.directory) if n > number]
            if not numbers:
                return False
            number, offset = self.position = (numbers[0], 0)
        read = self._read(number, offset)
        if read:
            return True
        later = [n for n in segments(self.directory) if n > number]
        if not later:
            return False
        # A newer segment exists, so this one is complete: read it once more, then move on.
        if self._read(number, self.position[1]):
            return True
        size = (self.directory / segment_name(number)).stat().st_size
        if size > self.position[1]:
            self.torn_records += 1
            log.warning("spool segment %d ends with an incomplete record (%d bytes; its reader was killed "
                        "while writing): skipped", number, size - self.position[1])
        self.position = (later[0], 0)
        return True

    def _read(self, number: int, offset: int) -> bool:
        with open(self.directory / segment_name(number), "rb") as f:
            f.seek(offset)
            data = f.read(self.read_bytes)
            if len(data) >= HEADER.size and decode(data, 0) is None:  # one record larger than a read
                data += f.read(4 + HEADER.unpack_from(data)[0] - len(data))
        if not data:
            return False
        start = 0
        batch: list[RawMessage] = []
        size = 0
        received = 0.0
        while (record := decode(data, start)) is not None:
            start, received_at, messages = record
            if not batch:
                received = received_at
            batch.extend(messages)
            size += sum(len(m.body) for m in messages)
            if len(batch) >= BATCH_MESSAGES:
                self._hand_over(received, batch, size, (number, offset + start))
                batch, size = [], 0
        if batch:
            self._hand_over(received, batch, size, (number, offset + start))
        return start > 0

    def _hand_over(self, received_at: float, batch: list[RawMessage], size: int, position: Position) -> None:
        # Never over the hand-off's own bound: step() reads only while less than ahead_bytes wait.
        if not self.handoff.put(received_at, SpooledBatch(batch, position), size):
            raise RuntimeError("the hand-off refused a spooled batch (its bound is below the tailer's)")
        self.position = position

    def _delete_below(self, number: int) -> None:
        if number <= self._deleted_below:
            return
        for n in segments(self.directory):
            if n >= number:
                break
            try:
                (self.directory / segment_name(n)).unlink()
            except FileNotFoundError:
                pass
        self._deleted_below = number
