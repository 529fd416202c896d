"""Many clusters in one monitor (issue #21): one monitor on N clusters, a steady stream on each.

Each cluster is a Redis database (kombu's fanout prefix puts each database's events on channels of
their own, ``/<db>.celeryev/...``): all but the last share one private redis-server started with
``--databases 32``; the last has a private redis-server of its own, so that it can be stopped alone.
Every cluster gets a stream of its own (``StreamFactory`` with a seed per cluster: its own tasks,
workers named as in any cluster), published at the same per-cluster rate by one thread that paces
every cluster's socket.

For each per-cluster rate (``--cluster-rates``, ``--seconds`` each): per cluster, the events
published and the events the monitor applied (``events_received`` of that cluster in
``/api/monitor/status``), the seconds after publishing ended until it had applied them all (its
lag at the end), the tasks of the stream and the tasks ``/ui/tasks.json?cluster=`` counts, and the
latency of ``/api/tasks?cluster=NAME&limit=20`` and of the dashboard's ``/ui/tasks.json?cluster=NAME``,
asked one after the other, cluster after cluster, while the stream runs. Then the stopped-broker
round: the same stream at the highest rate every cluster kept up with, the last cluster's
redis-server stopped half-way; the other clusters must lose nothing and lag no more than before.
The stopped one is started again afterwards on the same port, and the time until its stream is
connected again and a probe event is applied is reported.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brokers
import httpx
from contenders import VENV_BIN, OurMonitor
from stream import Segment, StreamFactory

LAG_LIMIT = 3.0  # seconds after publishing ends within which a cluster that keeps up has applied everything
# The monitor reads every cluster into one hand-off and applies from it: a cluster's count can stand
# still for seconds while the applier waits for the history's writer, so only a long silence of
# every cluster ends the wait early.
SETTLE = 15.0  # seconds without progress on any cluster after which the wait ends
MAX_WAIT = 120.0  # seconds after publishing ended after which it ends anyway
STATUS_POLL = 0.25
QUERY_PAUSE = 0.02  # between two queries of the poller (it must not become the load under test)
DATABASES = 32


def names(count: int) -> list[str]:
    return [f"c{i:02d}" for i in range(1, count + 1)]


class ClusterMonitor(OurMonitor):
    """Our monitor on several clusters (``--clusters``), each reader a thread (no ``--event_spool``:
    it spools one broker's stream and is refused with ``--clusters``)."""

    def __init__(self, clusters: list[tuple[str, str]], workdir: Path, max_tasks: int) -> None:
        super().__init__(clusters[0][1], workdir, max_tasks)
        self.clusters = clusters

    def command(self) -> list[str]:
        entries = ",".join(f"{name}={url}" for name, url in self.clusters)
        return [str(VENV_BIN / "celery-monitor"), f"--clusters={entries}", f"--port={self.port}",
                "--address=127.0.0.1", "--unauthenticated_api", f"--db={self.db}", f"--max_tasks={self.max_tasks}",
                "--logging=warning"]

    def cluster_status(self) -> dict[str, dict[str, Any]]:
        return self.client.get("/api/monitor/status").json()["clusters"]  # type: ignore[no-any-return]

    def received(self) -> dict[str, int]:
        return {name: entry["events_received"] for name, entry in self.cluster_status().items()}

    def tasks_total(self, cluster: str) -> int:
        return int(self.client.get(f"/ui/tasks.json?cluster={cluster}&limit=1").json()["total"])


@dataclass
class Lane:
    """One cluster's publishing side: its broker connection, its stream, what it has sent."""

    name: str
    db: int
    redis: brokers.PrivateRedis
    factory: StreamFactory
    publisher: brokers.RedisPublisher | None = None
    encoded: brokers.Encoded | None = None
    stopped: bool = False
    # this round's progress: messages sent, their events, the server's replies before it
    index: int = 0
    sent_events: int = 0
    replies_before: int = 0

    def connect(self) -> None:
        self.publisher = brokers.RedisPublisher(self.redis.port)

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None

    def probe(self) -> None:
        assert self.publisher is not None
        self.publisher.publish(brokers.Encoded(self.factory.probe(time.time())[1], db=self.db), None)

    def published_events(self) -> int:
        """Events of this round's messages that Redis has run (a stopped server's in-flight ones are not)."""
        assert self.encoded is not None and self.publisher is not None
        messages = self.encoded.segment.messages
        done = min(self.index, self.publisher.replies - self.replies_before)
        return sum(m.events for m in messages[:done])


def publish_all(lanes: list[Lane], rate: float, on_tick: Any = None) -> float:
    """Send every lane's segment at ``rate`` events/s per lane, from this one thread; returns the seconds
    it took. ``on_tick(elapsed)`` runs between slices (the stopped-broker round stops a server there)."""
    live = [lane for lane in lanes if not lane.stopped]
    for lane in live:
        assert lane.publisher is not None and lane.encoded is not None
        lane.index = lane.sent_events = 0
        lane.replies_before = lane.publisher.replies
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if on_tick is not None:
            on_tick(elapsed)
        due = elapsed * rate
        pending = False
        sent = False
        for lane in live:
            if lane.stopped:
                continue
            assert lane.publisher is not None and lane.encoded is not None
            messages = lane.encoded.segment.messages
            end = lane.index
            while end < len(messages) and lane.sent_events < due:
                lane.sent_events += messages[end].events
                end += 1
            if end > lane.index:
                try:
                    lane.publisher.sock.sendall(b"".join(lane.encoded.commands[lane.index:end]))
                except OSError:
                    lane.stopped = True
                    continue
                lane.publisher.sent += end - lane.index
                lane.index = end
                sent = True
            if lane.index < len(messages):
                pending = True
        if not pending:
            break
        if not sent:
            time.sleep(brokers.TICK)
    seconds = time.monotonic() - started
    for lane in live:
        if not lane.stopped:
            assert lane.publisher is not None
            publisher = lane.publisher
            brokers.wait_until(lambda p=publisher: p.replies >= p.sent, 60, f"redis to acknowledge {lane.name}", 0.01)
    return seconds


class QueryPoller:
    """Asks each cluster's page of tasks, cluster after cluster, while the stream runs."""

    PATHS = {"api": "/api/tasks?cluster={name}&limit=20", "ui": "/ui/tasks.json?cluster={name}"}

    def __init__(self, base_url: str, clusters: list[str]) -> None:
        self.base_url = base_url
        self.clusters = clusters
        self.times: dict[tuple[str, str], list[float]] = {}
        self.errors = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> QueryPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join(60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as client:
            while not self._done.is_set():
                for name in self.clusters:
                    for kind, path in self.PATHS.items():
                        if self._done.is_set():
                            return
                        started = time.perf_counter()
                        try:
                            ok = client.get(path.format(name=name)).status_code == 200
                        except httpx.HTTPError:
                            ok = False
                        elapsed = (time.perf_counter() - started) * 1000
                        if ok:
                            self.times.setdefault((name, kind), []).append(elapsed)
                        else:
                            self.errors += 1
                        time.sleep(QUERY_PAUSE)

    def of(self, kind: str, name: str | None = None) -> list[float]:
        if name is not None:
            return sorted(self.times.get((name, kind), []))
        return sorted(t for (_, k), values in self.times.items() if k == kind for t in values)


def median_p99(values: list[float]) -> str:
    if not values:
        return "—"
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"{statistics.median(values):.1f} / {p99:.1f}"


@dataclass
class ClusterResult:
    name: str
    published: int = 0
    applied: int = 0
    lag: float | None = None  # seconds after publishing ended until everything was applied (None: never)
    tasks_published: int = 0
    tasks_counted: int = 0
    api: list[float] = field(default_factory=list)
    ui: list[float] = field(default_factory=list)
    connected: bool = True
    note: str = ""

    @property
    def lost(self) -> int:
        return max(0, self.published - self.applied)

    @property
    def kept_up(self) -> bool:
        return self.lost == 0 and self.lag is not None and self.lag <= LAG_LIMIT


@dataclass
class Round:
    title: str
    rate: int
    seconds: float
    publish_seconds: float
    results: list[ClusterResult]
    poller: QueryPoller
    cpu: float
    load: tuple[float, float]
    stopped: str | None = None
    backlog: tuple[int, float | None] = (0, None)  # hand-off bytes, ingest lag when publishing ended

    def others(self) -> list[ClusterResult]:
        return [r for r in self.results if r.name != self.stopped]


class ClustersBench:
    def __init__(self, workdir: Path, count: int, rates: list[int], seconds: float, log: Any) -> None:
        if count < 2:
            raise SystemExit("bench/run: error: --clusters needs at least 2 clusters")
        self.workdir = workdir
        self.count = count
        self.rates = rates
        self.seconds = seconds
        self.log = log
        self.rounds: list[Round] = []
        self.reconnect: str = ""
        self.skipped: list[int] = []
        self.startup = 0.0
        self.reading = 0.0

    def run(self) -> None:
        shared = brokers.PrivateRedis(self.workdir, ["--databases", str(DATABASES)]).start()
        alone = brokers.PrivateRedis(self.workdir).start()
        lanes = [Lane(name, i, shared, StreamFactory(seed=1000 + i)) for i, name in enumerate(names(self.count)[:-1])]
        if len(lanes) >= DATABASES:
            raise SystemExit(f"bench/run: error: --clusters: at most {DATABASES + 1} clusters")
        lanes.append(Lane(names(self.count)[-1], 0, alone, StreamFactory(seed=1000 + self.count)))
        expected_tasks = sum(int(r * self.seconds) for r in self.rates) * 2 // 3 * self.count
        monitor = ClusterMonitor([(lane.name, f"redis://127.0.0.1:{lane.redis.port}/{lane.db}") for lane in lanes],
                                 self.workdir / "monitor", max(100_000, expected_tasks * 2))
        try:
            for lane in lanes:
                lane.connect()
            self.startup = monitor.start()
            started = time.monotonic()
            self.wait_reading(monitor, lanes)
            self.reading = time.monotonic() - started
            before = monitor.received()
            for lane in lanes:  # every worker online, applied before the first round counts anything
                assert lane.publisher is not None
                lane.publisher.publish(brokers.Encoded(lane.factory.online(time.time()), db=lane.db), None)
            workers = len(lanes[0].factory.workers)
            brokers.wait_until(lambda: all(n - before[name] >= workers for name, n in monitor.received().items()),
                               120, "the workers' online events to be applied", 0.2)
            best: int | None = None
            for rate in sorted(self.rates):
                result = self.round(monitor, lanes, rate, f"{rate:,} ev/s per cluster")
                if not all(r.kept_up for r in result.results):
                    self.skipped = [r for r in self.rates if r > rate]
                    if not all(r.lag is not None for r in result.results):  # a backlog would spill into the next round
                        self.log("  not caught up: the remaining rounds would start behind; stopping here")
                        return
                    break
                best = rate
            stop_rate = best if best is not None else min(self.rates)
            self.round(monitor, lanes, stop_rate, f"{stop_rate:,} ev/s per cluster, {lanes[-1].name}'s broker "
                       "stopped half-way", stop=lanes[-1])
            self.restart(monitor, lanes[-1])
        finally:
            monitor.close()
            for lane in lanes:
                lane.close()
            shared.stop()
            alone.stop()

    def wait_reading(self, monitor: ClusterMonitor, lanes: list[Lane], timeout: float = 120) -> None:
        """Probe each cluster until the monitor has applied an event of every one (a subscriber not
        listening yet simply misses a message)."""
        before = monitor.received()
        waiting = {lane.name: lane for lane in lanes}
        deadline = time.monotonic() + timeout
        while waiting:
            if time.monotonic() > deadline:
                raise SystemExit(f"bench/run: the monitor never read clusters {', '.join(sorted(waiting))}")
            for lane in waiting.values():
                lane.probe()
            time.sleep(0.5)
            received = monitor.received()
            for name in [n for n in waiting if received.get(n, 0) > before.get(n, 0)]:
                del waiting[name]

    def segments(self, lanes: list[Lane], rate: int) -> None:
        self.log(f"generating {len(lanes)} streams of {rate:,} ev/s x {self.seconds:g}s")
        start = time.time()
        for lane in lanes:
            segment = lane.factory.segment(int(rate * self.seconds), start, rate)
            lane.encoded = brokers.Encoded(segment, db=lane.db)

    def round(self, monitor: ClusterMonitor, lanes: list[Lane], rate: int, title: str,
              stop: Lane | None = None) -> Round:
        self.segments([lane for lane in lanes if not lane.stopped], rate)
        received_before = monitor.received()
        tasks_before = {lane.name: monitor.tasks_total(lane.name) for lane in lanes}
        load_before = os.getloadavg()[0]
        cpu_before = monitor.cpu()
        poller = QueryPoller(str(monitor.client.base_url), [lane.name for lane in lanes]).start()

        def stop_half_way(elapsed: float) -> None:
            if stop is not None and not stop.stopped and elapsed >= self.seconds / 2:
                stop.stopped = True  # no more sends to it, then its server goes
                self.log(f"  stopping {stop.name}'s redis-server")
                stop.redis.stop()

        self.log(f"round: {title}")
        publish_seconds = publish_all(lanes, rate, stop_half_way)
        published_at = time.monotonic()
        published = {lane.name: lane.published_events() for lane in lanes}
        whole = monitor.client.get("/api/monitor/status").json()
        backlog = (whole["handoff_pending_bytes"], whole["ingest_lag_seconds"])
        lags = self.wait_applied(monitor, lanes, received_before, published, published_at)
        poller.stop()
        cpu = monitor.cpu() - cpu_before
        load_after = os.getloadavg()[0]
        status = monitor.cluster_status()
        results = []
        for lane in lanes:
            assert lane.encoded is not None
            segment: Segment = lane.encoded.segment
            result = ClusterResult(lane.name, published[lane.name],
                                   status[lane.name]["events_received"] - received_before.get(lane.name, 0),
                                   lags.get(lane.name), connected=bool(status[lane.name]["connected"]))
            if lane is stop:  # not all of its tasks went out
                result.note = (f"stopped after {published[lane.name]:,} of {segment.events:,} events; "
                               f"connected: {status[lane.name]['connected']}, last error: "
                               f"{status[lane.name]['last_error_reason'] or status[lane.name]['last_error']}")
            else:
                result.tasks_published = len(segment.final_states)
            result.tasks_counted = monitor.tasks_total(lane.name) - tasks_before[lane.name]
            result.api = poller.of("api", lane.name)
            result.ui = poller.of("ui", lane.name)
            results.append(result)
            self.log(f"  {lane.name}: applied {result.applied:,}/{result.published:,}, lag "
                     f"{'-' if result.lag is None else f'{result.lag:.1f}s'}, tasks {result.tasks_counted:,}/"
                     f"{result.tasks_published:,}")
        done = Round(title, rate, self.seconds, publish_seconds, results, poller, cpu, (load_before, load_after),
                     stop.name if stop is not None else None, backlog)
        self.rounds.append(done)
        return done

    def wait_applied(self, monitor: ClusterMonitor, lanes: list[Lane], before: dict[str, int],
                     published: dict[str, int], published_at: float) -> dict[str, float]:
        """Poll the status until each cluster has applied what was published to it (or stopped
        applying); returns each cluster's seconds from the end of publishing until its last event."""
        last = {lane.name: before.get(lane.name, 0) for lane in lanes}
        changed = {lane.name: published_at for lane in lanes}
        lags: dict[str, float] = {}
        while True:
            now = time.monotonic()
            try:
                received = monitor.received()
            except httpx.HTTPError:
                received = last
            for name, count in received.items():
                if name not in last:
                    continue
                if count != last[name]:
                    last[name], changed[name] = count, now
                if name not in lags and count - before.get(name, 0) >= published[name]:
                    lags[name] = max(0.0, changed[name] - published_at)
            waiting = [n for n in last if n not in lags]
            if not waiting or now - max(changed.values()) > SETTLE or now - published_at > MAX_WAIT:
                return lags
            time.sleep(STATUS_POLL)

    def restart(self, monitor: ClusterMonitor, lane: Lane) -> None:
        """Start the stopped cluster's redis-server again on its port; time until the monitor applies
        a probe event of it."""
        lane.close()
        started = time.monotonic()
        lane.redis.start()
        lane.stopped = False
        lane.connect()
        before = monitor.received()[lane.name]

        def applied() -> bool:
            lane.probe()
            time.sleep(0.2)
            return monitor.received()[lane.name] > before

        try:
            brokers.wait_until(applied, 120, f"{lane.name} to be read again", 0.05)
        except RuntimeError:
            self.reconnect = f"{lane.name}: not read again within 120 s of its redis-server's restart"
            return
        status = monitor.cluster_status()[lane.name]
        self.reconnect = (f"{lane.name}'s redis-server started again on its port: a probe event applied "
                          f"{time.monotonic() - started:.1f} s later (connected: {status['connected']})")
        self.log(f"  {self.reconnect}")

    # -- the table -------------------------------------------------------------------------------

    def render(self, header: list[str]) -> str:
        lines = [*header, "", "## Rounds (all clusters)", "",
                 "| Round | published / applied events | not applied | clusters that kept up (all applied, "
                 "≤ 3 s lag) | worst lag at the end (others) | read but not applied when publishing ended | "
                 "tasks in the stream / counted by cluster= | "
                 "/api/tasks?cluster=&limit=20 median / p99 | /ui/tasks.json?cluster= median / p99 | "
                 "applied events per CPU-second of the monitor | load average (1 min) before / after |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in self.rounds:
            results = r.results
            published = sum(x.published for x in results)
            applied = sum(x.applied for x in results)
            lost = sum(x.lost for x in results)
            lags = [x.lag for x in r.others()]
            worst = "never caught up" if any(lag is None for lag in lags) else f"{max(lags):.1f} s"  # type: ignore[type-var]
            kept = sum(1 for x in r.others() if x.kept_up)
            tasks = (sum(x.tasks_published for x in r.others()), sum(x.tasks_counted for x in r.others()))
            beside = f" (+{sum(x.tasks_counted for x in results) - tasks[1]:,} of {r.stopped} before its stop)" \
                if r.stopped else ""
            per_cpu = f"{applied / r.cpu:,.0f}" if r.cpu else "—"
            lines.append(
                f"| {r.title} ({r.rate * len(results):,} ev/s in all, {r.seconds:g} s) | {published:,} / {applied:,} | "
                f"{lost:,} | {kept} of {len(r.others())}{' others' if r.stopped else ''} | {worst} | "
                f"{r.backlog[0] / 2**20:.1f} MB ({'—' if r.backlog[1] is None else f'{r.backlog[1]:.1f} s'} behind) | "
                f"{tasks[0]:,} / {tasks[1]:,}{beside} | "
                f"{median_p99(r.poller.of('api'))} ms ({len(r.poller.of('api'))}) | "
                f"{median_p99(r.poller.of('ui'))} ms ({len(r.poller.of('ui'))}) | "
                f"{per_cpu} | {r.load[0]:.1f} / {r.load[1]:.1f} |")
        for r in self.rounds:
            lines += ["", f"## Per cluster: {r.title}", "",
                      "| Cluster | events published | applied (events_received) | not applied | lag at the end | "
                      "tasks in the stream / counted | /api/tasks?cluster=&limit=20 median / p99 (n) | "
                      "/ui/tasks.json?cluster= median / p99 (n) |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|"]
            for x in r.results:
                lag = "never" if x.lag is None else f"{x.lag:.1f} s"
                tasks = f"{x.tasks_published:,} / {x.tasks_counted:,}" if x.name != r.stopped else \
                    f"— / {x.tasks_counted:,}"
                lines.append(f"| {x.name} | {x.published:,} | {x.applied:,} | {x.lost:,} | {lag} | {tasks} | "
                             f"{median_p99(x.api)} ms ({len(x.api)}) | {median_p99(x.ui)} ms ({len(x.ui)}) |")
            notes = [x for x in r.results if x.note]
            for x in notes:
                lines += ["", f"{x.name}: {x.note}."]
            if r.poller.errors:
                lines += ["", f"Queries that failed or did not answer 200: {r.poller.errors}."]
        if self.skipped:
            lines += ["", f"Not run: {', '.join(f'{r:,}' for r in self.skipped)} ev/s per cluster (a lower rate was "
                      "not kept up with)."]
        if self.reconnect:
            lines += ["", self.reconnect + "."]
        return "\n".join(lines) + "\n"
