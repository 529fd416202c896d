"""What waits in a queue, read from the broker without taking it away.

Celery sends no event for a task that is only queued (``task-sent`` is off by default), so a
backlog is invisible to the event stream: only the broker knows it. Reading it must not change it.

- **Redis**: a queue is a list (plus kombu's priority sub-lists ``<queue>\\x06\\x16<n>``, and every
  key under ``global_keyprefix``); kombu pushes on the left and workers pop on the right, so the
  next message out is the list's last element. ``LRANGE`` reads without removing anything.
- **RabbitMQ** has no way to look at a classic queue without taking messages: they are fetched with
  ``basic.get`` (manual acknowledgement) on a channel of their own, held while they are read, then
  all handed back at once with ``basic.nack(multiple, requeue)``. RabbitMQ puts requeued messages
  back at their original position (closer to the head if other consumers took messages meanwhile)
  and marks them *redelivered*; while held (milliseconds for a page) workers get the messages after
  them. ``basic.nack`` does not count as a failed delivery, but older RabbitMQ versions count any
  return of a quorum-queue message toward its ``delivery-limit``, so quorum and stream queues are
  not read at all. Because of these effects RabbitMQ queues are read only when someone asks
  (a page of the queue view, a bulk revoke, a re-run), never in the background, and at most
  :data:`AMQP_READ_MAX` messages at a time.

Reads are bounded: a page holds at most :data:`PAGE_MAX` tasks, a scan stops after a cap and says
how much it left unread, and Redis is read in chunks, so a queue of a million messages is never
in memory at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlparse

import amqp.exceptions
import httpx
import kombu.exceptions
import redis
from amqp import spec
from celery import Celery

from celery_monitor.broker.envelopes import Envelope, QueuedTask, amqp_envelope, redis_envelope, summary, task_id
from celery_monitor.broker.queues import PRIORITY_SEP, PRIORITY_STEPS, management_url
from celery_monitor.celery_app import broker_url
from celery_monitor.clusters import DEFAULT

log = logging.getLogger(__name__)

PAGE_MAX = 500  # tasks in one page of a queue
AMQP_READ_MAX = 2_000  # messages held at once on RabbitMQ (a page's offset + limit, a re-run's search)
REDIS_SCAN_MAX = 100_000  # messages a Redis scan reads before it stops and says so
AMQP_SCAN_MAX = AMQP_READ_MAX
REDIS_CHUNK = 100  # elements per LRANGE
AMQP_TIMEOUTS = {"read_timeout": 10, "write_timeout": 10}
UNREADABLE_TYPES = ("quorum", "stream")
REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://", "unix://")
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
_BROKER_ERRORS = (OSError, EOFError, redis.RedisError, kombu.exceptions.OperationalError, amqp.exceptions.AMQPError)


class QueueUnreadable(RuntimeError):
    """This queue cannot be read without side effects the monitor will not cause (or not at all)."""


class BrokerUnreachable(RuntimeError):
    """The broker did not answer."""


@dataclass(slots=True)
class QueuePage:
    queue: str
    transport: str
    total: int
    offset: int
    tasks: list[QueuedTask] = field(default_factory=list)
    other: int = 0  # messages on the page that are not Celery tasks
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "transport": self.transport, "total": self.total, "offset": self.offset,
                "tasks": [task.as_dict() for task in self.tasks], "other_messages": self.other, "note": self.note}


@dataclass(slots=True)
class QueueScan:
    """The waiting tasks of one queue that a filter kept; ``complete`` is False when the cap stopped it."""

    queue: str
    total: int = 0
    scanned: int = 0
    matched: list[QueuedTask] = field(default_factory=list)
    complete: bool = True
    error: str | None = None
    cluster: str | None = None  # the cluster whose broker was read (None: the monitor's only one)

    @property
    def shown(self) -> str:
        """The queue as messages name it: with its cluster when it has one."""
        return self.queue if self.cluster in (None, DEFAULT) else f"{self.queue}' of cluster '{self.cluster}"

    def as_dict(self) -> dict[str, Any]:
        answer = {"name": self.queue, "messages": self.total, "scanned": self.scanned, "matched": len(self.matched),
                  "complete": self.complete, "error": self.error}
        return answer if self.cluster is None else {"cluster": self.cluster, **answer}


class QueueMessages:
    def __init__(self, app: Celery, broker_api: str = "") -> None:
        self.app = app
        self.url = broker_url(app)
        self.api = management_url(app, broker_api)
        self._redis: redis.Redis | None = None

    @property
    def transport(self) -> str | None:
        if self.url.startswith(REDIS_SCHEMES):
            return "redis"
        if self.url.startswith(AMQP_SCHEMES):
            return "rabbitmq"
        return None

    @property
    def scan_max(self) -> int:
        return REDIS_SCAN_MAX if self.transport == "redis" else AMQP_SCAN_MAX

    # -- what callers ask ------------------------------------------------------------------------

    def page(self, queue: str, offset: int = 0, limit: int = 50) -> QueuePage:
        """Tasks ``offset`` to ``offset + limit`` in the order workers will take them."""
        limit = max(0, min(limit, PAGE_MAX))
        note = None
        if self.transport == "rabbitmq":
            note = ("Read from RabbitMQ with basic.get and handed back at once: the messages read are now marked "
                    "redelivered.")
            if offset + limit > AMQP_READ_MAX:
                raise QueueUnreadable(f"On RabbitMQ at most the first {AMQP_READ_MAX:,} messages of a queue are "
                                      "read (each must be held while the ones before it are)")
        with self._reading(queue, offset, limit) as (total, envelopes):
            result = QueuePage(queue, self.transport or "", total, offset, note=note)
            for position, envelope in envelopes:
                task = summary(envelope, position)
                if task is None:
                    result.other += 1
                else:
                    result.tasks.append(task)
        return result

    def scan(self, queue: str, keep: Callable[[QueuedTask], bool], cap: int | None = None) -> QueueScan:
        """Every waiting task ``keep`` accepts, up to ``cap`` messages read (only the kept ones are held)."""
        cap = self.scan_max if cap is None else min(cap, self.scan_max)
        result = QueueScan(queue)
        try:
            with self._reading(queue, 0, cap, scan=True) as (total, envelopes):
                result.total = total
                for position, envelope in envelopes:
                    result.scanned += 1
                    task = summary(envelope, position)
                    if task is not None and keep(task):
                        result.matched.append(task)
        except (QueueUnreadable, BrokerUnreachable) as exc:
            result.error, result.complete = str(exc), False
            return result
        result.complete = result.total <= cap
        return result

    def find(self, queue: str, uuid: str, cap: int | None = None) -> Envelope | None:
        """The message of task ``uuid`` if it waits in ``queue`` (within the first ``cap`` messages)."""
        cap = self.scan_max if cap is None else min(cap, self.scan_max)
        with self._reading(queue, 0, cap, scan=True) as (_, envelopes):
            for _, envelope in envelopes:
                if task_id(envelope) == uuid:
                    return envelope
        return None

    # -- reading ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self, queue: str, start: int, count: int, scan: bool = False) -> Iterator[
            tuple[int, Iterator[tuple[int, Envelope]]]]:
        """The queue's length, and its messages ``start`` to ``start + count`` with their positions
        (for a ``scan``, the first ``count`` in no promised order, possibly one twice)."""
        if not queue:
            raise QueueUnreadable("No queue named")
        try:
            if self.transport == "redis":
                messages = self._redis_scan(queue, count) if scan else self._redis_messages(queue, start, count)
                yield self._redis_total(queue), messages
            elif self.transport == "rabbitmq":
                with self._amqp_messages(queue, start, count) as read:
                    yield read
            else:
                scheme = self.url.split(":", 1)[0]
                raise QueueUnreadable(f"Reading queued messages works on Redis and RabbitMQ, not on {scheme}://")
        except _BROKER_ERRORS as exc:
            raise BrokerUnreachable(f"Broker unavailable: {type(exc).__name__}: {exc}") from None

    # Redis

    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        return self._redis

    def _keys(self, queue: str) -> list[str]:
        """The queue's lists in the order kombu's workers pop them (the plain list is priority 0)."""
        prefix = (self.app.conf.broker_transport_options or {}).get("global_keyprefix", "")
        return [f"{prefix}{queue}"] + [f"{prefix}{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]

    def _redis_lengths(self, queue: str) -> list[tuple[str, int]]:
        keys = self._keys(queue)
        pipe = self._client().pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        return list(zip(keys, (int(n) for n in pipe.execute()), strict=True))

    def _redis_total(self, queue: str) -> int:
        return sum(length for _, length in self._redis_lengths(queue))

    def _redis_messages(self, queue: str, start: int, count: int) -> Iterator[tuple[int, Envelope]]:
        """A page: positions counted from each list's right end, where workers pop."""
        client = self._client()
        first = 0  # position in the whole queue of the current list's next-out element
        end = start + count
        for key, length in self._redis_lengths(queue):
            inner, stop = max(0, start - first), min(length, end - first)
            while inner < stop:
                size = min(REDIS_CHUNK, stop - inner)
                chunk = client.lrange(key, -(inner + size), -(inner + 1))
                if not chunk:
                    break  # the list shrank while being read (workers took messages)
                for offset, raw in enumerate(reversed(chunk)):
                    envelope = redis_envelope(raw)
                    if envelope is not None:
                        yield first + inner + offset, envelope
                inner += len(chunk)
            first += length
            if first >= end:
                return

    def _redis_scan(self, queue: str, cap: int) -> Iterator[tuple[int, Envelope]]:
        """The oldest ``cap`` messages (the next out), read by index from the left.

        Indexes from the left do not move when workers pop on the right, so a scan never skips a
        message while workers consume; a message pushed meanwhile shifts them, and then a message
        is read twice (callers keep tasks by id) rather than missed.
        """
        client = self._client()
        first = 0
        left = cap
        for key, length in self._redis_lengths(queue):
            if left <= 0:
                return
            index = max(0, length - left)
            budget = 2 * min(length, left)  # pushes meanwhile cannot make a scan endless
            while budget > 0:
                chunk = client.lrange(key, index, index + min(REDIS_CHUNK, budget) - 1)
                if not chunk:
                    break
                for offset, raw in enumerate(chunk):
                    envelope = redis_envelope(raw)
                    if envelope is not None:
                        yield first + max(0, length - 1 - index - offset), envelope
                index += len(chunk)
                budget -= len(chunk)
            left -= min(length, left)
            first += length

    # RabbitMQ

    def _queue_type(self, queue: str) -> str | None:
        """The queue's type from the management API, or from the app's own queue declarations."""
        for declared in self.app.conf.task_queues or []:
            if getattr(declared, "name", None) == queue:
                kind = (getattr(declared, "queue_arguments", None) or {}).get("x-queue-type")
                if kind:
                    return str(kind)
        if not self.api:
            return None
        api = urlparse(self.api)
        vhost = quote(unquote(urlparse(self.url).path[1:]) or "/", safe="")
        base = api._replace(netloc=(api.hostname or "") + (f":{api.port}" if api.port else "")).geturl()
        try:
            with httpx.Client(auth=(unquote(api.username or "guest"), unquote(api.password or "guest")),
                              timeout=5) as client:
                response = client.get(f"{base}queues/{vhost}/{quote(queue, safe='')}", params={"columns": "type"})
            if response.status_code == 200:
                return str(response.json().get("type") or "") or None
        except (httpx.HTTPError, ValueError) as exc:
            log.debug("management API did not say the type of %s: %s", queue, exc)
        return None

    @contextlib.contextmanager
    def _amqp_messages(self, queue: str, start: int, count: int) -> Iterator[tuple[int, Iterator[tuple[int,
                                                                                                      Envelope]]]]:
        kind = self._queue_type(queue)
        if kind in UNREADABLE_TYPES:
            raise QueueUnreadable(f"'{queue}' is a {kind} queue: reading it would take its messages or count "
                                  "deliveries toward its delivery-limit, so the monitor does not read it")
        count = min(count, AMQP_READ_MAX - start) if start < AMQP_READ_MAX else 0
        with self.app.connection_for_read(connect_timeout=5, transport_options=AMQP_TIMEOUTS) as conn:
            # py-amqp's Channel (this path is RabbitMQ only); kombu types it as the abstract StdChannel.
            channel: Any = conn.channel()
            try:
                _, total, _ = channel.queue_declare(queue=queue, passive=True)
            except amqp.exceptions.NotFound:
                yield 0, iter(())
                return
            except amqp.exceptions.ChannelError as exc:  # a name RabbitMQ refuses, a queue it will not show
                raise QueueUnreadable(f"RabbitMQ refused to look at '{queue}': {exc}") from None
            held: list[int] = []
            try:
                yield total, self._amqp_iterate(channel, queue, start, count, held)
            finally:
                if held:
                    # One frame hands every held message back, in order, without counting a failure.
                    channel.send_method(spec.Basic.Nack, "Lbb", (held[-1], True, True))
                with contextlib.suppress(*_BROKER_ERRORS):
                    channel.close()

    @staticmethod
    def _amqp_iterate(channel: Any, queue: str, start: int, count: int, held: list[int]) -> Iterator[
            tuple[int, Envelope]]:
        for position in range(start + count):
            message = channel.basic_get(queue=queue, no_ack=False)
            if message is None:
                return
            held.append(message.delivery_tag)
            if position >= start:
                yield position, amqp_envelope(message)
