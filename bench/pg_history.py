"""The PostgreSQL section (``--pg-history N``): ours on a history of N tasks in PostgreSQL.

What it measures, against the targets of issue #18 ("Scale"):

- the API's and the dashboard's queries (``/api/tasks`` filters, search and deep pages, the task
  table's ``/ui/tasks.json`` sorted by ``-received`` as the page sends it, and the other pages'
  JSON): median and 95th percentile, target under 100 ms p95;
- ingest into PostgreSQL at rising rates with the history full (``--max_tasks`` = N, so every
  second is also a trim of as many old tasks): events counted, and every change written
  (``celery_monitor_store_pending_tasks`` back to 0, nothing dropped), target 30,000 task events/s;
  the task table's first page is timed all along;
- the task table's search right after the ingest (the search table, filled behind the writer, lacks
  the newest tasks: they are scanned), how long the search table takes to catch up, and the search
  once it has;
- retention by age: a restart with ``--max_task_age`` that makes a few percent of the history too
  old; the trim's duration and the task table's latency while it runs.

The history is seeded by ``pg_seed.py`` into the database ``cmon_bench_history_<N>`` on the machine's
PostgreSQL; ``--pg-keep`` keeps it for later runs (seeding ten million tasks takes most of an hour)
and reuses one that holds N tasks.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import brokers
import httpx
import measure
import pg_seed
from contenders import VENV_BIN, OurMonitor
from report import OURS
from stream import StreamFactory

TARGET_MS = 100.0
TARGET_RATE = 30_000
SEED = 11  # of the seeded history's stream factory
AGE_TRIM_SHARE = 0.02  # the share of the history --max_task_age makes too old


@dataclass
class Poller:
    """Times one GET again and again in a thread (a user on the page while the history changes)."""

    base_url: str
    path: str
    times: list[float]

    def __post_init__(self) -> None:
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=120) as client:
            while not self.done.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(self.path).status_code == 200
                except httpx.HTTPError:  # not started yet, or restarting
                    ok = False
                if ok:
                    self.times.append((time.perf_counter() - started) * 1000)
                time.sleep(0.05)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def summary(self) -> str:
        if not self.times:
            return "—"
        times = sorted(self.times)
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        return (f"{statistics.median(times):.1f} / {p95:.1f} / {times[-1]:.1f} ms "
                f"({len(times)} requests)")


def metric(monitor: OurMonitor, name: str) -> float:
    """The sum of one metric family's samples on /metrics."""
    total = 0.0
    for line in monitor.client.get("/metrics").text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_written(monitor: OurMonitor, timeout: float) -> float | None:
    """Seconds until no change waits to be written to the history (None: not within ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if metric(monitor, "celery_monitor_store_pending_tasks") == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


class PgHistory:
    def __init__(self, bench: Any, tasks: int, keep: bool, rates: list[int], log: Callable[[str], None],
                 queries_only: bool = False, empty: bool = False) -> None:
        self.bench = bench
        self.empty = empty  # first the ingest rates into an empty database
        self.queries_only = queries_only
        self.tasks = tasks
        self.keep = keep
        self.rates = rates
        self.log = log
        self.database = f"cmon_bench_history_{tasks}"
        self.url = pg_seed.url_of(self.database)
        self.section = f"celery-monitor on PostgreSQL with {tasks:,} tasks of history (--db=postgresql://...)"
        self.some: list[str] = []
        # The stream ingested here: a seed of its own, so that its tasks are new to the history
        # (the seeded ones come from seed 7 or SEED; the same ids would update old rows instead).
        self.factory = StreamFactory(seed=13)

    def row(self, metric: str, value: float | str | None, unit: str = "") -> None:
        self.bench.row(self.section, metric, OURS, value, unit)

    def empty_history(self) -> None:
        """The same ingest rates into an empty database, as a new monitor starts on PostgreSQL: the
        history grows from nothing (no trimming), while the planner's statistics follow it."""
        database = f"{self.database}_empty"
        pg_seed.drop_database(database)
        pg_seed.create_database(database)
        workdir = self.bench.workdir / "pg-empty"
        workdir.mkdir(parents=True, exist_ok=True)
        redis = brokers.PrivateRedis(workdir).start()
        monitor = OurMonitor(redis.url, workdir, 10_000_000, pg_seed.url_of(database))
        publisher = brokers.RedisPublisher(redis.port)
        section, self.section = self.section, "celery-monitor on PostgreSQL, from an empty database (--db=postgresql://...)"
        try:
            monitor.start(300)
            self.ingest(monitor, publisher, redis, "into an empty history (no trimming)", search_after=False)
        finally:
            self.section = section
            monitor.close()
            publisher.close()
            redis.stop()
            pg_seed.drop_database(database)

    def run(self) -> None:
        if self.empty:
            self.empty_history()
        try:
            self._seed()
            self._run()
        finally:
            if not self.keep:
                pg_seed.drop_database(self.database)

    def _seed(self) -> None:
        held = pg_seed.task_count(self.database)
        # A kept history loses a little to each run's retention steps: reused while within 1%.
        if self.keep and held is not None and held >= self.tasks * 0.99:
            self.log(f"reusing {self.database} ({held:,} tasks, --pg-keep)")
            self.row("history", f"{held:,} tasks, kept from an earlier seeding (--pg-keep)")
        else:
            self.log(f"seeding {self.tasks:,} tasks into PostgreSQL ({self.database})")
            seconds, _ = pg_seed.seed_history(self.database, self.tasks, StreamFactory(seed=SEED), self.log)
            self.row("history seeded (COPY of the store's own rows, then the indexes)", seconds, "s")
        started = time.monotonic()
        done = subprocess.run([str(VENV_BIN / "celery-monitor"), "db", "upgrade", f"--db={self.url}"],
                              capture_output=True, text=True, check=True)
        self.row("`celery-monitor db upgrade` before the start", f"{time.monotonic() - started:.1f} s "
                 f"({done.stdout.strip().splitlines()[-1] if done.stdout.strip() else 'done'})")
        with pg_seed.connect(self.database) as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            every = max(1, self.tasks // 50)
            self.some = [row[0] for row in conn.execute(
                "SELECT uuid FROM tasks WHERE seq %% %s = 7 ORDER BY seq", (every,))]
        self.row("database size", (size[0] if size else 0) / 2**30, "GB")

    def _run(self) -> None:
        workdir = self.bench.workdir / "pg-history"
        workdir.mkdir(parents=True, exist_ok=True)
        redis = brokers.PrivateRedis(workdir).start()
        # --max_tasks at the history's size: from the first new task on, each one trims an old one.
        held = pg_seed.task_count(self.database) or self.tasks
        monitor = OurMonitor(redis.url, workdir, held, self.url)
        self.row("--max_tasks (the history's size at the start)", f"{held:,}")
        publisher = brokers.RedisPublisher(redis.port)
        try:
            self.row("start-up until HTTP answers", monitor.start(300), "s")
            self.queries(monitor)
            if self.queries_only:
                return
            self.ingest(monitor, publisher, redis)
            self.age_retention(monitor, workdir, redis)
        finally:
            monitor.close()
            publisher.close()
            redis.stop()

    # -- queries -----------------------------------------------------------------------------------

    def paths(self) -> list[tuple[str, str]]:
        names = self.factory.names
        common, rare = names[0], names[-1]
        n = self.tasks
        table = "/ui/tasks.json?limit=50&sort_by=-received"
        return [
            ("/api/tasks?limit=100", "/api/tasks?limit=100"),
            ("/api/tasks?limit=100&state=FAILURE", "/api/tasks?limit=100&state=FAILURE"),
            ("/api/tasks?limit=100&taskname=<commonest name, ~25%>", f"/api/tasks?limit=100&taskname={common}"),
            ("/api/tasks?limit=100&taskname=<rarest name, ~0.8%>", f"/api/tasks?limit=100&taskname={rare}"),
            ("/api/tasks?limit=100&workername=<worker>", "/api/tasks?limit=100&workername=celery@worker-007"),
            ("/api/tasks?limit=100&search=<term>", "/api/tasks?limit=100&search=customer-1234"),
            ("/api/tasks?limit=100&search=<common term, ~8%>", "/api/tasks?limit=100&search=customer-1"),
            ("/api/tasks?limit=100&offset=<90% deep>", f"/api/tasks?limit=100&offset={int(n * 0.9)}"),
            ("/api/tasks?limit=100&sort_by=-received&state=FAILURE",
             "/api/tasks?limit=100&sort_by=-received&state=FAILURE"),
            ("/api/task/info/<id>", f"/api/task/info/{self.some[len(self.some) // 2]}"),
            (f"{table} (the task table)", table),
            (f"{table}&state=FAILURE", f"{table}&state=FAILURE"),
            (f"{table}&taskname=<commonest name>", f"{table}&taskname={common}"),
            (f"{table}&taskname=<rarest name>", f"{table}&taskname={rare}"),
            (f"{table}&workername=<worker>", f"{table}&workername=celery@worker-007"),
            (f"{table}&search=<term>", f"{table}&search=customer-1234"),
            (f"{table}&state=FAILURE&search=<term>", f"{table}&state=FAILURE&search=customer-1234"),
            (f"{table}&offset=<50% deep> (the worst page)", f"{table}&offset={n // 2}"),
            (f"{table}&offset=<90% deep>", f"{table}&offset={int(n * 0.9)}"),
            (f"{table}&offset=<last page>", f"{table}&offset={n - 50}"),
            (f"{table}&state=FAILURE&offset=<50% of its matches>", f"{table}&state=FAILURE&offset={int(n * 0.04)}"),
            ("/ui/workers.json", "/ui/workers.json"),
            ("/ui/failures.json (failure groups)", "/ui/failures.json"),
            ("/ui/graphs.json", "/ui/graphs.json"),
            ("/api/workers", "/api/workers"),
            ("/metrics", "/metrics"),
            # Last: without a capped total these took minutes, and the server goes on counting
            # after the client has given up.
            (f"{table}&search=<common term, ~8%>", f"{table}&search=customer-1"),
            (f"{table}&search=<commonest term, ~70%>", f"{table}&search=customer"),
        ]

    def queries(self, monitor: OurMonitor) -> None:
        slow = []
        for metric, path in self.paths():
            try:
                lat = measure.latency(monitor, path, self.bench.config.latency_runs)
            except httpx.TimeoutException:
                slow.append(metric)
                self.row(f"GET {metric} (median / p95)", "✗ no answer within the client's 60 s")
                continue
            if lat.status != 200:
                raise SystemExit(f"GET {path} answered {lat.status}")
            held = lat.p95_ms < TARGET_MS
            if not held:
                slow.append(metric)
            self.row(f"GET {metric} (median / p95)",
                     f"{lat.median_ms:.1f} / {lat.p95_ms:.1f} ms {'✓' if held else '✗ over 100 ms'}")
        slow += self.keyset_pages(monitor)
        self.row("queries under 100 ms at p95", "all" if not slow else f"all but {len(slow)}: {'; '.join(slow)}")

    def keyset_pages(self, monitor: OurMonitor) -> list[str]:
        """The task table's Next and Previous from a deep page: the cursors the page sends (``after``,
        ``before``), taken from the answer to the 50%-deep page."""
        table = "/ui/tasks.json?limit=50&sort_by=-received"
        slow = []
        for filters, share in (("", 0.5), ("&state=FAILURE", 0.04)):
            deep = monitor.client.get(f"{table}{filters}&offset={int(self.tasks * share)}").json()
            for step, key in (("Next", "next"), ("Previous", "prev")):
                metric = f"{table}{filters}&{'after' if key == 'next' else 'before'}=<cursor {share:.0%} deep> ({step})"
                cursor = deep.get(key)
                if not cursor:
                    self.row(f"GET {metric} (median / p95)", "not offered (no cursor in the answer)")
                    continue
                param = "after" if key == "next" else "before"
                lat = measure.latency(monitor, f"{table}{filters}&{param}={cursor}", self.bench.config.latency_runs)
                if lat.status != 200:
                    raise SystemExit(f"GET {metric} answered {lat.status}")
                held = lat.p95_ms < TARGET_MS
                self.row(f"GET {metric} (median / p95)",
                         f"{lat.median_ms:.1f} / {lat.p95_ms:.1f} ms {'✓' if held else '✗ over 100 ms'}")
                if not held:
                    slow.append(metric)
        return slow

    # -- ingest with the history full --------------------------------------------------------------

    def ingest(self, monitor: OurMonitor, publisher: brokers.RedisPublisher, redis: brokers.PrivateRedis,
               history: str = "at --max_tasks (each new task trims an old one)", search_after: bool = True) -> None:
        cfg = self.bench.config
        factory = self.factory
        measure.wait_reading(monitor, lambda: publisher.publish(brokers.Encoded(factory.probe(time.time())[1]), None))
        best = 0
        dropped_before = metric(monitor, "celery_monitor_store_writes_dropped_total")
        for rate in self.rates:
            segment = factory.segment(int(rate * cfg.seconds), time.time(), rate)
            coded = brokers.Encoded(segment)
            before = redis.dropped_subscribers()
            with Poller(str(monitor.client.base_url), "/ui/tasks.json?limit=50&sort_by=-received", []) as poller:
                result = measure.ingest(monitor, lambda r, c=coded: publisher.publish(c, r), segment, rate,
                                        cfg.settle, cfg.max_wait)
                written = wait_written(monitor, 120)
            dropped = metric(monitor, "celery_monitor_store_writes_dropped_total") - dropped_before
            self.bench.sample_load()
            lag = None if written is None else result.drain_seconds + written
            kept_up = result.lost == 0 and lag is not None and lag <= 3.0 and dropped == 0
            if kept_up:
                best = rate
            self.log(f"  PostgreSQL ingest @ {rate}/s: {result.ingested}/{result.published}, written "
                     f"{'never' if written is None else f'{written:.1f}s'} after counted")
            self.row(f"ingest {rate:,} task events/s for {cfg.seconds:g} s {history}: lost / all written to "
                     "PostgreSQL within",
                     f"{result.lost:,} / {'not within 120 s' if lag is None else f'{lag:.1f} s'} of the end"
                     f"{'' if not dropped else f' ({dropped:.0f} writes dropped)'}"
                     f"{'' if redis.dropped_subscribers() == before else ' (Redis dropped the subscriber)'}")
            self.row(f"…meanwhile GET /ui/tasks.json?limit=50&sort_by=-received at {rate:,} ev/s "
                     "(median / p95 / max)", poller.summary())
            if not kept_up:
                break
        self.row("highest rate written to PostgreSQL with zero loss, ≤ 3 s behind", best, "ev/s")
        self.row(f"ingest target ≥ {TARGET_RATE:,} task events/s", "holds" if best >= TARGET_RATE else "does not hold")
        if search_after:
            self.search_after_ingest(monitor)

    def search_after_ingest(self, monitor: OurMonitor) -> None:
        """The task table's search right after the ingest, while the search table (filled behind the
        writer) still lacks the newest tasks (scanned meanwhile); and how long it takes to catch up."""
        path = "/ui/tasks.json?limit=50&sort_by=-received&search=customer-1234"
        started = time.monotonic()
        with pg_seed.connect(self.database) as conn:
            row = conn.execute("SELECT (SELECT max(seq) FROM tasks) - watermark FROM search_state").fetchone()
        behind = int(row[0]) if row and row[0] is not None else 0
        lat = measure.latency(monitor, path, self.bench.config.latency_runs)
        self.row(f"GET {path.replace('customer-1234', '<term>')} right after the ingest, {behind:,} tasks not in "
                 "the search table yet (median / p95)", f"{lat.median_ms:.1f} / {lat.p95_ms:.1f} ms")
        while time.monotonic() - started < 600 and behind > 0:
            time.sleep(1)
            with pg_seed.connect(self.database) as conn:
                row = conn.execute("SELECT (SELECT max(seq) FROM tasks) - watermark FROM search_state").fetchone()
            behind = int(row[0]) if row and row[0] is not None else 0
        self.row("…the search table caught up after (from the end of the ingest, those requests included)",
                 f"{time.monotonic() - started:.0f} s" if behind <= 0 else "not within 600 s")
        lat = measure.latency(monitor, path, self.bench.config.latency_runs)
        self.row(f"GET {path.replace('customer-1234', '<term>')} once caught up (median / p95)",
                 f"{lat.median_ms:.1f} / {lat.p95_ms:.1f} ms {'✓' if lat.p95_ms < TARGET_MS else '✗ over 100 ms'}")

    # -- retention by age --------------------------------------------------------------------------

    def age_retention(self, monitor: OurMonitor, workdir: Path, redis: brokers.PrivateRedis) -> None:
        with pg_seed.connect(self.database) as conn:
            row = conn.execute(f"SELECT min({pg_seed.FIRST_SEEN}), max({pg_seed.FIRST_SEEN}) FROM tasks WHERE seq IN "
                               "((SELECT min(seq) FROM tasks), (SELECT max(seq) FROM tasks))").fetchone()
        assert row is not None
        oldest, newest = row
        before = pg_seed.task_count(self.database) or 0
        age = time.time() - (oldest + (newest - oldest) * AGE_TRIM_SHARE)
        monitor.stop()
        aged = OurMonitor(redis.url, workdir, before, self.url, extra=[f"--max_task_age={age:.0f}s"])
        try:
            with Poller(str(aged.client.base_url), "/ui/tasks.json?limit=50&sort_by=-received", []) as poller:
                aged.start(300)
                started = time.monotonic()
                while time.monotonic() - started < 600:
                    count = pg_seed.task_count(self.database) or 0
                    if before - count >= before * AGE_TRIM_SHARE * 0.95:
                        break
                    time.sleep(0.5)
                seconds = time.monotonic() - started
            self.row(f"--max_task_age={age / 3600:.1f}h: tasks trimmed by age after the start, and how long",
                     f"{before - count:,} in {seconds:.1f} s")
            self.row("…meanwhile GET /ui/tasks.json?limit=50&sort_by=-received (median / p95 / max)", poller.summary())
        finally:
            aged.close()
