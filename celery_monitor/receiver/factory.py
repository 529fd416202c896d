"""Pick the event reader for the broker's transport."""

from __future__ import annotations

from celery import Celery

from celery_monitor.celery_app import broker_url
from celery_monitor.receiver.base import EventReader
from celery_monitor.receiver.handoff import Handoff
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.receiver.kombu_reader import KombuEventReader
from celery_monitor.receiver.redis_reader import RedisEventReader

REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://", "socket://", "unix://")


def build_reader(app: Celery, handoff: Handoff, health: ReceiverHealth) -> EventReader:
    url = broker_url(app)
    exchange = app.conf.event_exchange or "celeryev"
    options = dict(app.conf.broker_transport_options or {})
    if url.startswith(REDIS_SCHEMES):
        ssl_options = app.conf.broker_use_ssl if isinstance(app.conf.broker_use_ssl, dict) else None
        return RedisEventReader(url, handoff, health, exchange, options, ssl_options)
    return KombuEventReader(url, handoff, health, exchange, options, app.conf.broker_use_ssl)
