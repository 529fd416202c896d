"""Splitting a raw Redis pub/sub byte stream into messages, knowing where each reply ends.

The reader process spools the bytes as it receives them (the cheapest thing it can do per byte);
the monitor parses them here. hiredis does the parsing but does not say how many bytes a reply
took, so ``reply_size`` works it out from the reply (a subscriber's replies are arrays of bulk
strings and integers, whose encoding Redis never varies): the spool position saved with the
history must fall between two replies, where a fresh parser can start again after a restart.
"""

from __future__ import annotations

from typing import Any

import hiredis

FEED_SIZE = 16 * 1024  # hiredis slows down with the size of its buffer: fed a slice at a time
# How every pub/sub message starts on the wire; event bodies (JSON) never hold a raw CR LF, so
# after damage or a gap the stream is picked up again at the next one.
PMESSAGE = b"*4\r\n$8\r\npmessage\r\n"


def reply_size(reply: Any) -> int:
    """The bytes Redis sent for ``reply`` (RESP2, as a subscriber receives it)."""
    if isinstance(reply, bytes):
        return len(reply) + len(str(len(reply))) + 5  # $<len>\r\n<data>\r\n
    if isinstance(reply, list):
        return len(str(len(reply))) + 3 + sum(reply_size(item) for item in reply)
    if isinstance(reply, int):
        return len(str(reply)) + 3
    if reply is None:
        return 5  # $-1\r\n
    if isinstance(reply, hiredis.ReplyError):
        return len(str(reply).encode()) + 3
    raise hiredis.ProtocolError(f"unexpected reply in a pub/sub stream: {type(reply).__name__}")


class RespSplitter:
    """Feeds raw stream bytes to hiredis and returns the messages' payloads.

    ``clean`` is the place (anything the caller passes with the bytes, plus an offset) just past the
    last complete reply. After garbage (a torn write) or when started mid-stream (``resync``), the
    bytes up to the next message's start are skipped and counted in ``skipped``.
    """

    def __init__(self, resync: bool = False) -> None:
        self._reader = hiredis.Reader()
        self._resync = resync
        self._discarding = False  # resyncing has skipped bytes
        self._fed = 0  # stream bytes fed
        self._consumed = 0  # stream bytes of complete replies
        self.clean: tuple[int, int] | None = None
        self.skipped = 0

    @property
    def pending(self) -> bool:
        """A reply begun but not complete (its rest is in bytes not fed yet)."""
        return self._fed > self._consumed

    def feed(self, data: memoryview, segment: int = 0, offset: int = 0) -> list[bytes]:
        """``data`` sits at ``offset`` of ``segment`` (file offsets: ``clean`` is one of them)."""
        out: list[bytes] = []
        if self._resync:
            start = _find(data, PMESSAGE)
            self._discarding = self._discarding or start != 0
            if start < 0:
                return out
            self.skipped += self._discarding
            self._resync = self._discarding = False
            data, offset = data[start:], offset + start
        base = self._fed
        reader = self._reader
        try:
            for start in range(0, len(data), FEED_SIZE):
                reader.feed(data, start, min(FEED_SIZE, len(data) - start))  # type: ignore[arg-type]  # any buffer
                self._fed += min(FEED_SIZE, len(data) - start)
                while (reply := reader.gets()) is not False:
                    if type(reply) is list and len(reply) == 4 and reply[0] == b"pmessage":
                        _, pattern, channel, payload = reply
                        # reply_size, unrolled: 4 + 14 (pmessage) + 5 + digits + length of each bulk
                        self._consumed += (33 + len(pattern) + len(channel) + len(payload) + len(str(len(pattern)))
                                           + len(str(len(channel))) + len(str(len(payload))))
                        out.append(payload)
                    else:
                        self._consumed += reply_size(reply)
        except hiredis.ProtocolError:  # damaged bytes: the rest of this piece is skipped
            self.restart(resync=True)
            return out
        if self._consumed >= base:
            self.clean = (segment, offset + self._consumed - base)
        return out

    def restart(self, resync: bool = False) -> None:
        """Forget a reply begun (a new stream starts, or damage): ``resync`` skips to a message's start."""
        self._reader = hiredis.Reader()
        self._fed = self._consumed = 0
        self._resync = resync


def _find(data: memoryview, needle: bytes) -> int:
    """``needle`` in a large buffer without copying all of it at once."""
    step = FEED_SIZE * 64
    for start in range(0, len(data), step - len(needle)):
        found = bytes(data[start : start + step]).find(needle)
        if found >= 0:
            return start + found
    return -1
