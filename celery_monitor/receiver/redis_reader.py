"""Redis event reader: a bare socket and hiredis's reply parser, draining pub/sub at wire speed.

Redis disconnects a subscriber whose output buffer passes its pub/sub limit (32 MB by default),
so this loop does nothing but read, split replies and hand the raw payloads over in batches. In
the reader process (``raw``) it does even less: each read goes to the spool as received, and the
monitor splits the replies when it reads them back.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlparse

import hiredis

from celery_monitor.broker import faults
from celery_monitor.receiver.base import EventReader
from celery_monitor.receiver.handoff import RawMessage, Sink
from celery_monitor.receiver.health import ReceiverHealth

READ_SIZE = 4 * 1024 * 1024
FEED_SIZE = 16 * 1024
IDLE_PING_AFTER = 15.0
DEAD_AFTER = 45.0
SUBSCRIBE_TIMEOUT = 5.0
# The in-process reader asks for a large receive buffer; the raw reader leaves it to the kernel's
# autotuning, which grows it further (to net.ipv4.tcp_rmem's maximum, 32 MB on the bench machine):
# a fixed SO_RCVBUF stops that, and the bench's fastest bursts then lost the subscriber.
RCVBUF = 8 * 1024 * 1024


class RawSink(Protocol):
    """Takes the bytes exactly as received (the reader process's spool)."""

    def new_stream(self) -> None:
        """A new connection: what follows starts at a reply's start."""

    def write_raw(self, received_at: float, data: memoryview) -> None: ...


@dataclass(frozen=True, slots=True)
class RedisTarget:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ssl_options: tuple[tuple[str, str], ...] = ()


SSL_QUERY_KEYS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def parse_redis_url(url: str) -> RedisTarget:
    parts = urlparse(url)
    if parts.scheme in ("redis+socket", "socket", "unix"):
        return RedisTarget(path=parts.path, password=unquote(parts.password) if parts.password else None)
    db_text = (parts.path or "/").lstrip("/") or "0"
    return RedisTarget(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(db_text),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=parts.scheme == "rediss",
        ssl_options=tuple((k, v) for k, v in parse_qsl(parts.query) if k in SSL_QUERY_KEYS),
    )


def event_channel_patterns(db: int, exchange: str, options: dict[str, Any]) -> list[bytes]:
    """The pub/sub channels kombu publishes Celery events to, as PSUBSCRIBE patterns."""
    fanout_prefix = options.get("fanout_prefix", True)
    if isinstance(fanout_prefix, str):
        prefix = fanout_prefix
    elif fanout_prefix:
        prefix = f"/{db}."
    else:
        prefix = ""
    base = f"{options.get('global_keyprefix', '')}{prefix}{exchange}"
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in base)
    return [escaped.encode(), f"{escaped}/*".encode()]


def encode_command(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _feed_more(sock: socket.socket, reader: hiredis.Reader) -> None:
    """One more read of a reply under way (a handshake's, before the stream starts)."""
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("connection closed during handshake")
    reader.feed(data)


def _replies(reader: hiredis.Reader, data: memoryview) -> Iterator[Any]:
    """The replies ``data`` completes. Fed a slice at a time: hiredis's reader slows down with the
    size of its buffer (a 4 MB read parsed at once is fifty times slower than the same bytes in 16 KB
    slices)."""
    for start in range(0, len(data), FEED_SIZE):
        reader.feed(data, start, min(FEED_SIZE, len(data) - start))  # type: ignore[arg-type]  # any buffer
        while (reply := reader.gets()) is not False:
            yield reply


def _quiet(sock: socket.socket, last_data: float, pinged: bool) -> bool:
    """A read timed out: give up on a Redis silent for ``DEAD_AFTER``, PING one quiet for
    ``IDLE_PING_AFTER`` (once until data comes); whether a PING is out now."""
    idle = time.monotonic() - last_data
    if idle > DEAD_AFTER:
        raise ConnectionError(f"no reply from redis for {idle:.0f}s") from None  # not the timeout
    if idle > IDLE_PING_AFTER and not pinged:
        sock.sendall(encode_command("PING"))
        return True
    return pinged


class RedisEventReader(EventReader):
    transport = "redis"

    def __init__(
        self,
        url: str,
        handoff: Sink,
        health: ReceiverHealth,
        exchange: str = "celeryev",
        transport_options: dict[str, Any] | None = None,
        ssl_options: dict[str, Any] | None = None,
        raw: RawSink | None = None,
    ) -> None:
        super().__init__(handoff, health)
        self.raw = raw
        self.target = parse_redis_url(url)
        self.patterns = event_channel_patterns(self.target.db, exchange, transport_options or {})
        # TLS settings from the URL's query (as kombu reads them), then from broker_use_ssl.
        self.ssl_options = {**dict(self.target.ssl_options), **(ssl_options or {})}
        self._sock: socket.socket | None = None

    @property
    def where(self) -> str:
        return self.target.path or f"{self.target.host}:{self.target.port}"

    def interrupt(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _connect(self) -> socket.socket:
        target = self.target
        if target.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            try:
                sock.connect(target.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((target.host, target.port), timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if self.raw is None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        if target.tls:
            self.phase = faults.TLS_HANDSHAKE
            try:
                sock = self._wrap_tls(sock)
            except BaseException:
                sock.close()
                raise
        return sock

    def _wrap_tls(self, sock: socket.socket) -> socket.socket:
        import ssl  # here, not at the top: a broker without TLS spares the reader process ~5 MB

        opts = self.ssl_options
        context = ssl.create_default_context(cafile=opts.get("ssl_ca_certs"))
        reqs = opts.get("ssl_cert_reqs", ssl.CERT_REQUIRED)
        if isinstance(reqs, str):
            reqs = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL}.get(
                reqs.lower().removeprefix("cert_"), ssl.CERT_REQUIRED
            )
        if reqs == ssl.CERT_NONE:
            context.check_hostname = False
        context.verify_mode = reqs
        if opts.get("ssl_certfile"):
            context.load_cert_chain(opts["ssl_certfile"], opts.get("ssl_keyfile"))
        return context.wrap_socket(sock, server_hostname=self.target.host)

    def _auth_command(self, password: str) -> bytes:
        user = [self.target.username] if self.target.username else []
        return encode_command("AUTH", *user, password)

    def _handshake(self, sock: socket.socket, reader: hiredis.Reader) -> None:
        self.phase = faults.LOGIN
        password = self.target.password
        commands = [self._auth_command(password)] if password else []
        commands.append(encode_command("PSUBSCRIBE", *self.patterns))
        sock.sendall(b"".join(commands))
        expected = len(self.patterns) + (1 if self.target.password else 0)
        login_reply = bool(self.target.password)
        while expected:
            _feed_more(sock, reader)
            while expected and (reply := reader.gets()) is not False:
                if isinstance(reply, hiredis.ReplyError):
                    refused = faults.LoginRefused if login_reply else faults.SessionRefused
                    raise refused(str(reply))
                login_reply = False
                expected -= 1

    def read_until_disconnected(self) -> None:
        reader = hiredis.Reader()
        sock = self._connect()
        self._sock = sock
        try:
            if self.raw is not None:
                self._login(sock, reader)
                self.raw.new_stream()
                sock.sendall(encode_command("PSUBSCRIBE", *self.patterns))
                sock.settimeout(1.0)
                self._drain_raw(sock, self.raw)
                return
            self._handshake(sock, reader)
            self.mark_connected()
            sock.settimeout(1.0)
            self._drain(sock, reader)
        finally:
            self._sock = None
            sock.close()

    def _reads(self, sock: socket.socket, view: memoryview, quiet: Callable[[], None] = lambda: None
               ) -> Iterator[int]:
        """How many bytes each read put in ``view``, until the reader stops. A quiet second runs
        ``quiet`` first, then pings a Redis silent for a while and gives up on one silent too long."""
        last_data = time.monotonic()
        pinged = False
        beat = self.loop.beat
        while not self.stopping:
            beat()
            try:
                n = sock.recv_into(view)
            except TimeoutError:
                quiet()
                pinged = _quiet(sock, last_data, pinged)
                continue
            if n == 0:
                raise ConnectionError("connection closed by redis")
            last_data = time.monotonic()
            pinged = False
            yield n

    def _drain(self, sock: socket.socket, reader: hiredis.Reader) -> None:
        view = memoryview(bytearray(READ_SIZE))
        health = self.health
        handoff = self.handoff
        for n in self._reads(sock, view):
            batch: list[RawMessage] = []
            size = 0
            for reply in _replies(reader, view[:n]):
                if isinstance(reply, list) and len(reply) == 4 and reply[0] == b"pmessage":
                    payload = reply[3]
                    batch.append(RawMessage(payload))
                    size += len(payload)
            if batch:
                health.messages_received += len(batch)
                if not handoff.put(time.time(), batch, size):
                    health.messages_dropped += len(batch)

    # -- raw: the reader process ---------------------------------------------------------------

    def _login(self, sock: socket.socket, reader: hiredis.Reader) -> None:
        """AUTH on its own (Redis sends nothing more until PSUBSCRIBE), so every byte after it is the
        subscription's stream, spooled as received."""
        self.phase = faults.LOGIN
        if not self.target.password:
            return
        sock.sendall(self._auth_command(self.target.password))
        while (reply := reader.gets()) is False:
            _feed_more(sock, reader)
        if isinstance(reply, hiredis.ReplyError):
            raise faults.LoginRefused(str(reply))

    def _drain_raw(self, sock: socket.socket, raw: RawSink) -> None:
        view = memoryview(bytearray(READ_SIZE))
        write = raw.write_raw
        confirmations = hiredis.Reader()
        expected = len(self.patterns)  # PSUBSCRIBE's replies, read here before the spool has them
        started = time.monotonic()

        def unconfirmed_too_long() -> None:
            if expected and time.monotonic() - started > SUBSCRIBE_TIMEOUT:
                raise TimeoutError("no reply to PSUBSCRIBE")

        for n in self._reads(sock, view, unconfirmed_too_long):
            write(time.time(), view[:n])
            if expected:
                expected = self._confirm(confirmations, view[:n], expected)

    def _confirm(self, reader: hiredis.Reader, data: memoryview, expected: int) -> int:
        for reply in _replies(reader, data):
            if isinstance(reply, hiredis.ReplyError):
                raise faults.SessionRefused(str(reply))
            expected -= 1
            if not expected:
                self.mark_connected()
                return 0
        return expected
