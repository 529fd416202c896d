"""The reader process's wake-ups for the spool's tailer: a byte down a pipe after each spool write.

Polling the spool cost the monitor a thread wake-up every 10 ms, busy or idle: 3% of a core
for a monitor with nothing to do, on this project's 2-core test machine. With the pipe, an idle
tailer sleeps until the reader process has spooled something. While events flow, the tailer
reads at intervals (reader_process.FLOW_WAIT), whatever the wake-ups say, so that one read takes
many records.

The monitor makes the pipe and keeps both ends; the reader process inherits the writing end.
Both ends are non-blocking: a full pipe means the tailer has unread wake-ups already, so a byte
more is dropped, and the reader never waits on the monitor.
"""

from __future__ import annotations

import os
import select


class WakePipe:
    """The monitor's side: wait until woken (or a timeout), and take the wake-ups that came."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        # poll(), not select(): select() refuses a descriptor numbered 1024 or more, and a busy
        # server has that many open.
        self._poller = select.poll()
        self._poller.register(self.read_fd, select.POLLIN)

    def wait(self, timeout: float) -> None:
        """Until a wake-up is unread, ``timeout`` seconds at most."""
        self._poller.poll(timeout * 1000)

    def drain(self) -> None:
        """Take every wake-up so far: the next wait then sleeps until a write that comes after this."""
        try:
            while os.read(self.read_fd, 65536):
                pass
        except BlockingIOError:
            pass

    def wake(self) -> None:
        """Wake the waiting side from this process (to stop it)."""
        wake(self.write_fd)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def wake(fd: int) -> None:
    """One wake-up down the pipe ``fd``. A full pipe already holds wake-ups the tailer has not
    taken; a closed one has no reader left (the monitor is gone, and this process follows it)."""
    try:
        os.write(fd, b"\0")
    except OSError:
        pass
