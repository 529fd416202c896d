"""The applier: turns batches of raw messages into task and worker changes.

It runs in its own thread, takes everything the reader handed over since last time, decodes it,
applies Celery's event semantics to the live view, then hands the changed records to the store
writer and change notices to the hub, once per batch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from celery_monitor.applier import lost, settle
from celery_monitor.applier.boundary import TEXT_FIELDS, EventBoundary, cut
from celery_monitor.applier.task_events import apply_task_event
from celery_monitor.applier.worker_events import apply_worker_event
from celery_monitor.auth import redact
from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER
from celery_monitor.clusters import qualified, split_qualified
from celery_monitor.hub import Hub, Notice
from celery_monitor.notify.notices import NoticeQueue, TaskNotice
from celery_monitor.receiver.handoff import ClusterBatch, Handoff, RawMessage, SpooledBatch
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.state.live import LiveView
from celery_monitor.state.memory import release_free_memory
from celery_monitor.state.models import TaskRecord, WorkerRecord
from celery_monitor.states import HELD_STATES, LOST, LOST_WORKER_OFFLINE, LOST_WORKER_RESTARTED
from celery_monitor.store.base import Store
from celery_monitor.store.lookup import TaskLookup
from celery_monitor.store.query import TaskQuery
from celery_monitor.store.writer import StoreWriter
from celery_monitor.supervision import Loop

log = logging.getLogger(__name__)
CHUNK_MESSAGES = 2000
# Changed tasks queued for the store writer's next flush beyond which the applier waits for that
# flush to start (a second at most each time) before applying more: a burst waits as raw bytes (the
# spool, the hand-off), not as decoded tasks, and the memory it takes here stays bounded.
WRITE_AHEAD_TASKS = 2000
WRITE_AHEAD_WAIT = 1.0
APPLY_ERROR_LOG_INTERVAL = 10.0
RELEASE_MEMORY_EVERY = 5.0  # seconds between returns of freed memory to the OS while events flow
RELEASE_MEMORY_FOR = 60.0  # ... and for this long after the last event
# Progress is marked at every hand-off take (0.2 s) and every chunk applied: two minutes without it
# is a stuck applier, and ingestion has stopped.
STALL_AFTER = 120.0
Chunk = list[tuple[float, str, list[RawMessage]]]  # (received at, cluster, messages)


class Applier(threading.Thread):
    def __init__(
        self,
        handoff: Handoff,
        live: LiveView,
        store: Store,
        writer: StoreWriter,
        health: ReceiverHealth,
        hub: Hub,
        boundary: EventBoundary | None = None,
        max_workers: int = 5000,
        purge_offline_workers: float | None = None,
        on_worker_online: Callable[[str], None] | None = None,
        redactor: redact.Redactor | None = None,
        tasks: TaskLookup | None = None,
        on_lost: Callable[[list[str]], None] | None = None,
        notices: NoticeQueue | None = None,
    ) -> None:
        super().__init__(name="event-applier", daemon=True)
        self.handoff = handoff
        self.live = live
        self.store = store
        self.writer = writer
        # Where a task not in the live view is found: the service's one lookup (store/lookup.py).
        self.tasks = tasks if tasks is not None else TaskLookup(live, writer, store)
        self.health = health
        # Each cluster's receiver (celery_monitor/clusters.py): its events are counted there, and its
        # workers are judged lost only while its own stream is up. One cluster: ``health`` alone.
        self.cluster_health: dict[str, ReceiverHealth] = {DEFAULT_CLUSTER: health}
        self.hub = hub
        self.boundary = boundary if boundary is not None else EventBoundary()
        self.max_workers = max_workers
        self.purge_offline_workers = purge_offline_workers
        self.on_worker_online = on_worker_online
        self.on_lost = on_lost  # the result backend may know how the tasks just turned LOST ended
        self.redactor = redactor  # --redact and format_task: what the history and every reader get
        # Notifications: the tasks that reached a state some rule is about, handed over per batch.
        self.notices = notices if notices is not None else NoticeQueue()
        self._noticed: list[TaskRecord] = []
        self._stop_event = threading.Event()
        # Per batch: the tasks it changed, and the stored tasks looked up for it in one go.
        self._dirty: dict[str, TaskRecord] = {}
        self._prefetched: dict[str, Any] = {}
        # Workers the batch forgot (--max_workers): deleted from the history once the lock is released.
        self._forgotten: list[str] = []
        # LOST: workers whose held tasks are to be swept (reason, and the worker-clock time before
        # which a task's state counts as lost), and the offline workers already swept.
        self._lost_due: dict[str, tuple[str, float]] = {}
        self._swept_offline: set[str] = set()
        # Facts learnt elsewhere than in events (the result backend, inspect replies), handed over by
        # other threads (a deque's appends and pops are thread-safe) and applied here, between batches.
        self._facts: deque[settle.Fact] = deque()
        self._apply_error_logged_at = float("-inf")
        self.batches_applied = 0
        self.last_lag = 0.0
        self._batches_seen = 0
        self._active_at = float("-inf")
        self._released_at = float("-inf")
        # A failed pass costs its batch only (counted, logged once, a short backoff); housekeeping
        # fails on its own account.
        self.loop = Loop("applier", critical=True, stall_after=STALL_AFTER, max_backoff=1.0)
        self.housekeeping_loop = Loop("housekeeping")
        self._next_housekeeping = time.monotonic() + 1.0

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        self.loop.run(self.step, self._stop_event, interval=0)
        remaining = self.handoff.take(timeout=0)
        if remaining:
            with self.loop.guard("applying the last events"):
                self.apply(remaining)

    def step(self) -> None:
        """One pass: apply what the reader handed over; once a second, housekeeping."""
        items = self.handoff.take(timeout=0.2)
        if items:
            self.apply(items)
        if self._lost_due:  # a worker came back as a new process: its old tasks are lost now
            self.sweep_lost()
        if self._facts:
            with self.loop.guard("applying what the result backend or inspect said"):
                self.apply_facts()
        if time.monotonic() >= self._next_housekeeping:
            self._next_housekeeping = time.monotonic() + 1.0
            with self.housekeeping_loop.guard():
                self.housekeeping()

    # -- applying ------------------------------------------------------------------------------

    def apply(self, items: list[tuple[float, list[RawMessage]]]) -> None:
        """Apply what the reader handed over, at most ``CHUNK_MESSAGES`` messages at a time.

        After a burst the hand-off can hold hundreds of thousands of messages; decoding them all at
        once would make the memory high-water mark (and the live lock's hold) follow the burst.
        """
        chunk: Chunk = []
        size = 0
        for received_at, batch in items:
            cluster = batch.cluster if isinstance(batch, ClusterBatch) else DEFAULT_CLUSTER
            if isinstance(batch, SpooledBatch):
                # Kept whole (the spool hands over at most about a chunk): its position is saved
                # with the changes of the chunk it ends, so a replay starts right after it.
                chunk.append((received_at, cluster, batch))
                size += len(batch)
                if size >= CHUNK_MESSAGES:
                    self._apply_chunk(chunk)
                    chunk, size = [], 0
                continue
            for start in range(0, len(batch), CHUNK_MESSAGES):
                part = batch[start : start + CHUNK_MESSAGES]
                chunk.append((received_at, cluster, part))
                size += len(part)
                if size >= CHUNK_MESSAGES:
                    self._apply_chunk(chunk)
                    chunk, size = [], 0
        if chunk:
            self._apply_chunk(chunk)

    def _apply_chunk(self, items: Chunk) -> None:
        self.writer.wait_for_room(WRITE_AHEAD_TASKS, WRITE_AHEAD_WAIT)
        self.loop.beat()
        dirty_tasks: dict[str, TaskRecord] = {}
        dirty_workers: dict[str, WorkerRecord] = {}
        events_for_hub: list[Notice] = []
        want_notices = self.hub.has_subscribers
        events_of = self.boundary.events_of
        decoded = [(received_at, cluster, events_of(raw)) for received_at, cluster, batch in items for raw in batch]
        # The history is read before the live view is locked: readers never wait for SQLite.
        prefetched = self._prefetch(decoded)
        with self.live.applying():
            self._dirty = dirty_tasks
            self._prefetched = prefetched
            try:
                for received_at, cluster, events in decoded:
                    for event in events:
                        event["local_received"] = received_at
                        try:
                            applied = self.apply_event(event, received_at, dirty_tasks, dirty_workers, cluster)
                        except Exception as exc:  # a bug of ours: it costs this one event, not its batch
                            self._apply_failed(event, exc)
                            continue
                        if applied and want_notices:
                            events_for_hub.append(event)
            finally:
                self._prefetched = {}
                self._dirty = {}
            task_dicts = {uuid: task.as_dict() for uuid, task in dirty_tasks.items()}
            worker_dicts = {name: worker.to_store() for name, worker in dirty_workers.items()}
            self._offer_noticed()
            now = time.time()
            worker_notices = [w.as_dict(now) for w in dirty_workers.values()] if want_notices else []
            # Before readers see the batch in the live view: a task /api/task/info shows is then
            # pending or committed, never between the two, and lists (history + pending) have it too.
            positions = [batch.position for _, _, batch in items if isinstance(batch, SpooledBatch)]
            self.writer.submit(task_dicts, worker_dicts, positions[-1] if positions else None)
        self._delete_forgotten_workers()
        self.batches_applied += 1
        self.last_lag = max(0.0, time.time() - items[0][0])
        if want_notices:
            notices: list[Notice] = [{"kind": "event", "event": e} for e in events_for_hub]
            notices.extend({"kind": "task", "task": t} for t in task_dicts.values())
            notices.extend({"kind": "worker", "worker": w} for w in worker_notices)
            self.hub.publish(notices)

    def apply_event(
        self,
        event: dict[str, Any],
        received_at: float,
        dirty_tasks: dict[str, TaskRecord],
        dirty_workers: dict[str, WorkerRecord],
        cluster: str = DEFAULT_CLUSTER,
    ) -> bool:
        """Apply one event the boundary has checked: its fields have their declared types.

        An event of a cluster other than ``default`` names its worker by the qualified name, and
        says its cluster, before anything reads it: the task, the worker and the hub all see that.
        """
        event_type: str = event["type"]
        health = self.health if cluster == DEFAULT_CLUSTER else self.cluster_health[cluster]
        health.events_received += 1
        health.last_event_time = received_at
        hostname = event.get("hostname")
        if cluster != DEFAULT_CLUSTER:
            event["cluster"] = cluster
            if hostname:
                event["hostname"] = hostname = qualified(cluster, hostname)
        if event_type.startswith("task-"):
            uuid: str = event["uuid"]
            task = self.task(uuid)
            task.cluster = cluster
            old_state = task.state
            is_new = not task.transitions
            counted = apply_task_event(task, event) is not None  # not when delivered again
            if self.redactor is not None:
                self.redactor.apply(task, event)
            self._notice(task, old_state)
            live = self.live
            live.count_state(None if is_new else old_state, task.state, cluster)
            if task.name:
                live.add_task_name(task.name, cluster)
            if task.parent_id and task.parent_id != uuid:
                parent = self.task(task.parent_id)
                if not parent.transitions:  # known only as this task's parent: of the same cluster
                    parent.cluster = cluster
                if uuid not in parent.children:
                    parent.children.append(uuid)
                    if not parent.transitions:
                        live.count_state(None, parent.state, parent.cluster)
                    dirty_tasks[parent.uuid] = parent
            dirty_tasks[uuid] = task
            live.track_held(task)
            if hostname and event_type != "task-sent":
                worker = self.worker(hostname, cluster)
                apply_worker_event(worker, event, received_at)
                if counted:
                    worker.counters[event_type] = worker.counters.get(event_type, 0) + 1
                dirty_workers[hostname] = worker
            if counted:
                live.record(event_type, task, event)
            return counted
        if event_type.startswith("worker-"):
            worker_name: str = event["hostname"]  # the boundary lets worker events in with a hostname only
            worker = self.worker(worker_name, cluster)
            if lost.restarted(worker, event):
                stamp = event.get("timestamp")
                before = stamp if isinstance(stamp, int | float) else received_at - (worker.clock_skew or 0.0)
                self._lost_due[worker_name] = (LOST_WORKER_RESTARTED, before)
            was_online = worker.is_online(received_at)
            apply_worker_event(worker, event, received_at)
            if not was_online and worker.is_online(received_at) and self.on_worker_online:
                self.on_worker_online(worker_name)
            dirty_workers[worker_name] = worker
            return True
        return True

    def _notice(self, task: TaskRecord, old_state: str | None) -> None:
        """Keep the task for the notification rules if it moved to a state one of them watches."""
        if task.state != old_state and task.state in self.notices.states:
            self._noticed.append(task)

    def _offer_noticed(self) -> None:
        """Hand the kept tasks to the notifier, copied while the live view is still locked."""
        if self._noticed:
            noticed, self._noticed = self._noticed, []
            self.notices.offer([notice_of(task) for task in noticed])

    def _apply_failed(self, event: dict[str, Any], exc: Exception) -> None:
        event_type = event.get("type")
        self.boundary.rejections.add("apply_error", f"{event_type}: {type(exc).__name__}", event_type)
        now = time.monotonic()
        if now - self._apply_error_logged_at > APPLY_ERROR_LOG_INTERVAL:
            self._apply_error_logged_at = now
            log.exception("applying a %s event failed; the event is skipped", event_type)

    def _prefetch(self, decoded: list[tuple[float, str, list[dict[str, Any]]]]) -> dict[str, Any]:
        """Look up, in one query, every task of the batch that the live view does not hold.

        One ``IN (...)`` query per 500 tasks instead of one query per new task; a task found
        nowhere is new (None), and is known to be new without asking again. Only the applier's
        thread changes the live view, so what it holds cannot change before the batch is applied.
        """
        mentioned: set[str] = set()
        for _, _, events in decoded:
            for event in events:
                for key in ("uuid", "parent_id"):
                    uuid = event.get(key)
                    if isinstance(uuid, str) and uuid:
                        mentioned.add(uuid)
        wanted = self.live.missing(mentioned)
        if not wanted:
            return {}
        found: dict[str, Any] = dict.fromkeys(wanted)
        found.update(self.tasks.many_behind_live(wanted))
        return found

    def task(self, uuid: str) -> TaskRecord:
        """The task from the live view, this batch, the pending writes or the store, or a new one."""
        task = self.live.task(uuid)
        if task is None:
            # A batch bigger than the live view's limit may have pushed one of its own tasks out.
            task = self._dirty.get(uuid)
        if task is None:
            prefetched = self._prefetched
            stored = prefetched.pop(uuid) if uuid in prefetched else self.tasks.behind_live(uuid)
            task = TaskRecord.from_dict(stored) if stored else TaskRecord(uuid=uuid)
        self.live.remember(task)
        return task

    def worker(self, hostname: str, cluster: str = DEFAULT_CLUSTER) -> WorkerRecord:
        """The worker of this (qualified) name, created in ``cluster`` when it is new."""
        worker = self.live.worker(hostname)
        if worker is None:
            worker = WorkerRecord(hostname=hostname, cluster=cluster)
            self.live.add_worker(worker)
            self._enforce_worker_limit(keep=hostname)
        return worker

    # -- housekeeping --------------------------------------------------------------------------

    def _enforce_worker_limit(self, keep: str) -> None:
        """Forget the workers offline longest (then the least recently seen) beyond --max_workers."""
        if self.live.worker_count() <= self.max_workers:
            return
        workers = self.live.worker_records()
        now = time.time()
        others = [w for w in workers if w.hostname != keep]
        by_age = sorted(others, key=lambda w: (w.is_online(now), w.last_seen or 0))
        excess = [w.hostname for w in by_age[: len(workers) - self.max_workers]]
        self.live.forget_workers(excess)
        self._forgotten.extend(excess)

    def _delete_forgotten_workers(self) -> None:
        """Delete from the history the workers the last batch forgot (outside the live view's lock)."""
        if self._forgotten:
            forgotten, self._forgotten = self._forgotten, []
            self.store.delete_workers(forgotten)

    def housekeeping(self) -> None:
        self.sweep_lost()
        self.release_memory()
        if self.purge_offline_workers:
            self.purge_workers(self.purge_offline_workers)

    def release_memory(self) -> None:
        """While events flow and for a while after, whenever the hand-off is empty, give freed memory back.

        Not only right after the applier's last batch: the writer and the search indexer finish
        their share of a burst (and free it) seconds later.
        """
        now = time.monotonic()
        if self.batches_applied != self._batches_seen:
            self._batches_seen = self.batches_applied
            self._active_at = now
        if (self.handoff.pending_bytes or now - self._released_at < RELEASE_MEMORY_EVERY
                or now - self._active_at > RELEASE_MEMORY_FOR):
            return
        self._released_at = now
        release_free_memory()

    def purge_workers(self, offline_for: float) -> None:
        """Forget the workers offline for longer than ``offline_for`` seconds."""
        now = time.time()
        with self.live.applying():
            stale = []
            for worker in self.live.worker_records():
                if worker.is_online(now):
                    continue
                offline_since = worker.went_offline or worker.heartbeat_expires or worker.last_seen or now
                if now - offline_since > offline_for:
                    stale.append(worker.hostname)
            self.live.forget_workers(stale)
        if stale:  # the history is written after the lock is released: readers never wait for SQLite
            self.store.delete_workers(stale)

    # -- LOST ----------------------------------------------------------------------------------

    def sweep_lost(self, now: float | None = None) -> None:
        """Turn LOST the tasks held by workers lost since the last sweep (offline, or restarted).

        A worker offline by the heartbeat rule is swept once per absence. Its held tasks come from
        the live view's index and, for those it no longer holds, from one history query on state
        and worker, read before the live view is locked.
        """
        now = time.time() if now is None else now
        due, self._lost_due = self._lost_due, {}
        # Silence is only heard while the event stream is up: a worker is judged offline once the
        # monitor has listened for a whole expiry window without its heartbeat (not right after a
        # start or a reconnection, when its heartbeats were missed rather than not sent).
        offline: set[str] = set()
        for worker in self.live.worker_records():
            host = worker.hostname
            if worker.is_online(now):
                continue
            health = self.cluster_health.get(worker.cluster, self.health)
            listening_since = health.connected_since if health.connected else None
            if host not in self._swept_offline:
                if listening_since is None or now < listening_since + worker.freq * worker.EXPIRE_WINDOW:
                    continue
                if len(due) >= lost.MAX_WORKERS_PER_SWEEP:
                    continue  # the next sweep, a second later: the applier goes back to the events
                due[host] = (LOST_WORKER_OFFLINE, math.inf)
            offline.add(host)
        self._swept_offline = offline
        if not due:
            return
        # One history query for every worker of the sweep (its worker filter looks up the names present
        # once, not once per worker: with hundreds of workers that lookup is most of a sweep's cost).
        stored: dict[str, list[dict[str, Any]]] = {host: [] for host in due}
        for data in self.tasks.page(TaskQuery(limit=lost.MAX_FROM_HISTORY * len(due), workers=list(due),
                                              states=list(HELD_STATES))):
            if data.get("worker") in stored and len(stored[data["worker"]]) < lost.MAX_FROM_HISTORY:
                stored[data["worker"]].append(data)
        live = self.live
        lost_tasks: dict[str, TaskRecord] = {}
        with live.applying():
            for host, (reason, before) in due.items():
                lost_worker = live.worker(host)
                skew = lost_worker.clock_skew if lost_worker is not None else None
                at = now - (skew or 0.0)
                candidates = live.held_tasks(host)
                for data in stored[host]:
                    task = live.task(data["uuid"])
                    candidates.append(task if task is not None else TaskRecord.from_dict(data))
                for task in candidates:
                    if task.uuid in lost_tasks or not lost.is_lost(task, host, before):
                        continue
                    old_state = task.state
                    lost.mark_lost(task, reason, at)
                    live.remember(task)
                    live.count_state(old_state, LOST, task.cluster)
                    live.count_lost(task)
                    live.track_held(task)
                    lost_tasks[task.uuid] = task
            if not lost_tasks:
                return
            task_dicts = {uuid: task.as_dict() for uuid, task in lost_tasks.items()}
            self.writer.submit(task_dicts, {})
            if LOST in self.notices.states:
                self.notices.offer([notice_of(task) for task in lost_tasks.values()])
        log.info("%d task(s) LOST on %s", len(lost_tasks), ", ".join(f"{h} ({r})" for h, (r, _) in due.items()))
        if self.on_lost is not None:
            self.on_lost(list(lost_tasks))
        if self.hub.has_subscribers:
            self.hub.publish([{"kind": "task", "task": t} for t in task_dicts.values()])

    # -- facts from elsewhere: the result backend, inspect replies ------------------------------

    def submit(self, facts: Iterable[settle.Fact]) -> None:
        """Hand over what another part learnt of tasks; applied by the applier's thread, in order."""
        self._facts.extend(facts)

    def apply_facts(self) -> None:
        """Apply the facts handed over since the last pass, like a batch of events.

        A backend outcome settles only a task the monitor knows and has not seen finish, and only if
        nothing it heard of the task is newer (:func:`settle.settles`); an inspected task may be new.
        Either is redacted as an event is, and its texts cut at the event text limit.
        """
        facts: list[settle.Fact] = []
        while self._facts and len(facts) < CHUNK_MESSAGES:
            facts.append(self._facts.popleft())
        live = self.live
        wanted = live.missing({fact.uuid for fact in facts})
        stored = self.tasks.many_behind_live(wanted) if wanted else {}
        changed: dict[str, TaskRecord] = {}
        settled: list[str] = []
        with live.applying():
            for fact in facts:
                task = changed.get(fact.uuid) or live.task(fact.uuid)
                if task is None and fact.uuid in stored:
                    task = TaskRecord.from_dict(stored[fact.uuid])
                if task is None and isinstance(fact, settle.InspectedTask):
                    # Of the cluster whose worker holds it (the inspector names workers as the monitor does).
                    cluster = split_qualified(fact.worker or "", self.cluster_health)[0]
                    task = TaskRecord(uuid=fact.uuid, cluster=cluster)
                if task is None:
                    continue  # the backend knows a task the monitor never saw (or trimmed): not ours to add
                old_state, is_new = task.state, not task.transitions
                skew = self._skew(fact.worker or task.worker)
                now = time.time() - skew
                if isinstance(fact, settle.BackendOutcome):
                    if not settle.settles(task, fact):
                        continue
                    brought = settle.apply_outcome(task, self._cut(fact), now)
                    settled.append(fact.state)
                    live.count_reconciled(task.cluster or DEFAULT_CLUSTER, fact.state)
                else:
                    moved, brought = settle.apply_inspected(task, self._cut(fact), fact.seen_at - skew)
                    if not moved:
                        continue
                if self.redactor is not None:
                    self.redactor.apply(task, brought)
                live.count_state(None if is_new else old_state, task.state, task.cluster)
                self._notice(task, old_state)  # a failure the events missed still notifies
                if task.name:
                    live.add_task_name(task.name, task.cluster)
                live.remember(task)
                live.track_held(task)
                changed[task.uuid] = task
            if not changed:
                return
            self._offer_noticed()
            task_dicts = {uuid: task.as_dict() for uuid, task in changed.items()}
            self.writer.submit(task_dicts, {})
        if settled:
            log.info("%d task(s) reconciled from the result backend", len(settled))
        if self.hub.has_subscribers:
            self.hub.publish([{"kind": "task", "task": t} for t in task_dicts.values()])

    def _skew(self, hostname: str | None) -> float:
        """How far ``hostname``'s clock is behind the monitor's (0 when unknown)."""
        worker = self.live.worker(hostname) if hostname else None
        return (worker.clock_skew or 0.0) if worker is not None else 0.0

    def _cut(self, fact: settle.FactT) -> settle.FactT:
        """The fact with its texts cut at the event text limit, as the boundary cuts events'."""
        limit = self.boundary.text_limit
        long: dict[str, Any] = {field: cut(value, limit) for field in TEXT_FIELDS
                                if isinstance(value := getattr(fact, field, None), str) and len(value) > limit}
        return dataclasses.replace(fact, **long) if long else fact


def notice_of(task: TaskRecord) -> TaskNotice:
    """What the notification rules look at, copied while the live view is locked."""
    return TaskNotice(task.uuid, task.name, task.state or "", task.exception, task.runtime, task.retries,
                      task.worker, time.time(), task.root_id, task.cluster)
