"""Measurements on one running contender: ingest of a segment, a sample of states, API latency."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Protocol

from contenders import Contender
from stream import Segment

POLL = 0.5


class Publisher(Protocol):
    def publish(self, segment: Any, rate: float | None) -> float: ...


@dataclass
class Ingest:
    """What a consumer did with one published segment."""

    published: int
    ingested: int
    publish_seconds: float
    drain_seconds: float  # from the end of publishing until the last event was counted
    busy_seconds: float  # from the start of publishing until the last event was counted

    @property
    def lost(self) -> int:
        return max(0, self.published - self.ingested)

    @property
    def throughput(self) -> float:
        return self.ingested / self.busy_seconds if self.busy_seconds > 0 else 0.0


def wait_reading(contender: Contender, publish_probe: Any, timeout: float = 60) -> float:
    """Publish probe events until the contender counts one; returns the seconds it took.

    A subscriber that is not listening yet simply misses a message, so the probe is repeated.
    """
    started = time.monotonic()
    before = contender.task_events()
    while time.monotonic() - started < timeout:
        publish_probe()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            if contender.task_events() > before:
                return time.monotonic() - started
            time.sleep(0.02)
    raise RuntimeError(f"{contender.label} never counted a probe event")


def ingest(contender: Contender, publish: Any, segment: Segment, rate: float | None, settle: float,
           max_wait: float) -> Ingest:
    """Publish ``segment`` and wait until the contender has counted all of it or stopped counting."""
    before = contender.task_events()
    started = time.monotonic()
    publish_seconds = publish(rate)
    published_at = time.monotonic()
    last, last_change = before, published_at
    interval = POLL
    while True:
        now = time.monotonic()
        try:
            count = contender.task_events()
        except Exception:  # a contender too busy to answer in time is simply asked again
            count = last
        scrape = time.monotonic() - now
        if count != last:
            last, last_change = count, time.monotonic()
        if last - before >= segment.task_events:
            break
        # Scraping /metrics costs the contender CPU: keep it under a fifth of its time.
        interval = max(POLL, 4 * scrape)
        if now - last_change > max(settle, 2.5 * interval) or now - published_at > max_wait:
            break
        time.sleep(interval)
    ingested = last - before
    end = last_change if ingested else published_at
    return Ingest(segment.task_events, ingested, publish_seconds, max(0.0, end - published_at), end - started)


def sample_states(contender: Contender, segment: Segment, count: int) -> tuple[int, int]:
    """How many of ``count`` tasks (spread over the segment) the contender shows in their final state."""
    uuids = list(segment.final_states)
    if not uuids or not contender.has_api:
        return 0, 0
    step = max(1, len(uuids) // count)
    picked = uuids[::step][:count]
    right = sum(1 for uuid in picked if contender.task_state(uuid) == segment.final_states[uuid])
    return right, len(picked)


@dataclass
class Latency:
    median_ms: float
    p95_ms: float
    runs: int
    status: int


def latency(contender: Contender, path: str, runs: int, budget: float = 30.0) -> Latency:
    """Median and 95th percentile of ``runs`` sequential requests (fewer if they exceed ``budget`` s)."""
    times: list[float] = []
    status = 0
    contender.client.get(path)  # warm-up, not counted
    spent = 0.0
    for _ in range(runs):
        started = time.perf_counter()
        response = contender.client.get(path)
        elapsed = time.perf_counter() - started
        status = response.status_code
        times.append(elapsed * 1000)
        spent += elapsed
        if spent > budget:
            break
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return Latency(statistics.median(times), p95, len(times), status)
