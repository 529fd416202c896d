"""The steady run: ours at a fixed event rate for a long time, resident memory sampled throughout.

With ``--max_tasks`` reached early, everything the monitor retains has a fixed size, so resident
memory must level off; growth after that is a leak. Run it with ``bench/run --soak MINUTES``: it
ends earlier once memory has been flat for ``--soak-flat`` minutes (30 by default), and says so.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import brokers
from contenders import OurMonitor
from stream import StreamFactory

SAMPLE_EVERY = 10.0
SEGMENT_SECONDS = 60.0
FLAT_TOLERANCE_MB = 2.0  # what the window's end may exceed its start by and still count as flat
EDGE_MINUTES = 5.0  # the start and the end of a window are the medians of this many minutes


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def window_growth(samples: list[tuple[float, float]], window: float) -> float | None:
    """How much the median RSS of the last few minutes exceeds that of the window's first few (MB);
    None until the run is a window long."""
    if not samples or samples[-1][0] < window:
        return None
    end = samples[-1][0]
    first = [rss for at, rss in samples if end - window <= at < end - window + EDGE_MINUTES]
    last = [rss for at, rss in samples if at >= end - EDGE_MINUTES]
    return statistics.median(last) - statistics.median(first) if first and last else None


def soak(workdir: Path, minutes: float, rate: int, max_tasks: int, output: Path, flat_minutes: float = 30.0) -> None:
    factory = StreamFactory()
    redis = brokers.PrivateRedis(workdir).start()
    monitor = OurMonitor(redis.url, workdir / "soak", max_tasks)
    publisher = brokers.RedisPublisher(redis.port)
    samples: list[tuple[float, float]] = []  # (minutes since start, RSS MB)
    latencies: list[float] = []
    done = threading.Event()
    try:
        monitor.start()
        started = time.monotonic()

        def sample() -> None:
            while not done.wait(SAMPLE_EVERY):
                samples.append(((time.monotonic() - started) / 60, monitor.rss() / 2**20))
                t = time.perf_counter()
                monitor.client.get("/api/tasks?limit=100")
                latencies.append((time.perf_counter() - t) * 1000)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        publisher.publish(brokers.Encoded(factory.online(time.time())), None)
        before = monitor.task_events()
        published = 0
        flat_at: float | None = None
        while time.monotonic() - started < minutes * 60:
            segment = factory.segment(int(rate * SEGMENT_SECONDS), time.time(), rate)
            publisher.publish(brokers.Encoded(segment), rate)
            published += segment.task_events
            log(f"minute {(time.monotonic() - started) / 60:.0f}: {published:,} task events published, "
                f"RSS {monitor.rss() / 2**20:.0f} MB")
            growth = window_growth(list(samples), flat_minutes)
            if growth is not None and growth <= FLAT_TOLERANCE_MB:
                flat_at = (time.monotonic() - started) / 60
                log(f"flat for {flat_minutes:g} min ({growth:+.1f} MB): done")
                break
        brokers.wait_until(lambda: monitor.task_events() - before >= published, 60, "the monitor to catch up", 0.5)
        ingested = monitor.task_events() - before
        retained = monitor.client.get("/api/monitor/status").json()["store"]["tasks"]
    finally:
        done.set()
        monitor.close()
        publisher.close()
        redis.stop()
    output.write_text(render(minutes, rate, max_tasks, samples, latencies, published, ingested, retained,
                             flat_minutes, flat_at))
    log(f"wrote {output}")


def _at(samples: list[tuple[float, float]], minute: float) -> float:
    return min(samples, key=lambda s: abs(s[0] - minute))[1]


def render(minutes: float, rate: int, max_tasks: int, samples: list[tuple[float, float]], latencies: list[float],
           published: int, ingested: int, retained: int, flat_minutes: float, flat_at: float | None) -> str:
    ran = samples[-1][0]
    settled = [rss for at, rss in samples if at >= min(15.0, ran / 4)]
    marks = sorted({m for m in (1, 5, 15, 30, 45, 60, 90, 120, 150, 180) if m <= ran} | {round(ran)})
    growth = window_growth(samples, flat_minutes)
    verdict = (f"flat for the last {flat_minutes:g} min after {flat_at:.0f} min ({growth:+.1f} MB)" if flat_at
               else f"**not flat**: the last {flat_minutes:g} min grew "
                    f"{'?' if growth is None else f'{growth:+.1f}'} MB (run ended at the {minutes:g}-min limit)")
    lines = [
        "# Steady run: celery-monitor's resident memory over time",
        "",
        f"Command: `bench/run --soak {minutes:g} --soak-rate {rate} --soak-flat {flat_minutes:g}`; finished "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"{rate:,} task events/s for {ran:.0f} min on a private redis-server, `--max_tasks={max_tasks:,}` (reached "
        "after a few minutes, so the retained data has a fixed size from then on); resident memory of the "
        f"monitor's process tree sampled every {SAMPLE_EVERY:g} s. The run ends once the median of its last "
        f"{EDGE_MINUTES:g} min exceeds that of {flat_minutes:g} min earlier by at most {FLAT_TOLERANCE_MB:g} MB.",
        "",
        f"Memory: {verdict}.",
        "",
        "| Measurement | celery-monitor |",
        "|---|---:|",
        *(f"| resident memory at minute {m:g} | {_at(samples, m):.0f} MB |" for m in marks),
        f"| lowest / highest after minute {min(15.0, ran / 4):g} | {min(settled):.0f} / {max(settled):.0f} MB |",
        f"| growth from minute {min(15.0, ran / 4):g} to the end | {settled[-1] - settled[0]:+.0f} MB |",
        f"| task events published / ingested | {published:,} / {ingested:,} |",
        f"| tasks retained at the end | {retained:,} |",
        f"| GET /api/tasks?limit=100 while running (median / max) | {statistics.median(latencies):.1f} / "
        f"{max(latencies):.1f} ms |",
        "",
    ]
    return "\n".join(lines)
