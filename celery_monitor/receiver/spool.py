"""The spool: an append-only log of what the Redis reader received, on disk, between the reader
process and the applier.

The reader process appends; the monitor tails. A spool is a directory of segment files named by a
growing number (``00000000000000000001.seg``). The reader process does the least it can per byte:
each read off the socket becomes one record, the bytes exactly as received (a pub/sub stream of
RESP replies, a reply often cut across two reads), and the tailer parses them (``resp.py``)::

    segment: b"CMRESP1" | kind (b"N": a new connection's stream starts here; b"C": it goes on
             from the previous segment, cut where that one reached SEGMENT_BYTES) | records
    record:  u32 length | f64 received_at | the bytes received

(little-endian). Each reader process, and each connection, writes segments of its own, so a
segment left with a torn last record (or a reply cut short) by a killed reader is never appended
to again: the tailer skips what is incomplete there and counts it in ``torn_records``.

A position is ``(segment, offset)``, the file offset just past a complete reply: the history saves
the position of what it has flushed, a restart parses again from there (a fresh parser can, since
no reply is under way there), and segments wholly below it are deleted. Segments of records of
parsed messages (the format before this one: ``u32 length of the rest | f64 received_at | u32
count | count x u32 message length | messages``, no header) are still read, so an upgrade replays
what an older version spooled; that format is also how the reader process sends messages over its
pipe while the disk refuses the spool.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path

from celery_monitor.receiver.handoff import Handoff, RawMessage, SpooledBatch
from celery_monitor.receiver.resp import RespSplitter

log = logging.getLogger(__name__)
SUFFIX = ".seg"
SEGMENT_BYTES = 64 * 1024 * 1024
MAGIC = b"CMRESP1"
NEW, CONTINUES = b"N", b"C"
SEGMENT_HEAD = len(MAGIC) + 1
RAW = struct.Struct("<Id")  # a record of received bytes: their length, received_at
HEADER = struct.Struct("<IdI")  # a record of parsed messages: length of the rest, received_at, count
LENGTH = struct.Struct("<I")
READ_BYTES = 8 * 1024 * 1024
BATCH_MESSAGES = 1000  # messages merged into one hand-off batch up to about this many messages
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
    """The reader process's sink: appends each read as one record, written through to the OS before
    the next read (a ``kill -9`` of the reader loses nothing it wrote; the page cache has it).

    A write the disk refuses returns False and is taken back; the segment is then closed, and the
    next write opens a new one (a new stream: the caller resumes at a reply's start, ``new_stream``).
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        private_directory(directory)
        existing = segments(directory)
        self.number = existing[-1] if existing else 0
        self._fd: int | None = None
        self._continues = False  # the next segment goes on with the stream of this one
        self.written = 0
        self.failing: OSError | None = None

    def new_stream(self) -> None:
        """What comes next starts a stream (a new connection): in a segment of its own."""
        self.close()
        self._continues = False

    def write(self, received_at: float, data: memoryview | bytes) -> bool:
        try:
            if self._fd is None or (self.written > SEGMENT_HEAD
                                    and self.written + RAW.size + len(data) > self.segment_bytes):
                # The next segment is created only once this one is complete: a tailer that sees it
                # knows the previous one has all it will ever have.
                self._roll()
            assert self._fd is not None
            if os.writev(self._fd, [RAW.pack(len(data), received_at), data]) != RAW.size + len(data):
                raise OSError(errno.ENOSPC, "the disk took part of a spool record")
        except OSError as exc:
            self._abandon()
            self.failing = exc
            return False
        self.failing = None
        self.written += RAW.size + len(data)
        self._continues = True
        return True

    def _roll(self) -> None:
        kind = CONTINUES if self._continues and self._fd is not None else NEW
        self.close()
        self.number += 1
        self.written = 0
        path = self.directory / segment_name(self.number)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        if os.write(self._fd, MAGIC + kind) != SEGMENT_HEAD:
            raise OSError(errno.ENOSPC, "the disk took part of a spool segment's header")
        self.written = SEGMENT_HEAD

    def _abandon(self) -> None:
        """Take back what the disk cut short (shrinking needs no space) and write this segment no more."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self.written)
            except OSError:
                pass  # left torn: the tailer skips an incomplete last record
        self.close()
        self._continues = False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SpoolTailer:
    """The monitor's side: parses what the reader process spooled into the hand-off, never ahead of
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
        self.position: Position = (0, 0)  # what has been read (in a segment of received bytes, records)
        self.torn_records = 0
        self.messages = 0  # messages handed over
        self._deleted_below = 0
        self._splitter = RespSplitter()
        self._legacy = False  # the current segment holds parsed messages (written by an older version)
        self._previous = 0  # the segment read to its end just before the current one
        self._skip_to = 0  # resuming inside a segment: its bytes before this offset were applied

    def resume(self, saved: Position | None) -> None:
        """Start after what the history saved (everything still spooled, when it saved nothing)."""
        numbers = segments(self.directory)
        self._previous = self._skip_to = 0
        if saved is None:
            self.position = (numbers[0], 0) if numbers else (0, 0)
            return
        number, offset = saved
        if number in numbers:
            if self._kind(number) is None:  # parsed records: the offset is a record's start
                self.position = (number, offset)
                self._legacy = True
            else:
                self.position, self._skip_to = (number, 0), offset
        else:  # that segment is gone: the next one from its start
            later = [n for n in numbers if n > number]
            # None either: this spool is not the one the position was saved from (another replica's
            # host, a temporary directory emptied by a reboot): all it holds, from its first segment.
            self.position = (later[0], 0) if later else (0, 0)
        self._delete_below(self.position[0])

    def _kind(self, number: int) -> bytes | None:
        with open(self.directory / segment_name(number), "rb") as f:
            head = f.read(SEGMENT_HEAD)
        return head[-1:] if head.startswith(MAGIC) else None

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

    @property
    def waiting_for_applier(self) -> bool:
        """The hand-off holds as much as the tailer lets wait there: it reads no more until the applier
        has taken some (no wake-up says when: the tailer looks again soon)."""
        return self.handoff.pending_bytes > self.ahead_bytes

    def step(self) -> bool:
        """Read what is new into the hand-off; True when something was read (more may follow)."""
        saved = self.flushed()
        if saved is not None:
            self._delete_below(min(saved[0], self.position[0]))
        if self.waiting_for_applier:
            return False
        number = self.position[0]
        if number == 0 or not (self.directory / segment_name(number)).exists():
            numbers = [n for n in segments(self.directory) if n > number]
            if not numbers:
                return False
            number, _ = self.position = (numbers[0], 0)
        if self._read(number):
            return True
        later = [n for n in segments(self.directory) if n > number]
        if not later:
            return False
        # A newer segment exists, so this one is complete: read it once more, then move on.
        if self._read(number):
            return True
        size = (self.directory / segment_name(number)).stat().st_size
        if size > self.position[1] and self.position[1]:
            self.torn_records += 1
            log.warning("spool segment %d ends with an incomplete record (%d bytes; its reader was killed "
                        "while writing): skipped", number, size - self.position[1])
        self._previous = number
        self.position = (later[0], 0)
        return True

    def _read(self, number: int) -> bool:
        offset = self.position[1]
        with open(self.directory / segment_name(number), "rb") as f:
            if offset == 0:
                head = f.read(SEGMENT_HEAD)
                if head and not head.startswith(MAGIC[: len(head)]):
                    self._begin(number, None)
                elif len(head) < SEGMENT_HEAD:
                    return False  # its header is being written (or could not be)
                else:
                    self._begin(number, head[-1:])
                    offset = SEGMENT_HEAD
            f.seek(offset)
            data = f.read(self.read_bytes)
            if self._legacy:
                if len(data) >= HEADER.size and decode(data, 0) is None:  # one record larger than a read
                    data += f.read(4 + HEADER.unpack_from(data)[0] - len(data))
                return self._hand_over_records(number, offset, data)
            if len(data) >= RAW.size and RAW.size + RAW.unpack_from(data)[0] > len(data):
                data += f.read(RAW.size + RAW.unpack_from(data)[0] - len(data))
        return self._parse_received(number, offset, data)

    def _begin(self, number: int, kind: bytes | None) -> None:
        """Entering a segment: does the parser go on with the previous one's stream?"""
        splitter = self._splitter
        self._legacy = kind is None
        if self._skip_to:  # resuming where no reply was under way
            splitter.restart()
        elif kind != CONTINUES or self._previous != number - 1:
            if splitter.pending:
                self.torn_records += 1
                log.warning("spool segment %d ends inside a message (its reader was killed): skipped",
                            self._previous)
            # A continuation without its start (deleted, or never seen): from the next message on.
            splitter.restart(resync=kind == CONTINUES)
        self.position = (number, 0 if kind is None else SEGMENT_HEAD)

    def _parse_received(self, number: int, offset: int, data: bytes) -> bool:
        view = memoryview(data)
        splitter = self._splitter
        start = 0
        batch: list[RawMessage] = []
        size = 0
        received = 0.0
        while len(data) - start >= RAW.size:
            length, received_at = RAW.unpack_from(data, start)
            end = start + RAW.size + length
            if end > len(data):
                break
            at = offset + start + RAW.size  # the file offset of the bytes received
            piece = view[start + RAW.size : end]
            if self._skip_to > at:  # applied before the restart
                cut = min(length, self._skip_to - at)
                piece, at = piece[cut:], at + cut
            start = end
            if not piece:
                continue
            payloads = splitter.feed(piece, number, at)
            if not payloads:
                continue
            if not batch:
                received = received_at
            batch.extend(RawMessage(p) for p in payloads)
            size += sum(len(p) for p in payloads)
            if len(batch) >= BATCH_MESSAGES:
                self._hand_over(received, batch, size)
                batch, size = [], 0
        if batch:
            self._hand_over(received, batch, size)
        if start:
            self.position = (number, offset + start)
            if self._skip_to and self._skip_to <= offset + start:
                self._skip_to = 0
        return start > 0

    def _hand_over(self, received_at: float, batch: list[RawMessage], size: int) -> None:
        clean = self._splitter.clean
        assert clean is not None  # messages come only from complete replies
        self._put(received_at, SpooledBatch(batch, clean), size)

    def _hand_over_records(self, number: int, offset: int, data: bytes) -> bool:
        """A segment of parsed messages (an older version's)."""
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
                self._put(received, SpooledBatch(batch, (number, offset + start)), size)
                batch, size = [], 0
        if batch:
            self._put(received, SpooledBatch(batch, (number, offset + start)), size)
        if start:
            self.position = (number, offset + start)
        return start > 0

    def _put(self, received_at: float, batch: SpooledBatch, size: int) -> None:
        # Never over the hand-off's own bound: step() reads only while less than ahead_bytes wait.
        if not self.handoff.put(received_at, batch, size):
            raise RuntimeError("the hand-off refused a spooled batch (its bound is below the tailer's)")
        self.messages += len(batch)

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
