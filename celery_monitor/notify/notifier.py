"""The notifier: evaluates the rules and delivers the messages, in a supervised thread of its own.

It takes the applier's task notices from their bounded queue, looks at the workers' liveness and
the queue poller's measurements once a second, and sends what the evaluator says is due on every
channel of the rule, each delivery retried with a backoff (1 s doubling up to a minute, five
attempts; a refusal that cannot change, like a 404, is not retried) and logged in the ledger.
Deliveries wait in a bounded list: beyond it the newest are dropped, logged and counted. A slow
channel delays the next messages, never the events: the applier only ever puts notices in a queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from celery_monitor.broker.poller import QueuePoller
from celery_monitor.notify import channels
from celery_monitor.notify.evaluate import Evaluator
from celery_monitor.notify.ledger import Ledger
from celery_monitor.notify.messages import TEST, Links, Message
from celery_monitor.notify.model import (
    BadConfig,
    Channel,
    FromConfigFile,
    NotifyConfig,
    Rule,
    parse_channel,
    parse_rule,
)
from celery_monitor.notify.notices import STATES_OF_KIND, NoticeQueue
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.state.live import LiveView
from celery_monitor.supervision import Loop, ThrottledLog

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
MAX_PENDING = 1000
CONDITIONS_EVERY = 1.0


@dataclass
class Delivery:
    row_id: int
    message: Message
    channel: str
    attempts: int = 0
    next_at: float = 0.0


class Notifier(threading.Thread):
    def __init__(self, config: NotifyConfig, ledger: Ledger, links: Links, live: LiveView, health: ReceiverHealth,
                 queues: QueuePoller, first_backoff: float = FIRST_BACKOFF,
                 schedule_entries: Callable[[], list[dict[str, Any]]] = list) -> None:
        super().__init__(name="notifier", daemon=True)
        self.file_config = config
        self.ledger = ledger
        self.links = links
        self.live = live
        self.health = health
        self.queues = queues
        self.schedule_entries = schedule_entries  # the schedules page's entries, with their missed flags
        self.first_backoff = first_backoff
        self.notices = NoticeQueue()
        self.evaluator = Evaluator(links)
        self.loop = Loop("notifier", stall_after=300.0)
        self.pending: list[Delivery] = []
        self.deliveries_dropped = 0
        self.sent: dict[tuple[str, str], int] = {}  # (channel kind, outcome) -> messages
        self._counts_lock = threading.Lock()  # the thread and the API's tests both count
        self._lock = threading.Lock()  # the API's changes against the thread's reads of the config
        self._stop_event = threading.Event()
        self._next_conditions = 0.0
        self._ledger_log = ThrottledLog(log)
        self._client = httpx.Client()
        self.config = config
        self.reload()

    # -- configuration -------------------------------------------------------------------------

    def reload(self) -> None:
        """The config file's rules and channels, with those added through the API beside them."""
        channels_ = dict(self.file_config.channels)
        rules = dict(self.file_config.rules)
        saved = self.ledger.settings()
        for kind, name, body in saved:
            if kind == "channel" and name not in channels_:
                try:
                    channels_[name] = parse_channel(name, body, source="api")
                except BadConfig as exc:
                    log.warning("notification channel %s saved through the API is ignored: %s", name, exc)
        for kind, name, body in saved:
            if kind == "rule" and name not in rules:
                try:
                    rules[name] = parse_rule(name, body, channels_, source="api")
                except BadConfig as exc:
                    log.warning("notification rule %s saved through the API is ignored: %s", name, exc)
        self._use(NotifyConfig(channels_, rules))

    def _use(self, config: NotifyConfig) -> None:
        with self._lock:
            self.config = config
            self.evaluator.forget(set(config.rules))
        wanted: frozenset[str] = frozenset()
        for rule in config.rules.values():
            if rule.enabled:
                wanted |= STATES_OF_KIND.get(rule.kind, frozenset())
        self.notices.states = wanted

    def _editable(self, kind: str, name: str) -> None:
        found = (self.config.channels if kind == "channel" else self.config.rules).get(name)
        if found is not None and found.source == "config":
            raise FromConfigFile(f"{kind} {name!r} comes from the config file: change it there")

    def put_channel(self, name: str, body: dict[str, Any]) -> Channel:
        self._editable("channel", name)
        channel = parse_channel(name, body, source="api")
        self.ledger.save("channel", name, body)
        self.reload()
        return channel

    def put_rule(self, name: str, body: dict[str, Any]) -> Rule:
        self._editable("rule", name)
        rule = parse_rule(name, body, self.config.channels, source="api")
        self.ledger.save("rule", name, body)
        self.reload()
        return rule

    def delete(self, kind: str, name: str) -> bool:
        self._editable(kind, name)
        if kind == "channel":
            users = sorted(r.name for r in self.config.rules.values() if name in r.channels)
            if users:
                raise BadConfig(f"channel {name!r} is used by rule {users[0]!r}")
        known = name in (self.config.channels if kind == "channel" else self.config.rules)
        self.ledger.delete(kind, name)
        self.reload()
        return known

    # -- the thread ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        self.loop.run(self.step, self._stop_event, interval=0)
        self._client.close()

    def step(self) -> None:
        now = time.time()
        with self._lock:
            wake = min(self.evaluator.next_due(), min((d.next_at for d in self.pending), default=now + 0.5))
        notices = self.notices.take(timeout=min(0.5, max(0.0, wake - now)))
        self.loop.beat()
        now = time.time()
        with self._lock:
            rules = [rule for rule in self.config.rules.values() if rule.enabled]
            evaluator = self.evaluator
            if notices:
                evaluator.tasks(rules, notices)
            if now >= self._next_conditions:
                self._next_conditions = now + CONDITIONS_EVERY
                kinds = {rule.kind for rule in rules}
                # Silence is only heard while the event stream is up: no worker is judged offline
                # (nor back) while the monitor itself cannot hear them.
                health = self.health
                if "worker_offline" in kinds and health.connected and health.connected_since is not None:
                    evaluator.workers(rules, self.live.worker_dicts(now), now, health.connected_since)
                if kinds & {"queue_length", "queue_age"}:
                    evaluator.queues(rules, list(self.queues.latest), now)
                if "schedule_missed" in kinds:
                    evaluator.schedules(rules, self.schedule_entries(), now)
            due = evaluator.due(now)
        for message in due:
            self.enqueue(message)
        self.deliver_due(time.time())

    # -- delivering ----------------------------------------------------------------------------

    def enqueue(self, message: Message) -> None:
        rule = self.config.rules.get(message.rule)
        for channel in rule.channels if rule is not None else ():
            row_id = self._logged(self.ledger.add, message.id, message.rule, channel, message.status, message.title)
            if len(self.pending) >= MAX_PENDING:
                self.deliveries_dropped += 1
                found = self.config.channels.get(channel)
                self._count(found.kind if found is not None else "unknown", "dropped")
                self._logged(self.ledger.update, row_id, "dropped", 0, "too many deliveries waiting")
                log.warning("notification %s on channel %s dropped: %d deliveries are waiting", message.rule,
                            channel, len(self.pending))
                continue
            self.pending.append(Delivery(row_id, message, channel))

    def deliver_due(self, now: float) -> None:
        for delivery in [d for d in self.pending if d.next_at <= now]:
            if self._stop_event.is_set():
                return
            self.pending.remove(delivery)
            self._attempt(delivery)
            self.loop.beat()

    def _attempt(self, delivery: Delivery) -> None:
        channel = self.config.channels.get(delivery.channel)
        delivery.attempts += 1
        if channel is None:
            self._logged(self.ledger.update, delivery.row_id, "failed", delivery.attempts, "the channel was removed")
            return
        error = self._send(channel, delivery.message)
        if error is None:
            self._logged(self.ledger.update, delivery.row_id, "delivered", delivery.attempts, None)
            return
        if error.permanent or delivery.attempts >= MAX_ATTEMPTS:
            self._logged(self.ledger.update, delivery.row_id, "failed", delivery.attempts, error.reason)
            log.warning("notification %s on channel %s failed after %d attempt(s): %s", delivery.message.rule,
                        channel.name, delivery.attempts, error.reason)
            return
        backoff = min(MAX_BACKOFF, self.first_backoff * 2 ** (delivery.attempts - 1))
        delivery.next_at = time.time() + backoff
        self._logged(self.ledger.update, delivery.row_id, "retrying", delivery.attempts, error.reason)
        self.pending.append(delivery)

    def _logged(self, write: Callable[..., Any], *args: Any) -> Any:
        """A write to the delivery log; when the database refuses it, the message is delivered anyway."""
        try:
            result = write(*args)
        except Exception as exc:  # the disk or the database: sqlite3 and psycopg errors alike
            self._ledger_log.failure(type(exc).__name__, "the notification delivery log cannot be written: "
                                     f"{self.ledger.describe(exc)}")
            return -1
        self._ledger_log.recovered("the notification delivery log is written again")
        return result

    def _send(self, channel: Channel, message: Message) -> channels.DeliveryError | None:
        try:
            channels.send(self._client, channel, message)
        except channels.DeliveryError as exc:
            self._count(channel.kind, "failed")
            return exc
        self._count(channel.kind, "delivered")
        return None

    def _count(self, kind: str, outcome: str) -> None:
        key = (kind, outcome)
        with self._counts_lock:
            self.sent[key] = self.sent.get(key, 0) + 1

    def counts(self) -> list[tuple[tuple[str, str], int]]:
        """Attempts by (channel kind, outcome), for /metrics."""
        with self._counts_lock:
            return sorted(self.sent.items())

    def send_test(self, name: str, user: str) -> dict[str, Any]:
        """One message on one channel now, without retries (the admin is watching): its outcome."""
        channel = self.config.channels.get(name)
        if channel is None:
            raise KeyError(name)
        message = Message("test", "test", "info", TEST, name,
                          f"Test notification from the Celery Monitor, sent by {user}", links=self.links.page())
        row_id = self.ledger.add(message.id, "(test)", name, TEST, message.title)
        error = self._send(channel, message)
        reason = None if error is None else error.reason
        self._logged(self.ledger.update, row_id, "delivered" if error is None else "failed", 1, reason)
        return {"channel": name, "delivered": error is None, "error": reason}

    def as_dict(self, shown: Callable[[Channel], dict[str, Any]] = Channel.shown) -> dict[str, Any]:
        config = self.config
        return {"channels": [shown(c) for c in config.channels.values()],
                "rules": [r.shown() for r in config.rules.values()],
                "pending": len(self.pending), "notices_dropped": self.notices.dropped,
                "deliveries_dropped": self.deliveries_dropped}

