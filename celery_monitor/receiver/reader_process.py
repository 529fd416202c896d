"""The Redis event reader in a process of its own, writing to the spool; the monitor tails the spool.

Redis drops a pub/sub subscriber whose output buffer passes its limit, so the socket must be
drained at the publisher's pace whatever the applier is doing. In the monitor's process the reader
shares the GIL with the applier; in a process of its own it never waits for it. The reader process
(``python -m celery_monitor.receiver.reader_process``) runs ``RedisEventReader`` in its ``raw`` mode:
each read off the socket is appended to the spool as received, the least work per byte there is
(parsing the replies in the reader process made it fall behind a publisher at full speed on a
busy 2-core machine; the tailer parses them instead). It reports its health on stdout every half
second (``Frames``). While the disk refuses the spool's writes (full, read-only), the reader
process parses what it reads itself and sends the messages over that pipe instead, to wait in the
monitor's memory as they did with the in-process reader, until the disk takes writes again (the
one message cut across that switch is lost, and counted as dropped).

The monitor's side (``ReaderProcess``) starts it, restarts it when it exits (counted in
``reader_restarts``, logged and counted as a failure of the ``reader`` loop, like any background
error), kills it when it has said nothing for a minute, and tails the spool into the hand-off
(``SpoolTailer``, the ``spool`` loop). The reader process reads its stdin until end of file: the
monitor holds the other end, so when the monitor dies, even by ``kill -9``, the kernel closes it
and the reader process exits.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

from celery_monitor.receiver.handoff import Handoff, RawMessage
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.receiver.resp import RespSplitter
from celery_monitor.receiver.spool import AHEAD_BYTES, Position, SpoolTailer, SpoolWriter, decode, encode
from celery_monitor.receiver.wake import WakePipe, wake
from celery_monitor.supervision import Loop, ThrottledLog

log = logging.getLogger(__name__)
MODULE = "celery_monitor.receiver.reader_process"
REPORT_EVERY = 0.5
SILENT_AFTER = 60.0  # seconds without a health line before the reader process is killed and restarted
STALL_AFTER = 90.0
RETRY_SPOOL_AFTER = 5.0  # seconds between attempts at the spool while the disk refuses it
PIPE_WAITS_FOR_SPOOL = 1.0  # seconds a batch from the pipe waits for the tailer to empty the spool
BACKLOG_MEASURE_SECONDS = 0.25
# Between reads of the spool while events flow, so that each read takes what came meanwhile: a
# twentieth of a second at a modest rate (reading every 10 ms cost a 1,000 events/s monitor a
# third more CPU); every 10 ms once a read brings HEAVY_READ messages or more (a burst: there the
# longer wait made a 200,000-event burst end 1-2 s later, in each of four runs).
FLOW_WAIT = 0.05
HEAVY_FLOW_WAIT = 0.01
HEAVY_READ = 100
IDLE_WAIT = 0.25  # the longest an idle tailer sleeps without a wake-up (it measures and watches meanwhile)
MIN_BACKOFF = 0.1
MAX_BACKOFF = 5.0
# The child's counters: the monitor adds those of the processes before it.
COUNTERS = ("messages_received", "messages_dropped", "broker_disconnects", "reconnects")
FRAME = struct.Struct("<I")  # after the kind byte: the payload's length
HEALTH, RECORD = b"H", b"R"
STATE = ("connected", "connected_since", "failing_since", "last_error", "last_error_reason")


class ReaderProcess:
    """Starts and supervises the reader process, and tails its spool into the hand-off."""

    transport = "redis"

    def __init__(self, config: dict[str, Any], spool: Path, handoff: Handoff, health: ReceiverHealth,
                 flushed: Callable[[], Position | None], buffer_bytes: int = AHEAD_BYTES) -> None:
        self.config = {**config, "spool": str(spool)}
        self.spool = spool
        self.health = health
        health.transport = self.transport
        self.handoff = handoff
        self.tailer = SpoolTailer(spool, handoff, flushed, buffer_bytes)
        self.loop = Loop("reader", critical=True, stall_after=STALL_AFTER)
        self.tail_loop = Loop("spool", critical=True, stall_after=STALL_AFTER)
        self._stop_event = threading.Event()
        self._wake = WakePipe()  # every reader process it starts writes to it (wake.py)
        self._process: subprocess.Popen[bytes] | None = None
        self._line_at = time.monotonic()
        self._base = dict.fromkeys(COUNTERS, 0)
        self._child: dict[str, Any] = {}  # the running reader process's last report
        self._base_errors: dict[str, int] = dict(health.errors_by_reason)
        self._pipe_dropped = 0
        self._supervisor = threading.Thread(target=self._supervise, name="event-reader-process", daemon=True)
        self._tail_thread = threading.Thread(target=self._tail, name="spool-tailer", daemon=True)

    @property
    def loops(self) -> tuple[Loop, ...]:
        return (self.loop, self.tail_loop)

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def resume(self, saved: Any) -> None:
        """Tail from the position the history saved with its last flush."""
        position: Position | None = None
        if isinstance(saved, list | tuple) and len(saved) == 2 and all(isinstance(x, int) for x in saved):
            position = (saved[0], saved[1])
        self.tailer.resume(position)

    def start(self) -> None:
        self._supervisor.start()
        self._tail_thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.wake()
        self._end_child()
        if self._supervisor.is_alive():
            self._supervisor.join(10)
        if self._tail_thread.is_alive():
            self._tail_thread.join(10)
        if not self._tail_thread.is_alive():
            self._wake.close()

    # -- the reader process --------------------------------------------------------------------

    def _supervise(self) -> None:
        with self.loop.lifetime(self._stop_event):
            backoff = MIN_BACKOFF
            while not self._stop_event.is_set():
                self.loop.beat()
                started = time.monotonic()
                try:
                    code = self._run_child()
                except Exception as exc:  # could not even start it: a bug, or no interpreter
                    self.loop.failed(exc, "starting the event reader process")
                else:
                    if self._stop_event.is_set():
                        break
                    self.health.reader_restarts += 1
                    self.loop.failed(RuntimeError(f"the event reader process exited with code {code}"),
                                     "reading events (restarting it)")
                if time.monotonic() - started > 30:
                    backoff = MIN_BACKOFF
                if self._stop_event.wait(backoff):
                    break
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _run_child(self) -> int:
        process = subprocess.Popen([sys.executable, "-m", MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   close_fds=True, pass_fds=(self._wake.write_fd,))
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        self.health.reader_pid = process.pid
        self._line_at = time.monotonic()
        try:
            config = {**self.config, "wake_fd": self._wake.write_fd}
            process.stdin.write(json.dumps(config, default=str).encode() + b"\n")
            process.stdin.flush()
            read = process.stdout.read
            while len(head := read(FRAME.size + 1)) == FRAME.size + 1:
                payload = read(FRAME.unpack_from(head, 1)[0])
                self._line_at = time.monotonic()
                self.loop.beat()
                if head[:1] == HEALTH:
                    self._report(json.loads(payload))
                elif (record := decode(payload, 0)) is not None:  # the spool refused it: in memory
                    _, received_at, batch = record
                    self._after_the_spool()
                    if not self.handoff.put(received_at, batch, len(payload)):
                        self._pipe_dropped += len(batch)
                        self.health.messages_dropped += len(batch)
        except (OSError, ValueError) as exc:
            if not self._stop_event.is_set():
                log.warning("lost the event reader process's reports: %s", exc)
        finally:
            self._end_child()
            self._child_ended()
        return process.wait()

    def _after_the_spool(self) -> None:
        """Let the tailer hand over what was spooled before this batch came over the pipe (a record
        the full disk cut short stays unread: not for more than a moment)."""
        deadline = time.monotonic() + PIPE_WAITS_FOR_SPOOL
        while self.tailer.backlog_bytes() and time.monotonic() < deadline and not self._stop_event.is_set():
            time.sleep(0.005)

    def _report(self, child: dict[str, Any]) -> None:
        health = self.health
        self._child = child
        for name in COUNTERS:
            setattr(health, name, self._base[name] + int(child.get(name, 0)))
        health.messages_dropped += self._pipe_dropped  # over the hand-off's bound, from the pipe
        self._count_received()
        for name in STATE:
            setattr(health, name, child.get(name))
        errors = child.get("errors_by_reason") or {}
        health.errors_by_reason = {reason: self._base_errors.get(reason, 0) + int(errors.get(reason, 0))
                                   for reason in {*self._base_errors, *errors}}

    def _count_received(self) -> None:
        """Messages parsed from the spool (by the tailer) or over the pipe: the reader process only
        counts messages while it parses them itself (and its reports do not count what it spooled)."""
        self.health.messages_received = (self._base["messages_received"] + int(self._child.get("messages_received", 0))
                                          + self.tailer.messages)

    def _child_ended(self) -> None:
        health = self.health
        for name in COUNTERS:
            self._base[name] += int(self._child.get(name, 0))
        self._child = {}
        self._base_errors = dict(health.errors_by_reason)
        health.connected = False
        health.connected_since = None
        health.reader_pid = None
        if health.failing_since is None:
            health.failing_since = time.time()

    def _end_child(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            assert process.stdin is not None
            process.stdin.close()  # the reader process exits at end of file
        except OSError:
            pass
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    # -- the spool -----------------------------------------------------------------------------

    def _tail(self) -> None:
        with self.tail_loop.lifetime(self._stop_event):
            backoff = MIN_BACKOFF
            measured_at = 0.0
            flowing = False  # the last read found something
            read_before = 0  # messages read before the last wait
            while not self._stop_event.is_set():
                self.tail_loop.beat()
                try:
                    self._wake.drain()  # before reading: a wake-up after this waits for the sleep below
                    more = self.tailer.step()
                    self._count_received()
                    now = time.monotonic()
                    # Measuring stats every segment file, so a few times a second, busy or idle.
                    if now - measured_at >= BACKLOG_MEASURE_SECONDS:
                        self.health.spool_backlog_bytes = self.tailer.backlog_bytes()
                        measured_at = now
                    self._watch_child()
                except Exception as exc:
                    self.tail_loop.failed(exc, "reading the spool")
                    self._stop_event.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                backoff = MIN_BACKOFF
                if more:
                    flowing = True
                elif flowing or self.tailer.waiting_for_applier:
                    flowing = False
                    heavy = self.tailer.messages - read_before >= HEAVY_READ
                    read_before = self.tailer.messages
                    self._stop_event.wait(HEAVY_FLOW_WAIT if heavy else FLOW_WAIT)
                else:  # idle: until the reader process spools something
                    self._wake.wait(IDLE_WAIT)

    def _watch_child(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        silent = time.monotonic() - self._line_at
        if silent > SILENT_AFTER:
            log.error("the event reader process %d has said nothing for %.0fs: killing it", process.pid, silent)
            process.kill()


# -- the reader process itself ------------------------------------------------------------------


class Frames:
    """The reader process's stdout: frames of a kind byte (``HEALTH`` JSON, or a spool ``RECORD``
    the spool could not take) and a length. One lock: the reader thread and the reporter share it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.lock = threading.Lock()

    def send(self, kind: bytes, payload: bytes) -> None:
        with self.lock:
            self.out.write(kind + FRAME.pack(len(payload)) + payload)
            self.out.flush()


class SpoolOrPipe:
    """The reader's sink: the spool, each read as received; while the disk refuses it (full,
    read-only), the messages parsed here and sent over the pipe to the monitor, which hands them
    over in memory as the in-process reader did."""

    def __init__(self, spool: SpoolWriter, frames: Frames, health: ReceiverHealth,
                 wake_tailer: Callable[[], None] = lambda: None) -> None:
        self.spool = spool
        self.frames = frames
        self.health = health
        self.wake_tailer = wake_tailer
        self.parser: RespSplitter | None = None  # while the pipe is used
        self._outage = ThrottledLog(log)
        self._retry_at = 0.0

    def new_stream(self) -> None:
        self.spool.new_stream()
        if self.parser is not None:
            self.parser.restart()

    def write_raw(self, received_at: float, data: memoryview) -> None:
        if self.parser is None:
            if self.spool.write(received_at, data):
                self._spooled()
                return
            # The reply under way is cut (its start is in the spool): parsed from the next message on.
            self._refused(resync=True)
        parser = self._parse(received_at, data)
        if time.monotonic() >= self._retry_at and parser.clean is not None:
            # The spool again, from the end of the last complete reply: a stream of its own there.
            self.parser = None
            self.spool.new_stream()
            rest = data[parser.clean[1] :]
            if not rest or self.spool.write(received_at, rest):
                self._spooled()
            else:
                self._refused(resync=False)
                self._parse(received_at, rest)

    def _refused(self, resync: bool) -> None:
        """Tried again only after a while: batches alternating between the spool and the pipe could
        reach the applier out of order."""
        self.parser = RespSplitter(resync=resync)
        self._retry_at = time.monotonic() + RETRY_SPOOL_AFTER
        self._outage.failure(str(self.spool.failing), f"the spool refuses writes ({self.spool.failing}): "
                                                      "events go to the monitor's memory instead")

    def _spooled(self) -> None:
        self.wake_tailer()
        if self._outage.failing:
            self._outage.recovered("spooling events again")

    def _parse(self, received_at: float, data: memoryview) -> RespSplitter:
        parser = self.parser
        assert parser is not None
        skipped = parser.skipped
        parser.clean = None
        payloads = parser.feed(data)
        self.health.messages_dropped += parser.skipped - skipped
        if payloads:
            self.health.messages_received += len(payloads)
            self.frames.send(RECORD, encode(received_at, [RawMessage(p) for p in payloads]))
        return parser


def _exit_with_parent(stdin: IO[bytes]) -> None:
    while stdin.read(65536):
        pass
    os._exit(0)


def main() -> None:
    from celery_monitor.receiver.redis_reader import RedisEventReader

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [event reader process] %(name)s: %(message)s")
    config = json.loads(sys.stdin.buffer.readline())
    threading.Thread(target=_exit_with_parent, args=(sys.stdin.buffer,), daemon=True).start()
    frames = Frames(sys.stdout.buffer)
    health = ReceiverHealth()
    wake_fd = config.get("wake_fd")
    sink = SpoolOrPipe(SpoolWriter(Path(config["spool"])), frames, health,
                       partial(wake, wake_fd) if isinstance(wake_fd, int) else lambda: None)
    reader = RedisEventReader(config["url"], Handoff(0), health, config["exchange"], config.get("transport_options"),
                              config.get("ssl_options"), raw=sink)
    reader.start()
    while reader.is_alive():
        frames.send(HEALTH, json.dumps(health.as_dict()).encode())
        reader.join(REPORT_EVERY)
    sys.exit(1)


if __name__ == "__main__":
    main()
