"""The text writer on its own: exact lines, escaping, value formatting, and prometheus-client's bytes."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from celery_monitor.metrics.exposition import Counter, Gauge, HistogramFamily, format_value
from celery_monitor.state.histogram import Histogram

ODD = 'a"b\\c\nd'  # every character a label value escapes


def histogram(bounds: tuple[float, ...], counts: list[float], total: float) -> Histogram:
    hist = Histogram(bounds)
    hist.counts = counts
    hist.sum = total
    return hist


def text(*writes: tuple[Counter | Gauge | HistogramFamily, list]) -> str:
    out: list[str] = []
    for family, items in writes:
        family.write(out, items)
    return "".join(out)


def test_counters_and_gauges_are_written_exactly() -> None:
    events = Counter("jobs_total", 'Jobs "done"\\ by\nworker', ("worker", "kind"))
    level = Gauge("level", "Current level")
    assert text(
        (events, [((ODD, "x"), 3), (("w2", ODD), 2_500_000)]),
        (level, [((), 0.25)]),
    ) == (
        '# HELP jobs_total Jobs "done"\\\\ by\\nworker\n'
        "# TYPE jobs_total counter\n"
        'jobs_total{kind="x",worker="a\\"b\\\\c\\nd"} 3.0\n'
        'jobs_total{kind="a\\"b\\\\c\\nd",worker="w2"} 2.5e+06\n'
        "# HELP level Current level\n"
        "# TYPE level gauge\n"
        "level 0.25\n"
    )


def test_histogram_buckets_are_cumulative_with_le_in_sorted_place() -> None:
    family = HistogramFamily("wait_seconds", "Wait", ("zone", "alpha"))
    assert text((family, [(("z1", ODD), histogram((0.5, 2.0), [1, 0, 2], 7.5))])) == (
        "# HELP wait_seconds Wait\n"
        "# TYPE wait_seconds histogram\n"
        'wait_seconds_bucket{alpha="a\\"b\\\\c\\nd",le="0.5",zone="z1"} 1.0\n'
        'wait_seconds_bucket{alpha="a\\"b\\\\c\\nd",le="2.0",zone="z1"} 1.0\n'
        'wait_seconds_bucket{alpha="a\\"b\\\\c\\nd",le="+Inf",zone="z1"} 3.0\n'
        'wait_seconds_count{alpha="a\\"b\\\\c\\nd",zone="z1"} 3.0\n'
        'wait_seconds_sum{alpha="a\\"b\\\\c\\nd",zone="z1"} 7.5\n'
    )


def test_a_series_gone_from_the_input_is_gone_from_the_text() -> None:
    family = Gauge("busy", "Busy", ("worker",))
    assert "w1" in text((family, [(("w1",), 1), (("w2",), 1)]))
    second = text((family, [(("w2",), 0)]))
    assert second.splitlines()[2:] == ['busy{worker="w2"} 0.0']


def test_label_values_must_match_the_label_names() -> None:
    family = Gauge("busy", "Busy", ("worker",))
    with pytest.raises(ValueError):
        family.write([], [(("w1", "extra"), 1)])
    with pytest.raises(ValueError):
        Gauge("bad-name", "Bad")
    with pytest.raises(ValueError):
        HistogramFamily("h", "H", ("le",))


EDGE_VALUES: list[float] = [
    0, 1, -1, 7, 999_999, 1_000_000, -999_999, -1_000_000, 10**7, 123_456_789, 2**53 - 1, 2**53, 2**53 + 1,
    10**16, 10**20, -(2**60), True, False,
    0.0, -0.0, 0.1, 1e-7, 1.5e-5, 999_999.9999, 1e6, 1_000_000.5, 1.0000001e6, 1e15, 1e16, 1.5e16, 1e300,
    -2.5e7, math.inf, -math.inf, math.nan,
]  # fmt: skip


def test_values_are_formatted_as_prometheus_client_formats_them() -> None:
    rnd = random.Random(20240611)
    values = [*EDGE_VALUES,
              *(rnd.randint(0, 10 ** rnd.randint(0, 18)) for _ in range(20_000)),
              *(rnd.choice((1, -1)) * rnd.random() * 10 ** rnd.randint(-9, 18) for _ in range(20_000))]
    wrong = [(value, format_value(value), floatToGoString(value)) for value in values
             if format_value(value) != floatToGoString(value)]
    assert wrong == []


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def test_the_bytes_are_prometheus_clients() -> None:
    """A small reference: the same families built as prometheus-client objects give the same text."""
    bounds = (0.5, 1.0, 5.0)
    series = [((ODD, "w1"), histogram(bounds, [1, 2, 0, 4], 9.25)),
              (("t2", ODD), histogram(bounds, [2_000_000, 0, 1, 0], 1e6)),
              (("t3", "w3"), histogram(bounds, [0.5, 1.0, 0.0, 0.0], 0.75))]
    negative = histogram((-1.0, 1.0), [1, 1, 0], 0.0)
    counts = [((ODD, "SUCCESS"), 4), (("t2", "FAILURE"), 3_333_333), (("t3", "RETRY"), 2.5)]
    gauges = [((), math.nan), ((), math.inf)]

    ours = text(
        (HistogramFamily("runtime_seconds", "Run\ntime \\ \"s\"", ("task", "worker")), series),
        (HistogramFamily("signed", "Signed", ("task",)), [(("t",), negative)]),
        (Counter("outcomes_total", "Outcomes", ("task", "state")), counts),
        (Gauge("odd", "Odd values"), gauges),
    )

    hist = HistogramMetricFamily("runtime_seconds", "Run\ntime \\ \"s\"", labels=["task", "worker"])
    for labels, h in series:
        cumulative, running = [], 0.0
        for le, count in zip(("0.5", "1.0", "5.0", "+Inf"), h.counts, strict=True):
            running += count
            cumulative.append((le, running))
        hist.add_metric(list(labels), cumulative, h.sum)
    signed = HistogramMetricFamily("signed", "Signed", labels=["task"])
    signed.add_metric(["t"], [("-1.0", 1), ("1.0", 2), ("+Inf", 2)], 0.0)
    outcomes = CounterMetricFamily("outcomes", "Outcomes", labels=["task", "state"])
    for labels, value in counts:
        outcomes.add_metric(list(labels), value)
    odd = GaugeMetricFamily("odd", "Odd values", labels=[])
    for _, value in gauges:
        odd.add_metric([], value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([hist, signed, outcomes, odd]))

    assert ours.encode() == generate_latest(registry)
