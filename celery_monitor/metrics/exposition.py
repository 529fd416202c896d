"""Prometheus text exposition (format 0.0.4) written straight to strings.

Building prometheus-client ``Metric`` objects costs a ``Sample`` tuple, a label dict and a sort per
line, which at tens of thousands of lines holds the GIL long enough to slow event ingestion. Here
each family renders the label part of a line once per label set and reuses it on later scrapes,
so a line is one string format. The text is the same, byte for byte, as ``generate_latest`` writes
for the same families: label names sorted, values formatted as Go does, ``_total`` on counters,
histogram buckets cumulative, then ``_count`` and ``_sum``.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Sequence

from prometheus_client.utils import floatToGoString

from celery_monitor.state.histogram import Histogram

Key = tuple[str, ...]  # label values, in the order of the family's declared label names

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_EXACT_INT_LIMIT = 2**53  # ints below this convert to float exactly


def escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def format_value(value: float) -> str:
    """What ``floatToGoString`` returns, without its general path for the values a scrape is made of.

    Below a million that is Python's ``repr`` of the float; from a million on Go writes an exponent
    (``2.5e+06``). Counters are ints, and an int below 2**53 is the float of the same digits.
    """
    if type(value) is int:
        if -1_000_000 < value < 1_000_000:
            return f"{value}.0"
        if 0 < value < _EXACT_INT_LIMIT:
            digits = str(value)
            mantissa = f"{digits[0]}.{digits[1:]}".rstrip("0.")
            return f"{mantissa}e+{len(digits) - 1:02d}"
    elif -1e6 < value < 1e6:  # NaN fails the comparison and takes the general path
        return repr(float(value))
    return str(floatToGoString(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in sorted(pairs))


@functools.lru_cache(maxsize=64)
def _bucket_bounds(bounds: tuple[float, ...]) -> tuple[tuple[str, ...], bool]:
    """``le`` values of a histogram's buckets, +Inf last, and whether ``_count``/``_sum`` are written.

    prometheus-client leaves both out of a histogram whose first bucket is negative.
    """
    return (*(floatToGoString(bound) for bound in bounds), "+Inf"), not bounds or bounds[0] >= 0


class _Family:
    """A family's ``# HELP``/``# TYPE`` header and its label names, checked once when it is declared."""

    prom_type = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        if not _NAME.match(name) or not all(_LABEL_NAME.match(label) for label in labels):
            raise ValueError(f"invalid metric or label name in {name}{{{','.join(labels)}}}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate label name in {name}{{{','.join(labels)}}}")
        self.name = name
        self.label_names = tuple(labels)
        exposed = self.exposed_name
        self.header = f"# HELP {exposed} {escape_help(help_text)}\n# TYPE {exposed} {self.prom_type}\n"

    @property
    def exposed_name(self) -> str:
        return self.name

    def _check(self, key: Key) -> None:
        if len(key) != len(self.label_names):
            raise ValueError(f"{self.name}: {len(key)} label values for labels {self.label_names}")


class SampleFamily(_Family):
    """A counter or gauge: one line per label set.

    The text before each value is kept for the label sets of the last scrape only, so it is
    rendered once per series, and a series that is gone leaves nothing behind.
    """

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._cache: dict[Key, str] = {}

    def _prefix(self, key: Key) -> str:
        self._check(key)
        if not key:
            return f"{self.exposed_name} "
        return f"{self.exposed_name}{{{_labels(zip(self.label_names, key, strict=True))}}} "

    def write(self, out: list[str], samples: Iterable[tuple[Key, float]]) -> None:
        """Append the header and one line per ``(label values, value)`` to ``out``."""
        out.append(self.header)
        old, new = self._cache, {}
        fmt = format_value
        for key, value in samples:
            prefix = old.get(key)
            if prefix is None:
                prefix = self._prefix(key)
            new[key] = prefix
            out.append(f"{prefix}{fmt(value)}\n")
        self._cache = new  # concurrent scrapes each build their own; the last one stays

    def write_value(self, out: list[str], value: float) -> None:
        """A family without labels and its single sample."""
        self.write(out, (((), value),))


class Counter(SampleFamily):
    """Named without ``_total``; the exposition adds it, as prometheus-client does."""

    prom_type = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name.removesuffix("_total"), help_text, labels)

    @property
    def exposed_name(self) -> str:
        return self.name + "_total"


class Gauge(SampleFamily):
    prom_type = "gauge"


class HistogramFamily(_Family):
    """Cumulative ``_bucket`` lines (``le`` among the labels in sorted order), then ``_count`` and ``_sum``.

    The label text of a series is kept between scrapes as :class:`SampleFamily` keeps it.
    """

    prom_type = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        if "le" in labels:
            raise ValueError(f"{name}: 'le' is the bucket label")
        super().__init__(name, help_text, labels)
        self._cache: dict[Key, tuple[str, str, str, str]] = {}

    def _parts(self, key: Key) -> tuple[str, str, str, str]:
        """What goes before and after the ``le`` value of a bucket line, and the count and sum prefixes."""
        self._check(key)
        pairs = sorted(zip(self.label_names, key, strict=True))
        before = "".join(f'{name}="{escape_label_value(value)}",' for name, value in pairs if name < "le")
        after = "".join(f',{name}="{escape_label_value(value)}"' for name, value in pairs if name > "le")
        plain = f"{{{_labels(pairs)}}}" if pairs else ""
        return (f'{self.name}_bucket{{{before}le="', f'"{after}}} ',
                f"{self.name}_count{plain} ", f"{self.name}_sum{plain} ")

    def write(self, out: list[str], histograms: Iterable[tuple[Key, Histogram]]) -> None:
        """Append the header and every histogram's lines to ``out``."""
        out.append(self.header)
        old, new = self._cache, {}
        fmt = format_value
        for key, hist in histograms:
            parts = old.get(key)
            if parts is None:
                parts = self._parts(key)
            new[key] = parts
            before, after, count, total = parts
            bounds, with_sum = _bucket_bounds(hist.bounds)
            cumulative = list(itertools.accumulate(hist.counts))
            seen = cumulative[-1]
            buckets = zip(bounds, cumulative, strict=True)
            if type(seen) is int and 0 <= seen < 1_000_000:
                # Whole counts that only grow, all below a million: Go prints them as "7.0", like repr(7.0).
                out.extend([f"{before}{le}{after}{running}.0\n" for le, running in buckets])
            else:
                out.extend([f"{before}{le}{after}{fmt(running)}\n" for le, running in buckets])
            if with_sum:
                out.append(f"{count}{fmt(seen)}\n{total}{fmt(hist.sum)}\n")
        self._cache = new
