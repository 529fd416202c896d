"""The benchmark: Flower 2.2, celery-monitor and the bare read-and-decode ceiling on one event stream.

Run it with ``bench/run`` (``--quick`` for a short run, ``--smoke`` for a seconds-long check).
Each contender gets the very same pre-generated messages (same bytes, same pacing), one
contender at a time, so they do not fight over the machine's cores; brokers are private (a
redis-server of our own, a RabbitMQ vhost of our own).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brokers
import clusters
import measure
import pg_history
import pg_seed
import report
import seed
import soak
from contenders import AmqpCeiling, Ceiling, Contender, Flower, OurMonitor, ensure_flower
from report import CEILING, FLOWER, OURS, Row
from stream import Segment, StreamFactory

RESULTS = Path(__file__).resolve().parent / "results"
SETTLE_MEMORY = 5.0  # seconds after the stream at which memory is measured again, the backlog gone
LAG_LIMIT = 3.0  # seconds after publishing ends within which a consumer that keeps up has caught up
SEARCH_TERM = "customer-1234"
SEARCH_CAUGHT_UP = 2_000  # tasks not in the search index at most, for it to count as caught up
SEARCH_WAIT = 300.0  # seconds to wait at most for that


def search_tail(contender: Contender) -> int | None:
    """How many of our monitor's tasks its search index does not hold yet (the rows a search scans),
    read from its history file; None for the others."""
    db = getattr(contender, "db", None)
    if not isinstance(contender, OurMonitor) or not isinstance(db, Path) or not db.exists():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        high, watermark, skipped = conn.execute(
            "SELECT (SELECT max(seq) FROM tasks), (SELECT watermark FROM search_state),"
            " (SELECT count(*) FROM search_skipped)").fetchone()
    finally:
        conn.close()
    return max(0, (high or 0) - (watermark or 0)) + skipped


@dataclass
class Config:
    mode: str
    rates: list[int]
    seconds: float
    burst: int
    history: int
    samples: int
    latency_runs: int
    contenders: list[str]
    brokers: list[str]
    amqp_rates: list[int]
    burst_seconds: float = 2.0  # the burst is published over this long (0: as fast as the socket takes it)
    # Bursts published as fast as one publisher can, after everything else (Redis only).
    fast_bursts: list[int] = field(default_factory=list)
    settle: float = 3.0
    max_wait: float = 90.0
    output: Path = field(default_factory=lambda: RESULTS / "latest.md")
    history_cache: Path | None = None
    soak_minutes: float | None = None
    soak_rate: int = 2_000
    soak_flat: float = 30.0
    pg_history: int | None = None
    pg_empty: bool = False
    pg_rates: list[int] = field(default_factory=list)
    pg_keep: bool = False
    pg_queries_only: bool = False
    clusters: int | None = None
    cluster_rates: list[int] = field(default_factory=list)
    cluster_seconds: float = 20.0


MODES = {
    "smoke": dict(rates=[500], seconds=1.0, burst=2_000, history=2_000, samples=20, latency_runs=3,
                  contenders=[CEILING, OURS], brokers=["redis"], amqp_rates=[500], fast_bursts=[5_000]),
    "quick": dict(rates=[2_000, 8_000, 32_000], seconds=3.0, burst=50_000, history=100_000, samples=100,
                  latency_runs=10, contenders=[CEILING, FLOWER, OURS], brokers=["redis", "rabbitmq"],
                  amqp_rates=[2_000, 8_000], fast_bursts=[200_000]),
    "full": dict(rates=[2_000, 4_000, 8_000, 16_000, 32_000, 48_000, 64_000], seconds=10.0, burst=200_000,
                 history=1_000_000, samples=200, latency_runs=50, contenders=[CEILING, FLOWER, OURS],
                 brokers=["redis", "rabbitmq"], amqp_rates=[2_000, 4_000, 8_000, 16_000, 32_000, 48_000, 64_000],
                 fast_bursts=[200_000, 1_000_000]),
}


def parse_args(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", dest="mode", action="store_const", const="quick", help="a short run (minutes)")
    group.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                       help="seconds long, ours and the ceiling only (used by the test suite)")
    group.add_argument("--full", dest="mode", action="store_const", const="full", help="the full targets (default)")
    parser.add_argument("--rates", help="comma-separated sustained rates, task events per second")
    parser.add_argument("--seconds", type=float, help="seconds per sustained rate")
    parser.add_argument("--burst", type=int, help="task events in the burst")
    parser.add_argument("--burst-seconds", type=float,
                        help="seconds over which the burst is published (default 2; 0 = as fast as possible)")
    parser.add_argument("--fast-bursts",
                        help="comma-separated task events of the bursts published as fast as one publisher can "
                             "(Redis; 0 for none)")
    parser.add_argument("--history", type=int, help="tasks in the seeded history (start-up and query timing)")
    parser.add_argument("--samples", type=int, help="tasks whose final state is checked per segment")
    parser.add_argument("--latency-runs", type=int, help="requests per API latency (the median is reported)")
    parser.add_argument("--contenders", help=f"comma-separated, of: {CEILING!r}, {FLOWER!r}, {OURS!r}")
    parser.add_argument("--brokers", help="comma-separated, of: redis, rabbitmq")
    parser.add_argument("--amqp-rates", help="comma-separated sustained rates on RabbitMQ")
    parser.add_argument("--history-cache", type=Path,
                        help="keep the seeded history in this file and reuse it on later runs (same --history)")
    parser.add_argument("--output", type=Path, help="where to write the table (default bench/results/latest.md)")
    parser.add_argument("--soak", type=float, metavar="MINUTES",
                        help="instead: the steady run, ours only, for this many minutes (writes results/soak.md)")
    parser.add_argument("--soak-rate", type=int, default=2_000, help="task events/s of the steady run")
    parser.add_argument("--soak-flat", type=float, default=30.0, metavar="MINUTES",
                        help="end the steady run once memory has been flat this long")
    parser.add_argument("--pg-history", type=int, metavar="TASKS",
                        help="instead: ours on PostgreSQL with this many tasks of history (writes "
                             "results/postgresql.md; 10,000,000 for the targets)")
    parser.add_argument("--pg-rates", default="2000,4000,8000,16000,32000",
                        help="comma-separated ingest rates of the PostgreSQL section (task events/s)")
    parser.add_argument("--pg-keep", action="store_true",
                        help="keep the PostgreSQL history database for later runs, and reuse one that holds "
                             "--pg-history tasks")
    parser.add_argument("--pg-empty", action="store_true",
                        help="first the PostgreSQL section's ingest rates into an empty database (a new monitor's "
                             "start), then the history")
    parser.add_argument("--pg-queries-only", action="store_true",
                        help="the PostgreSQL section's queries only (no ingest, no retention): before/after a change")
    parser.add_argument("--clusters", type=int, metavar="N",
                        help="instead: one monitor on N clusters (Redis databases), a steady stream on each "
                             "(writes results/clusters-N.md)")
    parser.add_argument("--cluster-rates", default="100,250,500",
                        help="comma-separated task events/s per cluster of the --clusters rounds (--seconds each, "
                             "default 20)")
    args = parser.parse_args(argv)
    mode = args.mode or "full"
    values = dict(MODES[mode])
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    names = lambda text: [x.strip() for x in text.split(",") if x.strip()]  # noqa: E731
    for key, convert in (("rates", ints), ("amqp_rates", ints), ("contenders", names), ("brokers", names),
                         ("fast_bursts", lambda text: [n for n in ints(text) if n > 0])):
        if getattr(args, key) is not None:
            values[key] = convert(getattr(args, key))
    for key in ("seconds", "burst", "burst_seconds", "history", "samples", "latency_runs"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    unknown = set(values["contenders"]) - {CEILING, FLOWER, OURS}
    if unknown:
        parser.exit(2, f"bench/run: error: unknown contender(s): {', '.join(sorted(unknown))}\n")
    config = Config(mode=mode, **values)  # type: ignore[arg-type]
    if args.output is not None:
        config.output = args.output
    config.history_cache = args.history_cache
    config.soak_minutes = args.soak
    config.soak_rate = args.soak_rate
    config.soak_flat = args.soak_flat
    config.pg_history = args.pg_history
    config.pg_empty = args.pg_empty
    config.pg_rates = ints(args.pg_rates)
    config.pg_keep = args.pg_keep
    config.pg_queries_only = args.pg_queries_only
    config.clusters = args.clusters
    try:
        config.cluster_rates = ints(args.cluster_rates)
    except ValueError:
        parser.exit(2, f"bench/run: error: --cluster-rates: not a list of numbers: {args.cluster_rates!r}\n")
    if args.clusters is not None and (args.clusters < 2 or not config.cluster_rates
                                      or min(config.cluster_rates) <= 0):
        parser.exit(2, "bench/run: error: --clusters needs at least 2 clusters and positive --cluster-rates\n")
    if args.seconds is not None:
        config.cluster_seconds = args.seconds
    return config


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, config: Config, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.rows: list[Row] = []
        self.factory = StreamFactory()
        self.loads: list[float] = []
        self.flower_kb_per_task: float | None = None
        self.reused_history = False
        self.stream_shape = ""

    def row(self, section: str, metric: str, label: str, value: float | str | None, unit: str = "",
            higher: bool | None = None, note: str = "") -> None:
        for row in self.rows:
            if row.section == section and row.metric == metric:
                row.values[label] = value
                return
        self.rows.append(Row(section, metric, {label: value}, unit, higher, note))

    def sample_load(self) -> None:
        self.loads.append(os.getloadavg()[0])

    # -- the stream ------------------------------------------------------------------------------

    def make_stream(self, rates: list[int]) -> tuple[list[Segment], Segment]:
        start = time.time()
        segments = [self.factory.segment(int(rate * self.config.seconds), start, rate) for rate in rates]
        burst = self.factory.segment(self.config.burst, start, 200_000)
        messages = [m for s in [*segments, burst] for m in s.messages]
        if messages and not self.stream_shape:
            events = sum(m.events for m in messages)
            size = sum(len(m.body) for m in messages) / len(messages)
            self.stream_shape = (f"{events / len(messages):.1f} events and {size:,.0f} bytes of JSON body"
                                 " per message on average")
        return segments, burst

    # -- one broker, one contender ---------------------------------------------------------------

    def contender(self, label: str, broker_url: str, redis_port: int, name: str) -> Contender:
        workdir = self.workdir / name
        max_tasks = max(self.config.history, 100_000)
        if label == CEILING:
            return Ceiling(redis_port, workdir)
        if label == FLOWER:
            return Flower(broker_url, workdir, max_tasks)
        return OurMonitor(broker_url, workdir, max_tasks)

    def run_stream(self, broker: str, label: str, contender: Contender, publish, segments: list[Segment],
                   burst: Segment, rates: list[int], section: str,
                   fast: list[Segment] | None = None) -> None:  # type: ignore[no-untyped-def]
        cfg = self.config
        self.row(section, "start-up, empty history (until HTTP answers)", label, contender.start(), "s", False)
        online = self.factory.online(time.time())
        reading = measure.wait_reading(contender, lambda: publish(self.factory.probe(time.time())[1], None))
        self.row(section, "start-up until events are read", label, reading, "s", False)
        publish(online, None)
        rss_start = contender.rss()
        cpu_start = contender.cpu()
        total = 0
        saturated = False
        zero_loss = 0
        best = 0.0
        published: list[Segment] = []
        for rate, segment in zip(rates, segments, strict=True):
            metric = f"sustained {rate:,} ev/s for {cfg.seconds:g}s: events lost"
            if saturated:  # past the rate where it lost events: spare the time, note it
                self.row(section, metric, label, "skipped")
                continue
            published.append(segment)
            total += segment.task_events
            result = measure.ingest(contender, lambda r, s=segment: publish(s, r), segment, rate, cfg.settle,
                                    cfg.max_wait)
            self.sample_load()
            log(f"  {label} @ {rate}/s: ingested {result.ingested}/{result.published} "
                f"({result.throughput:,.0f} ev/s, drained {result.drain_seconds:.1f}s after publishing)")
            lost_pct = 100.0 * result.lost / result.published
            self.row(section, metric, label, f"{result.lost:,} ({lost_pct:.1f}%)")
            best = max(best, result.throughput)
            if result.lost == 0 and result.drain_seconds <= LAG_LIMIT:
                zero_loss = rate
            else:
                saturated = True
        self.row(section, f"highest sustained rate with zero loss and ≤ {LAG_LIMIT:g} s lag", label, zero_loss,
                 "ev/s", True)
        self.row(section, "best ingest throughput seen", label, best, "ev/s", True)

        burst_rate = burst.events / cfg.burst_seconds if cfg.burst_seconds > 0 else None
        result = measure.ingest(contender, lambda r: publish(burst, r), burst, burst_rate, cfg.settle, cfg.max_wait)
        self.sample_load()
        log(f"  {label} burst: ingested {result.ingested}/{result.published} in {result.publish_seconds:.2f}s "
            f"publish + {result.drain_seconds:.1f}s drain")
        self.row(section, f"burst of {burst.task_events:,} task events in {cfg.burst_seconds:g} s: events lost", label,
                 f"{result.lost:,} ({100.0 * result.lost / result.published:.1f}%)")
        self.row(section, "burst: time to publish it", label, result.publish_seconds, "s")
        self.row(section, "burst: drained after publishing ended", label, result.drain_seconds, "s", False)
        self.row(section, "burst: ingest throughput", label, result.throughput, "ev/s", True)
        cpu = contender.cpu() - cpu_start
        total += burst.task_events
        self.row(section, "task events per CPU-second of the contender (rates + burst)", label,
                 total / cpu if cpu else None, "ev/s", True, note="robust to the machine's other load")

        if contender.has_api:
            right, picked = measure.sample_states(contender, segments[0], cfg.samples)
            self.row(section, "final state right, sample of first rate's tasks", label, f"{right}/{picked}")
            right, picked = measure.sample_states(contender, burst, cfg.samples)
            self.row(section, "final state right, sample of the burst's tasks", label, f"{right}/{picked}")
            if isinstance(contender, OurMonitor):
                status = contender.client.get("/api/monitor/status").json()["receiver"]
                self.row(section, "receiver: dropped messages / broker disconnects", label,
                         f"{status['messages_dropped']} / {status['broker_disconnects']}")
        rss = contender.rss()
        self.row(section, "resident memory right after the stream (burst backlog included)", label, rss / 2**20,
                 "MB", False)
        time.sleep(SETTLE_MEMORY)
        self.row(section, f"resident memory {SETTLE_MEMORY:g} s later (idle)", label, contender.rss() / 2**20, "MB",
                 False)
        if label == FLOWER:
            self.flower_kb_per_task = max(0, rss - rss_start) / 1024 / max(1, sum(
                len(s.final_states) for s in [*published, burst]))
        if broker == "redis" and contender.has_api:
            self.history_checks(section, label, contender, [*published, burst], rss_start, rss)
        for segment in fast or []:
            self.fast_burst(section, label, contender, publish, segment)
        if fast and isinstance(contender, OurMonitor):
            status = contender.client.get("/api/monitor/status").json()["receiver"]
            self.row(section, "receiver: dropped messages / broker disconnects", label,
                     f"{status['messages_dropped']} / {status['broker_disconnects']}")

    def fast_burst(self, section: str, label: str, contender: Contender, publish, segment: Segment) -> None:  # type: ignore[no-untyped-def]
        """One burst published as fast as one pipelined publisher can (after the rest of the stream)."""
        cfg = self.config
        max_wait = max(cfg.max_wait, segment.task_events / 10_000)
        # A contender restarted by the history checks may not be subscribed yet.
        measure.wait_reading(contender, lambda: publish(self.factory.probe(time.time())[1], None))
        result = measure.ingest(contender, lambda r: publish(segment, r), segment, None, cfg.settle, max_wait)
        self.sample_load()
        log(f"  {label} fast burst: ingested {result.ingested}/{result.published} in {result.publish_seconds:.2f}s "
            f"publish + {result.drain_seconds:.1f}s drain")
        name = f"burst of {segment.task_events:,} task events as fast as one publisher can"
        self.row(section, f"{name}: events lost", label,
                 f"{result.lost:,} ({100.0 * result.lost / result.published:.1f}%)")
        rate = segment.task_events / result.publish_seconds if result.publish_seconds else 0
        self.row(section, f"{name}: time to publish it (the publisher's rate)", label,
                 f"{result.publish_seconds:.2f} s ({rate:,.0f} ev/s)")
        self.row(section, f"{name}: drained after publishing ended", label, result.drain_seconds, "s", False)

    def history_checks(self, section: str, label: str, contender: Contender, segments: list[Segment],
                       rss_start: int, rss: int) -> None:
        """Latencies, memory per task and restart time at the history the stream left behind."""
        cfg = self.config
        tasks = sum(len(s.final_states) for s in segments)
        self.row(section, "tasks published to it (all retained)", label, tasks, "")
        self.row(section, "memory per retained task (RSS growth ÷ tasks)", label,
                 max(0, rss - rss_start) / 1024 / max(1, tasks), "KB", False)
        behind = search_tail(contender)
        if behind is not None:
            self.row(section, "tasks not yet in the search index when the queries below start", label, behind)
        for metric, path in self.api_paths(segments[0], tasks):
            lat = measure.latency(contender, path, cfg.latency_runs)
            self.row(section, f"GET {metric} (median)", label, lat.median_ms, "ms", False)
        if behind is not None:
            self.search_caught_up(section, label, contender)
        contender.stop()
        started = time.monotonic()
        contender.start()
        measure_first = lambda: contender.client.get("/api/tasks?limit=100").status_code == 200  # noqa: E731
        brokers.wait_until(measure_first, 300, f"{label} to answer /api/tasks after a restart", 0.02)
        self.row(section, "restart with this history (until /api/tasks answers)", label,
                 time.monotonic() - started, "s", False)

    def search_caught_up(self, section: str, label: str, contender: Contender) -> None:
        """The search again once the index has caught up with the stream: the steady state's latency."""
        started = time.monotonic()
        while (search_tail(contender) or 0) > SEARCH_CAUGHT_UP and time.monotonic() - started < SEARCH_WAIT:
            time.sleep(0.5)
        behind = search_tail(contender)
        waited = time.monotonic() - started
        self.row(section, "search index caught up (tasks not in it) after the queries above", label,
                 f"{waited:.1f} s later ({behind:,} not in it)" if behind is not None else None)
        lat = measure.latency(contender, f"/api/tasks?limit=100&search={SEARCH_TERM}", self.config.latency_runs)
        self.row(section, "GET /api/tasks?limit=100&search=<term> once the index caught up (median)", label,
                 lat.median_ms, "ms", False)

    def api_paths(self, segment: Segment, retained: int) -> list[tuple[str, str]]:
        some = list(segment.final_states)
        name = self.factory.names[0]
        search = SEARCH_TERM
        return [
            ("/api/tasks?limit=100", "/api/tasks?limit=100"),
            ("/api/tasks?limit=100&state=FAILURE", "/api/tasks?limit=100&state=FAILURE"),
            ("/api/tasks?limit=100&taskname=<name>", f"/api/tasks?limit=100&taskname={name}"),
            ("/api/tasks?limit=100&workername=<worker>", "/api/tasks?limit=100&workername=celery@worker-007"),
            ("/api/tasks?limit=100&search=<term>", f"/api/tasks?limit=100&search={search}"),
            ("/api/tasks?limit=100&offset=<90% deep>", f"/api/tasks?limit=100&offset={int(retained * 0.9)}"),
            ("/api/task/info/<id>", f"/api/task/info/{some[len(some) // 3]}"),
            ("/api/workers", "/api/workers"),
            ("/metrics", "/metrics"),
        ]

    def dashboard_paths(self, retained: int) -> list[tuple[str, str]]:
        """The dashboard's task table: a page of rows and the filtered total, in one request."""
        name = self.factory.names[0]
        return [
            ("/ui/tasks.json?limit=50 (dashboard table)", "/ui/tasks.json?limit=50"),
            ("/ui/tasks.json?limit=50&state=FAILURE", "/ui/tasks.json?limit=50&state=FAILURE"),
            ("/ui/tasks.json?limit=50&taskname=<name>", f"/ui/tasks.json?limit=50&taskname={name}"),
            ("/ui/tasks.json?limit=50&search=<term>", "/ui/tasks.json?limit=50&search=customer-1234"),
            ("/ui/tasks.json?limit=50&offset=<90% deep>", f"/ui/tasks.json?limit=50&offset={int(retained * 0.9)}"),
        ]

    # -- brokers ---------------------------------------------------------------------------------

    def run_redis(self) -> None:
        cfg = self.config
        log(f"generating the stream: {cfg.rates} ev/s x {cfg.seconds:g}s and a burst of {cfg.burst:,}")
        segments, burst = self.make_stream(cfg.rates)
        if cfg.fast_bursts:
            log(f"generating the bursts published as fast as one publisher can: {cfg.fast_bursts}")
        fast = [self.factory.segment(n, time.time(), 200_000) for n in cfg.fast_bursts]
        redis = brokers.PrivateRedis(self.workdir).start()
        try:
            encoded = {id(s): brokers.Encoded(s) for s in [*segments, burst, *fast]}
            for label in cfg.contenders:
                log(f"redis: {label}")
                publisher = brokers.RedisPublisher(redis.port)
                contender = self.contender(label, redis.url, redis.port, f"redis-{label.replace(' ', '-')}")

                def publish(segment: Segment, rate: float | None, publisher=publisher) -> float:  # type: ignore[no-untyped-def]
                    coded = encoded.get(id(segment)) or brokers.Encoded(segment)
                    return publisher.publish(coded, rate)

                try:
                    disconnects = redis.dropped_subscribers()
                    self.run_stream("redis", label, contender, publish, segments, burst, cfg.rates,
                                    "Redis: ingest, memory, API latency and restart at the stream's history", fast)
                    after = redis.dropped_subscribers()
                    self.row("Redis: ingest, memory, API latency and restart at the stream's history",
                             "Redis dropped the subscriber (output buffer limit)", label, f"{after - disconnects}x")
                finally:
                    contender.close()
                    publisher.close()
        finally:
            redis.stop()

    def run_rabbitmq(self) -> None:
        cfg = self.config
        labels = cfg.contenders
        log(f"generating the RabbitMQ stream: {cfg.amqp_rates} ev/s x {cfg.seconds:g}s")
        segments, burst = self.make_stream(cfg.amqp_rates)
        for label in labels:
            log(f"rabbitmq: {label}")
            vhost = brokers.RabbitVhost().start()
            publisher = brokers.AmqpPublisher(vhost.name)
            contender = (AmqpCeiling(vhost.name, self.workdir / "amqp-ceiling") if label == CEILING
                         else self.contender(label, vhost.url, 0, f"amqp-{label.replace(' ', '-')}"))
            try:
                self.run_stream("rabbitmq", label, contender, publisher.publish, segments, burst, cfg.amqp_rates,
                                "RabbitMQ: ingest")
            finally:
                contender.close()
                publisher.close()
                vhost.stop()

    def run_history(self) -> None:
        """Ours with a large seeded history: start-up, memory, query latency, ingest while trimming."""
        cfg = self.config
        if OURS not in cfg.contenders:
            return
        section = f"celery-monitor with {cfg.history:,} tasks of history (seeded through SQLiteStore.write)"
        db = self.workdir / "history" / "monitor.db"
        db.parent.mkdir(parents=True)
        cache = cfg.history_cache
        if cache is not None and cache.exists() and cache.with_suffix(".ids").exists():
            log(f"copying the seeded history from {cache}")
            self.reused_history = True
            shutil.copyfile(cache, db)
            some = cache.with_suffix(".ids").read_text().split()
        else:
            log(f"seeding {cfg.history:,} tasks")
            seconds, some = seed.seed_history(db, cfg.history, self.factory)
            log(f"  seeded in {seconds:.0f}s ({db.stat().st_size / 2**20:.0f} MB)")
            if cache is not None:
                shutil.copyfile(db, cache)
                cache.with_suffix(".ids").write_text("\n".join(some))
        redis = brokers.PrivateRedis(self.workdir).start()
        monitor = OurMonitor(redis.url, db.parent, cfg.history, db)
        publisher = brokers.RedisPublisher(redis.port)
        try:
            started = time.monotonic()
            monitor.start()
            up = time.monotonic() - started
            brokers.wait_until(lambda: monitor.client.get("/api/tasks?limit=100").status_code == 200, 300,
                               "/api/tasks", 0.02)
            self.row(section, "start-up until HTTP answers", OURS, up, "s", False)
            self.row(section, "start-up until /api/tasks?limit=100 answers", OURS, time.monotonic() - started, "s",
                     False)
            self.row(section, "resident memory after start-up", OURS, monitor.rss() / 2**20, "MB", False)
            if self.flower_kb_per_task is not None:
                self.row(section, "resident memory after start-up", FLOWER,
                         f"~{self.flower_kb_per_task * cfg.history / 1024:,.0f} MB (extrapolated, all in memory)")
            paths = self.api_paths(Segment(final_states={u: "SUCCESS" for u in some}), cfg.history)
            paths[6] = ("/api/task/info/<id>", f"/api/task/info/{some[len(some) // 2]}")
            for metric, path in [*paths, *self.dashboard_paths(cfg.history)]:
                lat = measure.latency(monitor, path, cfg.latency_runs)
                if lat.status != 200:
                    raise SystemExit(f"GET {path} answered {lat.status}")
                self.row(section, f"GET {metric} (median, p95)", OURS, f"{lat.median_ms:.1f} / {lat.p95_ms:.1f} ms")
            self.sample_load()
            self.ingest_while_trimming(section, monitor, publisher)
            self.row(section, "resident memory at the end", OURS, monitor.rss() / 2**20, "MB", False)
        finally:
            monitor.close()
            publisher.close()
            redis.stop()

    def ingest_while_trimming(self, section: str, monitor: OurMonitor, publisher: brokers.RedisPublisher) -> None:
        """Keep the history at --max_tasks while events arrive; time /api/tasks all along."""
        cfg = self.config
        rate = min(max(cfg.rates), 16_000)
        segment = self.factory.segment(int(rate * max(cfg.seconds, 5)), time.time(), rate)
        coded = brokers.Encoded(segment)
        measure.wait_reading(monitor, lambda: publisher.publish(brokers.Encoded(self.factory.probe(time.time())[1]),
                                                                None))
        import threading

        times: list[float] = []
        done = threading.Event()

        def poll() -> None:
            import httpx

            with httpx.Client(base_url=str(monitor.client.base_url), timeout=60) as client:
                while not done.is_set():
                    started = time.perf_counter()
                    client.get("/api/tasks?limit=100")
                    times.append((time.perf_counter() - started) * 1000)
                    time.sleep(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        result = measure.ingest(monitor, lambda r: publisher.publish(coded, r), segment, rate, cfg.settle,
                                cfg.max_wait)
        time.sleep(2.5)  # one more trim period of the store writer
        done.set()
        poller.join()
        times.sort()
        self.row(section, f"ingest {rate:,} ev/s at --max_tasks (trimming): events lost", OURS,
                 f"{result.lost:,} of {result.published:,}")
        if times:
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            self.row(section, "…meanwhile GET /api/tasks?limit=100 (median / p99 / max)", OURS,
                     f"{times[len(times) // 2]:.1f} / {p99:.1f} / {times[-1]:.1f} ms")


def machine() -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}"]


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cmon-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stop_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(f"bench/run: stopped by signal {signum}")


def main(argv: list[str] | None = None) -> None:
    # Stopping the run must still stop its brokers and contenders (the finally blocks).
    signal.signal(signal.SIGTERM, stop_on_signal)
    config = parse_args(sys.argv[1:] if argv is None else argv)
    if config.soak_minutes is not None:
        output = config.output if config.output != RESULTS / "latest.md" else RESULTS / "soak.md"
        with workdir() as path:
            soak.soak(path, config.soak_minutes, config.soak_rate, 100_000, output, config.soak_flat)
        return
    command = "bench/run " + " ".join(sys.argv[1:] if argv is None else argv)
    started = time.time()
    if config.pg_history is not None:
        output = config.output if config.output != RESULTS / "latest.md" else RESULTS / "postgresql.md"
        with workdir() as path:
            bench = Bench(config, path)
            bench.sample_load()
            pg_history.PgHistory(bench, config.pg_history, config.pg_keep, config.pg_rates, log,
                                 config.pg_queries_only, config.pg_empty).run()
            bench.sample_load()
        write(bench, output, render=report.render_ours, header=[
            f"# Benchmark: celery-monitor on PostgreSQL, {config.pg_history:,} tasks",
            "",
            f"Command: `{command.strip()}`; finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            f" after {(time.time() - started) / 60:.1f} min.",
            f"Machine: {machine()[0]}; {pg_server()}, its default settings (shared_buffers 128 MB) on the same "
            f"machine; load average (1 min) during the run: {min(bench.loads):.1f}-{max(bench.loads):.1f} "
            "(other work shares the machine).",
            "Latencies: sequential requests (--latency-runs each, after one warm-up), median and 95th percentile; "
            "target: under 100 ms at p95 (issue #18). Ingest: the bench's Redis stream (see README), published to "
            "a private redis-server; target: 30,000 task events/s written to PostgreSQL.",
        ])
        return
    if config.clusters is not None:
        output = config.output if config.output != RESULTS / "latest.md" else RESULTS / f"clusters-{config.clusters}.md"
        with workdir() as path:
            many = clusters.ClustersBench(path, config.clusters, config.cluster_rates, config.cluster_seconds, log)
            many.run()
        table = many.render([
            f"# Benchmark: celery-monitor on {config.clusters} clusters in one process (issue #21)",
            "",
            f"Command: `{command.strip()}`; finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            f" after {(time.time() - started) / 60:.1f} min.",
            f"Machine: {machine()[0]}; shared with other sessions' tests and benchmarks (load average in the "
            "first table).",
            f"Clusters: {config.clusters - 1} Redis databases of one private redis-server (--databases 32) and "
            f"one private redis-server for the last cluster (stopped in the last round); one monitor with "
            f"--clusters (a reader thread per cluster), SQLite history, started in {many.startup:.1f} s, every "
            f"cluster read {many.reading:.1f} s later. Each cluster gets its own stream of the bench's shape "
            "(40 workers, 30 task names, task.multi batches; see README), at the same per-cluster rate, "
            f"{config.cluster_seconds:g} s per round, paced by one publishing thread.",
            "Applied = the cluster's events_received in /api/monitor/status (every event: task events, "
            "heartbeats); lag at the end = seconds from the end of publishing until the cluster had applied "
            "all of it (as first seen by polling the status every 0.25 s: an upper bound at that resolution, "
            "0.0 when already done at the first poll); "
            "tasks counted = the total of /ui/tasks.json?cluster=NAME, before and after the round. "
            "Latencies: one client asking /api/tasks?cluster=NAME&limit=20 and /ui/tasks.json?cluster=NAME in "
            f"turn, cluster after cluster, {clusters.QUERY_PAUSE * 1000:g} ms apart, while the round runs "
            "(the count of requests in brackets).",
        ])
        print(table)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(table)
        log(f"wrote {output}")
        return
    if FLOWER in config.contenders:
        ensure_flower()
    with workdir() as path:
        bench = Bench(config, path)
        bench.sample_load()
        if "redis" in config.brokers:
            bench.run_redis()
        if "rabbitmq" in config.brokers:
            bench.run_rabbitmq()
        bench.run_history()
        bench.sample_load()
    header = [
        "# Benchmark: celery-monitor vs Flower 2.2",
        "",
        f"Command: `{command.strip()}` (mode {config.mode}); "
        f"finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f" after {(time.time() - started) / 60:.1f} min.",
        f"Machine: {machine()[0]}; load average (1 min) during the run: "
        f"{min(bench.loads):.1f}-{max(bench.loads):.1f} (other work shares the machine).",
        f"Stream: {len(bench.factory.workers)} workers (heartbeat every 2 s), {len(bench.factory.names)} task names, "
        "~8% failures with tracebacks, ~4% retried once; worker events in task.multi batches of 1-24; "
        f"sustained rates {', '.join(f'{r:,}' for r in config.rates)} task events/s for {config.seconds:g} s each; "
        f"{bench.stream_shape}; each contender alone against the same pre-generated messages, on a private redis-server"
        + (" and a private RabbitMQ vhost" if "rabbitmq" in config.brokers else "") + ".",
        "Loss = task events published - task events counted in `flower_events_total` (the ceiling counts itself).",
        f"History rows: the stream's tasks in memory (Flower, --max_tasks={max(config.history, 100_000):,}) or on disk"
        f" (ours); the large history is written through our SQLiteStore.write in bulk, not published"
        + (" (a copy kept from an earlier seeding, --history-cache)." if bench.reused_history else "."),
    ]
    write(bench, config.output, header)


def write(bench: Bench, output: Path, header: list[str], render: Any = report.render) -> None:
    table = render(bench.rows, header)
    print(table)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table)
    log(f"wrote {output}")


def pg_server() -> str:
    with pg_seed.connect("postgres") as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


if __name__ == "__main__":
    main()
