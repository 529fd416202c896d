"""The composition root: builds every part of the monitor, wires them together, starts and stops them.

receiver -> applier -> live view / store writer / hub, and beside them the readers the API and the
pages use (task lookup, inspector, queue poller, control plane, metrics, timeline). The web app
(:mod:`celery_monitor.app`) only serves what this builds: redaction, the history and every
background loop hold whether or not a web app exists.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from celery import Celery

from celery_monitor import __version__, clusters
from celery_monitor.applier.applier import Applier
from celery_monitor.applier.boundary import EventBoundary, Rejections
from celery_monitor.auth import wiring as auth_wiring
from celery_monitor.auth.config import AuthConfig
from celery_monitor.broker import backlog, faults
from celery_monitor.broker.poller import QueuePoller
from celery_monitor.broker.queues import QueueLengths, queue_names
from celery_monitor.celery_app import ClusterApps, cluster_app, shown_broker
from celery_monitor.control.audit import AuditTrail
from celery_monitor.control.plane import ControlPlane
from celery_monitor.hub import Hub
from celery_monitor.inspector.inspector import Inspector
from celery_monitor.liveness import Liveness
from celery_monitor.metrics.cardinality import LabelPolicy
from celery_monitor.metrics.collector import MonitorCollector, Sources
from celery_monitor.metrics.queue_metrics import by_cluster, current_queues
from celery_monitor.metrics.timeline import Timeline, narrow
from celery_monitor.notify.ledger import Ledger
from celery_monitor.notify.messages import Links
from celery_monitor.notify.model import parse_config
from celery_monitor.notify.notifier import Notifier
from celery_monitor.receiver.base import EventReader
from celery_monitor.receiver.factory import build_reader, build_standby_reader
from celery_monitor.receiver.handoff import HANDOFF_BYTES, ClusterSink, Handoff, Sink
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.receiver.reader_process import ReaderProcess
from celery_monitor.receiver.standby_buffer import StandbyBuffer
from celery_monitor.reconciler import backend as result_backend
from celery_monitor.reconciler.late_start import LateStart
from celery_monitor.reconciler.reconciler import Reconciler
from celery_monitor.schedules.catalog import BeatOf, ScheduleConfig, Schedules
from celery_monitor.settings import Settings
from celery_monitor.state.histogram import DEFAULT_BUCKETS
from celery_monitor.state.live import LiveView
from celery_monitor.state.models import WorkerRecord
from celery_monitor.state.stats import EventStats
from celery_monitor.store import dsn, meta_keys, overlay, target
from celery_monitor.store.lookup import TaskLookup
from celery_monitor.store.query import Cursor, TaskQuery
from celery_monitor.store.writer import SPOOL_POSITION, StoreWriter
from celery_monitor.supervision import Loop, Supervisor

if TYPE_CHECKING:  # imported when the history is PostgreSQL's: psycopg alone is 12 MB resident
    from celery_monitor.store.postgres import PostgresStore
    from celery_monitor.store.replica import Replica

log = logging.getLogger(__name__)
ENABLE_EVENTS_EVERY = 10.0
AUTH_EXCHANGE_EVERY = 1.0


def _cluster_names(saved: Any) -> dict[str, list[str]]:
    """The task names per cluster the history saved, what of them is readable (older histories: none)."""
    if not isinstance(saved, dict):
        return {}
    return {str(cluster): [n for n in names if isinstance(n, str)]
            for cluster, names in saved.items() if isinstance(names, list)}


def spool_directory(db: str) -> Path:
    """Beside a SQLite history; for a PostgreSQL one (one monitor per database), a local directory
    named after the database, so a restart on the same host finds it."""
    if dsn.is_postgres(db):
        digest = hashlib.sha256(db.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir(), f"celery-monitor-spool-{digest}")
    return Path(f"{db}-spool")


@dataclass
class ClusterFeed:
    """One more cluster's stream (``--clusters``): its app, its reader and its reader's health.

    The first cluster is the monitor's app, reader and health as with one broker; each other one
    reads into the shared hand-off through a sink that marks its batches, so a slow or absent broker
    only holds up its own reader.
    """

    name: str
    app: Celery
    health: ReceiverHealth
    reader: EventReader | ReaderProcess
    where: str


@dataclass
class StandbyStream:
    """What a standby replica keeps of one cluster's Redis stream, and the health of the reader that
    takes over from it once this replica leads."""

    cluster: str
    buffer: StandbyBuffer
    reader: EventReader
    health: ReceiverHealth


class Monitor:
    def __init__(self, settings: Settings, app: Celery) -> None:
        self.settings = settings
        specs = clusters.parse_clusters(settings.clusters)
        self.cluster = specs[0].name if specs else clusters.DEFAULT  # the first (or only) cluster's name
        if specs:
            app = cluster_app(app, specs[0].broker, specs[0].result_backend)
        broker_api = specs[0].broker_api if specs else settings.broker_api
        self.app = app
        self.health = ReceiverHealth()
        self.rejections = Rejections()
        # Room for what the spool's tailer lets wait in memory (--event_buffer_mb) and one more read.
        self.handoff = Handoff(max(HANDOFF_BYTES, (settings.event_buffer_mb + 16) * 1024 * 1024))
        self.store = target.open_store(settings.db if settings.persistent else None, standby=settings.standby)
        self.postgres: PostgresStore | None = target.postgres_of(self.store)
        buckets = tuple(settings.task_runtime_metric_buckets) or DEFAULT_BUCKETS
        self.live = LiveView(EventStats(buckets))
        self.hub = Hub()
        # Each cluster's app, the first one's being ``app``: inspect and control reach every cluster.
        self.apps = ClusterApps({self.cluster: app, **{spec.name: cluster_app(app, spec.broker, spec.result_backend)
                                                       for spec in specs[1:]}})
        self.inspector = Inspector(self.apps, settings.inspect_timeout / 1000)
        self.writer = StoreWriter(self.store, settings.flush_interval, settings.max_tasks,
                                  snapshot_meta=self._meta_to_save,
                                  on_trim=lambda removed: self.live.forget_trimmed(removed, removed.of_clusters),
                                  path=settings.db if settings.persistent else None,
                                  max_failed_tasks=settings.max_failed_tasks,
                                  max_task_age=settings.max_task_age)
        self.tasks = TaskLookup(self.live, self.writer, self.store)
        # --redact and --format_task hold for the history and every reader, with or without a web app.
        self.redactor = auth_wiring.redactor(settings)
        # Each cluster's queues are read from its own broker (and its own management API).
        self.queues = QueueLengths(app, broker_api, sent_at=self._sent_at)
        self.cluster_queues = {self.cluster: self.queues,
                               **{spec.name: QueueLengths(self.apps.apps[spec.name], spec.broker_api,
                                                          sent_at=self._sent_at) for spec in specs[1:]}}
        self.queue_poller = QueuePoller(self.cluster_queues, self.queue_names)
        # Notifications: the applier queues task notices, the notifier's own thread does the rest.
        self.notifier = Notifier(parse_config(settings.notifications),
                                 Ledger(settings.db if settings.persistent else None),
                                 Links(settings.public_url), self.live, self.health, self.queue_poller,
                                 schedule_entries=lambda: self.schedules.listing()["entries"])
        self.applier = Applier(self.handoff, self.live, self.store, self.writer, self.health, self.hub,
                               boundary=EventBoundary(settings.event_text_limit, self.rejections),
                               max_workers=settings.max_workers,
                               purge_offline_workers=settings.purge_offline_workers,
                               on_worker_online=self._worker_came_online,
                               redactor=self.redactor, tasks=self.tasks, notices=self.notifier.notices)
        # With --event_spool, on Redis the reader is a process of its own writing to a spool beside
        # the history (a directory of its own when the history is in memory), tailed into the hand-off.
        self.spool: Path | None = None
        self._spool_temp: Path | None = None  # removed at stop: nothing replays a memory-only history
        if settings.event_spool and settings.persistent:
            self.spool = spool_directory(settings.db)
        elif settings.event_spool:
            self.spool = self._spool_temp = Path(tempfile.gettempdir(), f"celery-monitor-spool-{uuid.uuid4().hex}")
        # Replicas of one PostgreSQL history share a durable queue on RabbitMQ: what is published
        # while one takes over from another waits there (docs/postgresql.md).
        shared_queue: str | None = None
        if self.postgres is not None:
            from celery_monitor.store.replica import history_id

            shared_queue = f"celery-monitor.{history_id(settings.db)}"
        self.reader = build_reader(app, self._sink_of(self.cluster), self.health, self.spool,
                                   lambda: self.writer.saved_position, settings.event_buffer_mb * 1024 * 1024,
                                   shared_queue=shared_queue)
        self.applier.cluster_health[self.cluster] = self.health
        self.feeds: list[ClusterFeed] = []
        for spec in specs[1:]:
            feed_app = self.apps.apps[spec.name]
            feed_health = ReceiverHealth()
            reader = build_reader(feed_app, self._sink_of(spec.name), feed_health,
                                  flushed=lambda: self.writer.saved_position,
                                  shared_queue=f"{shared_queue}.{spec.name}" if shared_queue else None)
            for loop in reader.loops:  # one loop per cluster in the status and the metrics
                loop.name = f"{loop.name}_{spec.name}"
            self.applier.cluster_health[spec.name] = feed_health
            self.feeds.append(ClusterFeed(spec.name, feed_app, feed_health, reader,
                                          shown_broker(feed_app)))
        self.writer.saves_position = self.spool is not None
        self.audit = AuditTrail(self.store)
        # Pages show the audit trail live: each entry goes out on the hub as it is recorded.
        self.audit.listeners.append(lambda entry: self.hub.publish([{"kind": "audit", "audit": entry}]))
        self.control = ControlPlane(app, inspector=self.inspector, live=self.live, tasks=self.tasks,
                                    queue_names=self.queue_names, redactor=self.redactor,
                                    reply_timeout=settings.inspect_timeout / 1000, broker_api=broker_api,
                                    apps=self.apps, broker_apis={spec.name: spec.broker_api for spec in specs})
        # The graphs' points are saved with the history: they outlive a restart, and a standby
        # replica draws the leader's.
        self.timeline = Timeline(self.live, self.hub, self.queue_poller, leading=lambda: self.leading,
                                 load_saved=self.store.load_meta if settings.persistent else None)
        # Periodic tasks: every beat entry the monitor can see, its runs and its missed runs.
        beats = [BeatOf(spec.name, self.apps.apps[spec.name], spec.beat_db, spec.redbeat_url) for spec in specs]
        self.schedules = Schedules(app, ScheduleConfig(settings.beat_db, settings.redbeat_url,
                                                       settings.redbeat_key_prefix, settings.schedule_tolerance),
                                   self.tasks.page, self.redactor, time.time(), beats=beats or None)
        # Task truth: final states missed as events come from the result backend (when there is one
        # to read), tasks already running when the monitor starts from inspect replies.
        self.reconciler: Reconciler | None = None
        self.reconcile_off = result_backend.unusable(app)
        if self.reconcile_off is None:
            self.reconciler = Reconciler(result_backend.ResultReader(app), self.tasks, self.health,
                                         self.applier.submit, clusters=[self.cluster] if self.feeds else None)
        # Each other cluster's tasks are settled from its own result backend.
        self.feed_reconcilers: dict[str, Reconciler] = {}
        for feed in self.feeds:
            if result_backend.unusable(feed.app) is None:
                reconciler = Reconciler(result_backend.ResultReader(feed.app), self.tasks, feed.health,
                                        self.applier.submit, clusters=[feed.name])
                reconciler.loop.name = f"{reconciler.loop.name}_{feed.name}"
                self.feed_reconcilers[feed.name] = reconciler
        if self.reconcilers:
            self.applier.on_lost = self._ask_soon
        self.late_start = LateStart(self.applier.submit, self.inspector.loop)
        # Replicas share the leader's inspect replies (saved with its flushes) rather than each asking.
        self._instance = uuid.uuid4().hex[:12]
        self._inspect_saved = 0
        self._inspect_adopted: Any = None
        self.replica: Replica | None = None
        self.standby_streams: list[StandbyStream] = []
        if self.postgres is not None:
            from celery_monitor.store.replica import Replica

            self.replica = Replica(self.postgres, self.hub, self.refresh_from_history, self._take_over)
            # On Redis a standby keeps the last seconds of each cluster's stream, for the moment it takes over.
            for name, feed_app, health in ((self.cluster, app, self.health),
                                            *((feed.name, feed.app, feed.health) for feed in self.feeds)):
                buffer = StandbyBuffer()
                kept_by = build_standby_reader(feed_app, buffer, ReceiverHealth())
                if kept_by is not None:
                    self.standby_streams.append(StandbyStream(name, buffer, kept_by, health))
        self._stop_event = threading.Event()
        self._auth: AuthConfig | None = None
        self._auth_exchanger = threading.Thread(target=self._exchange_auth, name="auth-exchange", daemon=True)
        self.auth_loop = Loop("auth_exchange")
        self._events_enabler = threading.Thread(target=self._enable_events, name="enable-events", daemon=True)
        self.enable_events_loop = Loop("enable_events", stall_after=ENABLE_EVENTS_EVERY + 120)
        # Every background loop, for the status, the metrics and the liveness probe.
        self.supervisor = Supervisor()
        self.supervisor.add(*self.reader.loops, *(loop for feed in self.feeds for loop in feed.reader.loops),
                            self.applier.loop, self.applier.housekeeping_loop, self.writer.loop,
                            self.writer.index_loop, self.inspector.loop, self.queue_poller.loop,
                            self.enable_events_loop, self.timeline.loop, self.schedules.loop,
                            self.notifier.loop)
        self.supervisor.add(*(reconciler.loop for reconciler in self.reconcilers))
        if self.replica is not None:
            self.supervisor.add(self.replica.loop, self.auth_loop)
        self.running = False  # between a completed start() and the beginning of stop(): readiness
        self.liveness = Liveness(self.supervisor, self.health, self.writer, lambda: self.running,
                                 deposed=lambda: self.replica is not None and self.replica.deposed)
        self.metrics = MonitorCollector(
            Sources(live=self.live, inspector=self.inspector, queues=self.queue_poller, receiver=self.health,
                    rejections=self.rejections, applier=self.applier, store=self.store, writer=self.writer,
                    supervisor=self.supervisor, liveness=self.liveness, schedules=self.schedules,
                    notifier=self.notifier, leading=lambda: self.leading,
                    clusters=lambda: {self.cluster: self.health, **{feed.name: feed.health for feed in self.feeds}}),
            LabelPolicy(settings.metrics_worker_label, settings.metrics_max_task_names))
        self.started_at = time.time()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        """Whether this monitor ingests (always, but for a standby replica of a PostgreSQL history)."""
        return self.replica is None or self.replica.leading

    def share_auth(self, auth: AuthConfig) -> None:
        """Sign-outs and failed logins count on every replica of a PostgreSQL history (exchanged
        through it every second); a SQLite history has one monitor, which keeps them in memory."""
        if self.postgres is not None and auth.has_login:
            self._auth = auth
            auth.share()

    def exchange_auth(self) -> None:
        """One exchange of sign-outs and failed logins with the other replicas."""
        if self._auth is None or self.postgres is None:
            return
        revoked, failures = self._auth.take_new()
        try:
            in_force, recent = self.postgres.exchange_auth(revoked, failures, self._auth.failures.window)
        except Exception:
            self._auth.revoked_new.update(revoked)  # handed over at the next exchange
            raise
        self._auth.merge(in_force, recent)

    def _exchange_auth(self) -> None:
        self.auth_loop.run(self.exchange_auth, self._stop_event, AUTH_EXCHANGE_EVERY)

    def _meta_to_save(self) -> dict[str, Any]:
        """What the writer saves beside the tasks with each flush: the counters, the graphs' new points
        and, for standby replicas, the inspect cache once it changed."""
        return {**self.live.counters_to_save(), **self.timeline.points_to_save(), **self._inspect_to_save()}

    def _inspect_to_save(self) -> dict[str, Any]:
        version = self.inspector.version
        if self.replica is None or version == self._inspect_saved:
            return {}
        self._inspect_saved = version
        # The version names this process too: a new leader starts counting from zero again.
        return {meta_keys.INSPECT: self.inspector.export(), meta_keys.INSPECT_VERSION: f"{self._instance}.{version}"}

    def _adopt_inspect(self) -> None:
        """A standby answers with the leader's inspect replies, read again only when they changed."""
        version = self.store.load_meta(meta_keys.INSPECT_VERSION)
        if version is None or version == self._inspect_adopted:
            return
        if self.inspector.adopt(self.store.load_meta(meta_keys.INSPECT)):
            self._inspect_adopted = version

    def restore(self, saved_counts: bool = False) -> None:
        """Reload workers, counters and task counts saved by the previous run (``saved_counts``: the
        state counts its last flush saved, rather than counted afresh over the whole history)."""
        counts = self.store.load_meta("state_counts") if saved_counts else None
        self._load_live_view(counts if isinstance(counts, dict) else self.store.state_counts(),
                             fresh_counts=not isinstance(counts, dict))
        # What was spooled after the last flush of the previous run is applied again, once.
        self.reader.resume(self.store.load_meta(SPOOL_POSITION))

    def refresh_from_history(self) -> None:
        """A standby's live view, as the leader saved it with its last flush.

        Without the per-event counters: a standby exports none of them (the leader alone does), and
        reloading them every second cost it about 27 ms of CPU and a read of the whole `stats` row
        (635 KB for the bench's 40 workers and 30 task names). It loads them when it takes over."""
        counts = self.store.load_meta("state_counts")
        self._load_live_view(counts if isinstance(counts, dict) else self.store.state_counts(), standby=True)
        self._adopt_inspect()

    def _load_live_view(self, state_counts: dict[str, int], standby: bool = False,
                        fresh_counts: bool = False) -> None:
        """``fresh_counts``: the state counts were counted over the history, and so are each cluster's."""
        workers = [WorkerRecord.from_store(data) for data in self.store.load_workers()]
        buckets = self.live.runtime_buckets
        stats = EventStats(buckets)
        saved = None if standby else self.store.load_meta("stats")
        try:
            stats.load(saved)
        except ValueError as exc:
            # Counters saved by an older version or damaged: start them afresh, like a new exporter.
            self.store.set_aside("meta", "stats", f"{exc}; the counters start from zero",
                                 orjson.dumps(saved, default=repr))
            stats = EventStats(buckets)
        # Each cluster's state counts were saved with them (counted from the history when they were not).
        by_cluster = None if fresh_counts else self.store.load_meta("cluster_state_counts")
        self.live.restore(workers, stats, state_counts, self.store.task_names(),
                          _cluster_names(self.store.load_meta("cluster_task_names")),
                          by_cluster if isinstance(by_cluster, dict) else self.store.cluster_state_counts())

    def start(self) -> None:
        if self.leading:
            self._lead()
        else:
            for stream in self.standby_streams:
                stream.reader.start()
            self.refresh_from_history()
            log.warning("another monitor ingests into %s: this one stands by (serving pages, taking over "
                        "when it stops)", dsn.shown(self.settings.db))
        if self.replica is not None:
            self.replica.start()
        if self._auth is not None:
            self._auth_exchanger.start()
        self.queue_poller.start()
        self.timeline.restore(time.time())
        self.timeline.start()
        self.schedules.start()
        self.started_at = time.time()
        self.running = True

    def _take_over(self) -> None:
        """A standby leads: at once, with the state counts the last leader saved."""
        self._lead(saved_counts=True)

    def _lead(self, saved_counts: bool = False) -> None:
        """Ingest: reload the live view from the history, then read, apply and write (once per history)."""
        self.restore(saved_counts)
        if not self.inspector.started:  # a standby used the leader's replies until now
            self.inspector.start()
        self.writer.start()
        self.applier.start()
        for stream in self.standby_streams:
            if stream.reader.is_alive():
                self._replay_standby_buffer(stream)
        self.reader.start()
        for feed in self.feeds:
            feed.reader.start()
        if self.settings.enable_events:
            self._events_enabler.start()
        # What only the ingesting replica does, since it goes through the applier or would be done
        # N times: tasks already running (inspect), missed final states (the result backend), and
        # notifications (one message per condition, not one per replica).
        self.late_start.watch(self.inspector.refresh())
        for reconciler in self.reconcilers:
            reconciler.start()
        self.notifier.start()

    def _replay_standby_buffer(self, stream: StandbyStream) -> None:
        """What this standby kept of a cluster's stream goes to the applier first, and its subscriber
        keeps forwarding until the cluster's reader of the leader it now is reads: nothing published
        meanwhile is lost, and what the dead leader had committed comes again, recognised and not
        counted twice."""
        handed = stream.buffer.hand_over(self._sink_of(stream.cluster))
        log.warning("replaying the %d event messages this replica kept of %s while standing by", handed,
                    stream.cluster)
        threading.Thread(target=self._retire_standby_reader, args=(stream,), name="standby-reader-retire",
                         daemon=True).start()

    def _retire_standby_reader(self, stream: StandbyStream) -> None:
        deadline = time.monotonic() + 60
        while not stream.health.connected and time.monotonic() < deadline and not self._stop_event.is_set():
            time.sleep(0.05)
        time.sleep(0.5)  # an overlap is harmless, a gap is not
        stream.reader.stop()

    def stop(self) -> None:
        self.running = False
        if self.replica is not None:  # first: a standby must not take the lead while the rest stops
            self.replica.stop()
        self._stop_event.set()
        self.reader.stop()
        for feed in self.feeds:
            feed.reader.stop()
        for stream in self.standby_streams:
            stream.reader.stop()
        self.inspector.stop()
        for reconciler in self.reconcilers:
            reconciler.stop()
        self.queue_poller.stop()
        self.timeline.stop()
        self.schedules.stop()
        self.notifier.stop()
        self.control.close()
        self.applier.stop()
        if self.applier.ident is not None:  # a standby never started it
            self.applier.join(timeout=10)
        self.live.save_all_counters_next()  # the last flush saves them, however large
        self.writer.stop()
        if self.writer.ident is not None:
            self.writer.join(timeout=10)
        self.store.close()
        if self.notifier.ident is not None:  # a standby never started it
            self.notifier.join(timeout=15)
        self.notifier.ledger.close()
        if self._spool_temp is not None:
            shutil.rmtree(self._spool_temp, ignore_errors=True)

    def _enable_events(self) -> None:
        self.enable_events_loop.run(self._enable_events_once, self._stop_event, ENABLE_EVENTS_EVERY)

    def _enable_events_once(self) -> None:
        for app in (self.app, *(feed.app for feed in self.feeds)):
            try:
                app.control.enable_events()
            except Exception as exc:
                if not faults.is_broker_fault(exc):
                    raise
                # The event reader reports the broker's absence; this broadcast just tries again.
                log.debug("enable_events broadcast failed: %s", exc)

    def _worker_came_online(self, hostname: str) -> None:
        """Inspect a worker as soon as it appears (with the others appearing with it), instead of
        waiting for the next period; what it runs and holds appears at once (late start)."""
        if self.inspector.started:
            self.inspector.refresh_soon(hostname, self.late_start.watch)

    # -- reads (store/lookup.py: the live view, then the pending writes, then the history) -------

    def get_task(self, uuid: str) -> dict[str, Any] | None:
        return self.tasks.get(uuid)

    def query_tasks(self, query: TaskQuery) -> list[dict[str, Any]]:
        return self.tasks.page(query)

    def count_tasks(self, query: TaskQuery, cap: int | None = None) -> int:
        """How many tasks the query selects; with ``cap``, ``cap + 1`` when more than ``cap``."""
        return self.tasks.count(query, cap)

    def task_cursors(self, query: TaskQuery, tasks: list[dict[str, Any]]) -> list[Cursor]:
        """The cursor just past each of these tasks in the query's order (keyset paging)."""
        return self.tasks.cursors(query, tasks)

    def stream_tasks(self, query: TaskQuery) -> overlay.TaskStream:
        """Every task the query selects, a chunk at a time (for lists without a limit)."""
        return self.tasks.stream(query)

    def task_names(self, clusters: list[str] | None = None) -> list[str]:
        """Every task name seen, or those seen on ``clusters`` (None or every cluster: all of them)."""
        if clusters is not None and set(self.cluster_names) <= set(clusters):
            clusters = None
        return self.tasks.names(clusters)

    def workflow_tasks(self, root_id: str, limit: int) -> list[dict[str, Any]]:
        """The tasks of the workflow whose root is ``root_id`` (the root included)."""
        return self.tasks.workflow(root_id, limit)

    def task_count(self) -> int:
        return self.store.task_count()

    def _sent_at(self, task_id: str) -> float | None:
        """When a task was sent, as its ``task-sent`` event said (the age of a message on Redis)."""
        task = self.tasks.get(task_id)
        sent = task.get("sent") if task else None
        return float(sent) if isinstance(sent, int | float) and not isinstance(sent, bool) else None

    def queue_names(self, cluster: str | None = None) -> list[str]:
        """The queues measured on a cluster's broker (None: the first cluster's): the app's and
        --queues, and those its workers consume."""
        cluster = cluster or self.cluster
        active: list[str] = []
        for worker, details in self.inspector.details().items():
            if self.cluster_of(worker) != cluster:
                continue
            for queue in details.get("active_queues") or []:
                if isinstance(queue, dict) and queue.get("name"):
                    active.append(queue["name"])
        return queue_names(self.apps.apps.get(cluster, self.app), active + list(self.settings.queues))

    def queue_lengths(self) -> list[dict[str, Any]]:
        """Every cluster's queues, read now (those whose broker answered; ``queue_poller.errors`` the others)."""
        return self.queue_poller.poll()

    def reserved_per_queue(self) -> dict[str, dict[str, int]]:
        """Per cluster, the tasks its online workers prefetched and have not started, per queue
        (their last inspect replies)."""
        online = {name: worker.get("cluster") or clusters.DEFAULT
                  for name, worker in self.live.worker_dicts().items() if worker.get("status")}
        return backlog.reserved_by_cluster(self.inspector.details(), online)

    def queue_backlogs(self, now: float | None = None) -> list[dict[str, Any]] | None:
        """Waiting, reserved and backlog per queue of each cluster from the latest poll (``cluster``
        and ``name`` in each); the clusters whose last poll failed or is too old are left out (the
        same rule as the queue gauges: an old length shown as the current one is worse than none),
        and None when that leaves none."""
        queues = current_queues(self.queue_poller, time.time() if now is None else now)
        if not queues:
            return None
        reserved = self.reserved_per_queue()
        return [{"cluster": cluster, "name": name, **measured}
                for cluster, listed in by_cluster(queues).items()
                for name, measured in backlog.backlogs(listed, reserved.get(cluster, {})).items()]

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "started_at": self.started_at,
            "receiver": self.health.as_dict(),
            "clusters": self.cluster_status(),
            "events_rejected": {"total": self.rejections.total(), "by_reason": self.rejections.counts(),
                                "latest": self.rejections.latest()},
            "handoff_pending_bytes": self.handoff.pending_bytes,
            "ingest_lag_seconds": self.applier.last_lag,
            "store": self._store_status(),
            "workers": self.live.worker_count(),
            "inspector": {"last_error": self.inspector.last_error},
            "reconciler": self.reconciler.as_dict() if self.reconciler is not None else {"off": self.reconcile_off},
            "queues": {"polled_at": self.queue_poller.latest_at, "last_error": self.queue_poller.last_error,
                       "errors": self.queue_poller.errors},
            "background": self.supervisor.as_dict(),
            "replica": self._replica_status(),
            "health": self.health_report(),
        }

    def _sink_of(self, cluster: str) -> Sink:
        """Where the reader of ``cluster`` puts what it reads: the hand-off, marked with the cluster
        unless it is ``default`` (whose batches stay plain, as with one broker)."""
        return self.handoff if cluster == clusters.DEFAULT else ClusterSink(self.handoff, cluster)

    @property
    def cluster_names(self) -> list[str]:
        return [self.cluster, *(feed.name for feed in self.feeds)]

    @property
    def reconcilers(self) -> list[Reconciler]:
        return [*([self.reconciler] if self.reconciler is not None else []), *self.feed_reconcilers.values()]

    def _ask_soon(self, uuids: list[str]) -> None:
        """Tasks just turned LOST: each backend is asked (it answers for its own cluster's tasks)."""
        for reconciler in self.reconcilers:
            reconciler.ask_soon(uuids)

    def graph_point(self, point: dict[str, Any], chosen: list[str]) -> dict[str, Any]:
        """A point of the graphs as the ``chosen`` clusters' graphs draw it (none chosen: every cluster)."""
        if not chosen:
            return point
        return narrow(point, chosen, self.cluster, several=bool(self.feeds))

    def cluster_of(self, worker: str) -> str:
        """The cluster of a worker, by its name in this monitor (clusters.qualified)."""
        return clusters.split_qualified(worker, self.cluster_names)[0]

    def cluster_status(self) -> dict[str, dict[str, Any]]:
        """Each cluster's stream: where it reads (no credentials), whether it is up, what it read."""
        feeds = [(self.cluster, self.health, shown_broker(self.app)),
                 *((feed.name, feed.health, feed.where) for feed in self.feeds)]
        reconcilers = {self.cluster: self.reconciler, **self.feed_reconcilers}
        return {name: {"broker": where, "connected": health.connected, "connected_since": health.connected_since,
                       "reconciler": (reconciler.as_dict() if (reconciler := reconcilers.get(name)) is not None
                                      else {"off": True}),
                       "events_received": health.events_received, "last_event_time": health.last_event_time,
                       "last_error": health.last_error, "last_error_reason": health.last_error_reason,
                       "failing_since": health.failing_since, "transport": health.transport}
                for name, health, where in feeds}

    def _replica_status(self) -> dict[str, Any]:
        if self.replica is None:
            return {"role": "leader", "since": self.started_at}
        status = self.replica.as_dict()
        if self.standby_streams:
            # On Redis, what this replica keeps of the streams while it stands by (for a takeover).
            streams = self.standby_streams
            status["stream_kept"] = {"listening": all(s.reader.is_alive() for s in streams),
                                     "bytes": sum(s.buffer.kept_bytes for s in streams),
                                     "messages_forgotten": sum(s.buffer.forgotten for s in streams)}
        return status

    def _store_status(self) -> dict[str, Any]:
        writer = self.writer
        return {
            "persistent": self.settings.persistent,
            "quarantined": self.store.quarantined(),
            "path": dsn.shown(self.settings.db) if self.settings.persistent else None,
            "tasks": self.task_count(),
            "size_bytes": self.store.size_bytes(),
            "last_flush": writer.last_flush,
            "persisting": writer.persisting,
            "last_error": writer.last_error,
            "last_error_at": writer.last_error_at,
            "failing_since": writer.failing_since,
            "pending_tasks": writer.pending_count,
            "pending_limit": writer.pending_limit,
            "write_errors": writer.errors,
            "writes_dropped": writer.dropped,
        }

    def health_report(self) -> dict[str, Any]:
        """What /livez and /readyz answer: alive, ready, why not, and what is degraded."""
        return self.liveness.report()
