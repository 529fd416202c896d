"""Pick the event reader for the broker's transport.

On Redis the reader runs in a process of its own and writes to a spool (``reader_process.py``)
when a spool directory is given; every other transport is read by a thread of the monitor (the
broker keeps a burst in the monitor's queue, so it is not lost while the applier is busy).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from celery import Celery

from celery_monitor.celery_app import broker_url
from celery_monitor.receiver.base import EventReader
from celery_monitor.receiver.handoff import Handoff, Sink
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.receiver.kombu_reader import KombuEventReader
from celery_monitor.receiver.reader_process import ReaderProcess
from celery_monitor.receiver.redis_reader import RedisEventReader
from celery_monitor.receiver.spool import AHEAD_BYTES, Position

REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://", "socket://", "unix://")
# The transport options the Redis reader uses (the channel names); the rest stay with kombu.
REDIS_OPTIONS = ("fanout_prefix", "global_keyprefix")


def build_reader(app: Celery, handoff: Sink, health: ReceiverHealth, spool: Path | None = None,
                 flushed: Callable[[], Position | None] = lambda: None,
                 buffer_bytes: int = AHEAD_BYTES, shared_queue: str | None = None) -> EventReader | ReaderProcess:
    """``shared_queue``: on RabbitMQ and the other kombu transports, the durable queue that the
    replicas of one history consume in turn, each message acknowledged once ``flushed`` has passed it
    (None: a queue of this monitor's own)."""
    url = broker_url(app)
    exchange = app.conf.event_exchange or "celeryev"
    options = dict(app.conf.broker_transport_options or {})
    if url.startswith(REDIS_SCHEMES):
        ssl_options = app.conf.broker_use_ssl if isinstance(app.conf.broker_use_ssl, dict) else None
        if spool is None:
            return RedisEventReader(url, handoff, health, exchange, options, ssl_options)
        config = {"url": url, "exchange": exchange, "ssl_options": ssl_options,
                  "transport_options": {k: options[k] for k in REDIS_OPTIONS if k in options}}
        if not isinstance(handoff, Handoff):  # the spool's tailer waits on the hand-off itself
            raise TypeError("a spooled reader feeds the hand-off (not with --clusters)")
        return ReaderProcess(config, spool, handoff, health, flushed, buffer_bytes)
    return KombuEventReader(url, handoff, health, exchange, options, app.conf.broker_use_ssl,
                            shared_queue=shared_queue, flushed=flushed)


def build_standby_reader(app: Celery, sink: Sink, health: ReceiverHealth) -> RedisEventReader | None:
    """On Redis, the subscriber a standby replica keeps the recent stream with (``standby_buffer``);
    None on other transports, whose durable shared queue keeps what the leader has not acknowledged."""
    url = broker_url(app)
    if not url.startswith(REDIS_SCHEMES):
        return None
    options = dict(app.conf.broker_transport_options or {})
    ssl_options = app.conf.broker_use_ssl if isinstance(app.conf.broker_use_ssl, dict) else None
    return RedisEventReader(url, sink, health, app.conf.event_exchange or "celeryev", options, ssl_options)
