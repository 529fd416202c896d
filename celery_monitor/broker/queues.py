"""Queue lengths straight from the broker: Redis lists (priority sub-lists summed) or RabbitMQ's
management API (falling back to a passive declare over AMQP when no management API answers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, urlparse

import httpx
import orjson
import redis
from celery import Celery
from kombu import Connection

from celery_monitor.broker.envelopes import Envelope, redis_envelope, task_id
from celery_monitor.celery_app import broker_url
from celery_monitor.state.stats import eta_time

log = logging.getLogger(__name__)
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = range(1, 10)


class BrokerUnavailable(RuntimeError):
    pass


def queue_names(app: Celery, active_queues: list[str]) -> list[str]:
    names = {app.conf.task_default_queue or "celery"}
    for queue in app.conf.task_queues or []:
        names.add(queue.name if hasattr(queue, "name") else str(queue))
    names.update(active_queues)
    return sorted(n for n in names if n)


def management_url(app: Celery, broker_api: str) -> str | None:
    if broker_api:
        return broker_api.rstrip("/") + "/"
    url = urlparse(broker_url(app))
    if url.scheme not in ("amqp", "amqps", "pyamqp"):
        return None
    user = quote(unquote(url.username or "guest"), safe="")
    password = quote(unquote(url.password or "guest"), safe="")
    scheme = "https" if url.scheme == "amqps" else "http"
    return f"{scheme}://{user}:{password}@{url.hostname or 'localhost'}:15672/api/"


def oldest_message_timestamp(queue: dict[str, Any]) -> float | None:
    """When the message at the head of a RabbitMQ queue was published, if the broker can tell.

    RabbitMQ reports ``head_message_timestamp`` only from the AMQP ``timestamp`` property, and
    Celery does not set that property (publish with ``timestamp=int(time.time())`` to get it).
    Without it the age is unknown, and unknown is not zero: nothing is reported.
    """
    value = queue.get("head_message_timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


SentAt = Callable[[str], float | None]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def waiting_since(envelope: Envelope, properties: dict[str, Any], sent_at: SentAt) -> float | None:
    """Since when a message on a Redis list has waited, if anything tells.

    Neither Celery nor kombu stamps a message with its publishing time on Redis; a publisher may
    (a ``timestamp`` property, as RabbitMQ reads it, or header). Otherwise the history's ``sent``
    time of the task it carries (its ``task-sent`` event) says it. A later ETA is when it started
    waiting to run. Unknown is not zero: None.
    """
    since = _number(properties.get("timestamp")) or _number(envelope.headers.get("timestamp"))
    uuid = task_id(envelope)
    if since is None and uuid:
        since = sent_at(uuid)
    eta = envelope.headers.get("eta")
    if isinstance(eta, str) and since is not None:
        at = eta_time(eta)
        if at is not None:
            since = max(since, at)
    return since


def _properties(raw: Any) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    props = data.get("properties") if isinstance(data, dict) else None
    return props if isinstance(props, dict) else {}


class QueueLengths:
    def __init__(self, app: Celery, broker_api: str = "", sent_at: SentAt | None = None) -> None:
        self.app = app
        self.sent_at: SentAt = sent_at or (lambda _uuid: None)
        self.url = broker_url(app)
        self.api = management_url(app, broker_api)
        self._redis: redis.Redis | None = None

    def lengths(self, names: list[str]) -> list[dict[str, Any]]:
        """One dict per queue: name, messages, and (where the broker tells) ready, unacked,
        consumers and oldest_message_timestamp; on RabbitMQ's management API, also every field
        it gives, under its own names (messages_ready, messages_unacknowledged...), as Flower answers.
        """
        if self.url.startswith(("redis://", "rediss://", "redis+socket://", "unix://")):
            return self._redis_lengths(names)
        if self.api:
            try:
                return self._management_lengths(names)
            except (httpx.HTTPError, ValueError) as exc:
                log.debug("management API unavailable (%s); using AMQP", exc)
        return self._amqp_lengths(names)

    def _redis_client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        return self._redis

    def _redis_lengths(self, names: list[str]) -> list[dict[str, Any]]:
        """Each queue's length (its priority sub-lists summed) and, when it tells, since when its
        oldest message waits: the next out of each sub-list is its last element (``LINDEX -1``)."""
        prefix = (self.app.conf.broker_transport_options or {}).get("global_keyprefix", "")
        keys = [[f"{prefix}{name}", *(f"{prefix}{name}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS)]
                for name in names]
        try:
            pipe = self._redis_client().pipeline(transaction=False)
            for queue_keys in keys:
                for key in queue_keys:
                    pipe.llen(key)
                    pipe.lindex(key, -1)
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"redis: {exc}") from None
        out = []
        position = 0
        for name, queue_keys in zip(names, keys, strict=True):
            messages = 0
            oldest: float | None = None
            for _ in queue_keys:
                length, tail = replies[position], replies[position + 1]
                position += 2
                messages += int(length)
                envelope = redis_envelope(tail) if tail else None
                if envelope is None:
                    continue
                since = waiting_since(envelope, _properties(tail), self.sent_at)
                if since is not None and (oldest is None or since < oldest):
                    oldest = since
            entry: dict[str, Any] = {"name": name, "messages": messages}
            if oldest is not None and messages:
                entry["oldest_message_timestamp"] = oldest
            out.append(entry)
        return out

    def _management_lengths(self, names: list[str]) -> list[dict[str, Any]]:
        assert self.api is not None
        url = urlparse(self.api)
        vhost = quote(unquote(urlparse(self.url).path.lstrip("/")) or "/", safe="")
        auth = (unquote(url.username or "guest"), unquote(url.password or "guest"))
        base = url._replace(netloc=(url.hostname or "") + (f":{url.port}" if url.port else "")).geturl()
        with httpx.Client(auth=auth, timeout=5) as client:
            response = client.get(f"{base}queues/{vhost}")
            response.raise_for_status()
            found = {q["name"]: q for q in response.json() if isinstance(q, dict) and "name" in q}
        out = []
        for name in names:
            # The management API's own fields, named as it names them (Flower answers with these),
            # and the short names the pages and the metrics use.
            queue = found.get(name) or {"name": name, "messages": 0, "messages_ready": 0,
                                        "messages_unacknowledged": 0, "consumers": 0}
            entry = {**queue, "name": name, "messages": int(queue.get("messages") or 0),
                     "ready": int(queue.get("messages_ready") or 0),
                     "unacked": int(queue.get("messages_unacknowledged") or 0),
                     "consumers": int(queue.get("consumers") or 0)}
            oldest = oldest_message_timestamp(queue)
            if oldest is not None and entry["ready"]:
                entry["oldest_message_timestamp"] = oldest
            out.append(entry)
        return out

    def _amqp_lengths(self, names: list[str]) -> list[dict[str, Any]]:
        out = []
        try:
            with Connection(self.url, connect_timeout=5) as conn:
                # py-amqp's Channel (this path is RabbitMQ only); kombu types it as the abstract StdChannel.
                channel: Any = conn.channel()
                for name in names:
                    try:
                        _, messages, consumers = channel.queue_declare(queue=name, passive=True)
                    except Exception:  # the queue does not exist (yet): it holds nothing
                        channel = conn.channel()
                        messages, consumers = 0, 0
                    out.append({"name": name, "messages": messages, "messages_ready": messages, "ready": messages,
                                "consumers": consumers})
        except OSError as exc:
            raise BrokerUnavailable(f"broker: {exc}") from None
        return out
