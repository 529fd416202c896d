"""Worker details from inspect broadcasts, run off the request path and cached per worker.

A refresh runs every inspect method at once, broadcast to all workers (or one), and waits at
most ``--inspect_timeout``. Concurrent requests for the same refresh share it. Workers that
come online trigger a refresh of their own half a second later (those coming online meanwhile
join it), so new workers never wait for the next period.

A broker that does not answer fails every method of a refresh: that is one ``last_error`` and
one log line when it starts (a reminder every few minutes while it lasts), not eight lines per
refresh. Any other exception is a bug of ours, counted as an error of the ``inspector`` loop.

Replicas of one PostgreSQL history share the leader's cache: it hands ``export()`` to the writer
after each refresh, and a standby ``adopt``s what was saved instead of broadcasting on its own, so
every replica answers alike and the workers answer one monitor, however many replicas there are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeGuard

from celery import Celery

from celery_monitor.broker import faults
from celery_monitor.celery_app import ClusterApps, broker_url
from celery_monitor.supervision import Loop, ThrottledLog

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = (
    "stats", "active_queues", "registered", "scheduled", "active", "reserved", "revoked", "conf",
)  # fmt: skip
MAX_CALLS = 24  # inspect broadcasts in flight at once, over every cluster
# Workers that come online this close together are inspected in one refresh: a fleet that starts
# (or rolls) together costs eight broadcasts, not eight per worker (320 for 40 workers, each polling
# for replies: 0.55 s of an idle monitor's CPU instead of 0.17 s, and more while it ingests).
ONLINE_BATCH_SECONDS = 0.5


class Inspector:
    def __init__(self, app: Celery | ClusterApps, timeout: float, interval: float = 10.0) -> None:
        self.apps = app if isinstance(app, ClusterApps) else ClusterApps.single(app)
        self.app = self.apps.primary
        self.timeout = timeout
        self.interval = interval
        self.cache: dict[str, dict[str, Any]] = {}
        # Freshness per worker: when each method last answered, and how many full refreshes in a
        # row the worker missed (a cached worker that stops answering has stale details).
        self.answered_at: dict[str, dict[str, float]] = {}
        self.missed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._inflight: dict[str | None, Future[dict[str, dict[str, Any]]]] = {}
        self._coming_online: set[str] = set()  # waiting for the batch a timer will start
        self._batch_watch: Callable[[Future[dict[str, dict[str, Any]]]], None] | None = None  # set while one waits
        # Refreshes run here; each one's broadcasts (every method of every cluster) on a pool of their
        # own, so a refresh never waits for a thread that a refresh holds. Bounded: twenty clusters
        # would otherwise ask 160 broadcasts at once, each polling its replies on a thread of its own.
        self._pool = ThreadPoolExecutor(max_workers=len(METHODS) + 2, thread_name_prefix="inspect")
        self._calls = ThreadPoolExecutor(max_workers=min(len(METHODS) * len(self.apps.apps), MAX_CALLS),
                                         thread_name_prefix="inspect-call")
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._periodic, name="inspector", daemon=True)
        self.last_error: str | None = None
        self.version = 0  # one more each time the cache changes (a refresh, a worker forgotten, an adoption)
        # A pass waits for its refresh at most 3 timeouts and 5 s, then sleeps one interval.
        self.loop = Loop("inspector", stall_after=self.refresh_bound + interval + 60)
        self._outage = ThrottledLog(log)

    @property
    def refresh_bound(self) -> float:
        """How long anyone waits for a refresh to answer: three inspect timeouts and 5 s."""
        return self.timeout * 3 + 5

    @property
    def started(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._calls.shutdown(wait=False, cancel_futures=True)

    def _periodic(self) -> None:
        self.loop.run(self._refresh_all, self._stop_event, self.interval)

    def _refresh_all(self) -> None:
        try:
            self.refresh().result(timeout=self.refresh_bound)
        except TimeoutError:
            self.last_error = "inspect: no complete answer in time"

    def refresh(self, workername: str | None = None) -> Future[dict[str, dict[str, Any]]]:
        """Start (or join) a refresh of one worker or all of them."""
        with self._lock:
            running = self._inflight.get(workername)
            if running is not None and not running.done():
                return running
            future = self._pool.submit(self._inspect, [workername] if workername else None)
            self._inflight[workername] = future
            return future

    def refresh_soon(self, workername: str, watch: Callable[[Future[dict[str, dict[str, Any]]]], None]) -> None:
        """Inspect a worker that just came online, together with those that come online within
        ``ONLINE_BATCH_SECONDS``; ``watch`` is handed the batch's refresh as it starts (when it is
        asked: late start stamps the replies with that time)."""
        with self._lock:
            self._coming_online.add(workername)
            opened, self._batch_watch = self._batch_watch is not None, watch
        if not opened:
            timer = threading.Timer(ONLINE_BATCH_SECONDS, self._refresh_batch)
            timer.daemon = True
            timer.start()

    def _refresh_batch(self) -> None:
        with self._lock:
            names, self._coming_online = sorted(self._coming_online), set()
            watch, self._batch_watch = self._batch_watch, None
        try:
            future = self._pool.submit(self._inspect, names)
        except RuntimeError:  # the pool shut down with the monitor
            return
        if watch is not None:
            watch(future)

    def _call(self, app: Celery, method: str, destination: list[str] | None) -> dict[str, Any]:
        # With named workers, stop waiting as soon as they all answered.
        limit = len(destination) if destination else None
        inspect = app.control.inspect(timeout=self.timeout, destination=destination, limit=limit)
        if method == "conf":
            return inspect.conf(with_defaults=False) or {}
        return getattr(inspect, method)() or {}

    def _inspect(self, workernames: list[str] | None) -> dict[str, dict[str, Any]]:
        # Every method of every cluster, as many at once as the calls' pool holds: a silent cluster
        # costs its timeout in one round, and the rounds bound how long the whole refresh may take.
        routes = self.apps.routes(workernames or None)
        futures = {(method, cluster): self._calls.submit(self._call, app, method, names)
                   for method in METHODS for cluster, app, names in routes}
        rounds = -(-len(futures) // MAX_CALLS)
        deadline = time.monotonic() + self.timeout * (rounds + 1) + 5
        replies: dict[str, dict[str, Any]] = {}
        failed: list[tuple[str, str, Exception]] = []
        for (method, cluster), future in futures.items():
            try:
                left = max(0.0, deadline - time.monotonic())
                result = self.apps.qualify(cluster, future.result(timeout=left))
            except Exception as exc:
                failed.append((method, cluster, exc))
                continue
            for worker, value in result.items():
                replies.setdefault(worker, {})[method] = value
        self._report(failed)
        now = time.time()
        with self._lock:
            for worker, info in replies.items():
                entry = self.cache.setdefault(worker, {})
                entry.update(info)
                entry["timestamp"] = now
                self.answered_at.setdefault(worker, {}).update(dict.fromkeys(info, now))
                self.missed[worker] = 0
            silent = workernames or list(self.cache)
            for worker in silent:
                if worker not in replies and worker in self.cache:
                    self.missed[worker] = self.missed.get(worker, 0) + 1
            self.version += 1
        return {worker: self.cache[worker] for worker in replies}

    def _report(self, failed: list[tuple[str, str, Exception]]) -> None:
        """One line for a refresh whose methods failed, however many did; bugs apart, with traceback.
        The broker named is the failing cluster's own (with several clusters, the cluster too)."""
        if self._stop_event.is_set():
            return  # the broadcasts in flight at shutdown fail for that reason alone
        broker_down = []
        for method, cluster, exc in failed:
            fault = faults.classify(exc, faults.broker_address(broker_url(self.apps.apps[cluster])))
            if isinstance(exc, TimeoutError) or fault.expected:
                broker_down.append((method, cluster, fault))
            else:
                self.loop.failed(exc, f"inspect {method}")
                self.last_error = f"{method}: {type(exc).__name__}: {exc}"
        if broker_down:
            first, fault = broker_down[0][1], broker_down[0][2]
            methods = ", ".join(method for method, cluster, _ in broker_down if cluster == first)
            where = ""
            if len(self.apps.apps) > 1:
                others = sorted({cluster for _, cluster, _ in broker_down} - {first})
                where = f" on cluster {first}" + (f" (and on {', '.join(others)})" if others else "")
            self.last_error = f"inspect {methods}{where}: {fault.message}"
            self._outage.failure(fault.reason, f"inspect broadcasts fail: {self.last_error}")
        elif not failed:
            self.last_error = None
            self._outage.recovered("inspect broadcasts answered again")

    def details(self, workername: str | None = None) -> dict[str, dict[str, Any]]:
        with self._lock:
            if workername is not None:
                return {workername: dict(self.cache[workername])} if workername in self.cache else {}
            return {name: dict(entry) for name, entry in self.cache.items()}

    def forget(self, workername: str) -> None:
        with self._lock:
            self.cache.pop(workername, None)
            self.answered_at.pop(workername, None)
            self.missed.pop(workername, None)
            self.version += 1

    def export(self) -> dict[str, Any]:
        """The cache and its freshness, as JSON-ready data for the other replicas."""
        with self._lock:
            return {"cache": {name: dict(entry) for name, entry in self.cache.items()},
                    "answered_at": {name: dict(methods) for name, methods in self.answered_at.items()},
                    "missed": dict(self.missed)}

    def adopt(self, saved: Any) -> bool:
        """Take another replica's ``export()`` as this cache; False (and nothing changed) if it is not one."""
        if not isinstance(saved, dict):
            return False
        cache, answered_at, missed = saved.get("cache"), saved.get("answered_at"), saved.get("missed")
        if not (_mapping_of(cache, dict) and _mapping_of(answered_at, dict) and _mapping_of(missed, int)):
            return False
        with self._lock:
            self.cache = {name: dict(entry) for name, entry in cache.items()}
            self.answered_at = {name: dict(methods) for name, methods in answered_at.items()}
            self.missed = dict(missed)
            self.version += 1
        return True

    def freshness(self, workername: str | None = None, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Per worker: when its details were last inspected, their age, when each method last answered,
        and how many refreshes in a row it missed."""
        now = time.time() if now is None else now
        with self._lock:
            names = [workername] if workername is not None else list(self.cache)
            result: dict[str, dict[str, Any]] = {}
            for name in names:
                if name not in self.cache:
                    continue
                inspected_at = self.cache[name].get("timestamp")
                result[name] = {
                    "inspected_at": inspected_at,
                    "age": None if inspected_at is None else max(0.0, now - inspected_at),
                    "methods": dict(self.answered_at.get(name, {})),
                    "missed_refreshes": self.missed.get(name, 0),
                }
            return result


def _mapping_of(value: Any, kind: type) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, kind) for k, v in value.items())
