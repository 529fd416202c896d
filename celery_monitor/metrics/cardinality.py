"""Label cardinality controls, applied when /metrics is scraped.

The counters the applier keeps are never relabelled: only the exposition folds worker names
(``--metrics_worker_label``) and caps task names (``--metrics_max_task_names``), so changing
either option on a restart loses no counts. Series that fold into one label set are combined:
counts and histograms are summed, the 0/1 "online" gauge and the last prefetch time take the
largest value.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TypeVar

from celery_monitor.state.histogram import Histogram

WORKER_LABEL_MODES = ("full", "name", "host")
OTHER_TASKS = "other"

K = TypeVar("K", bound=Hashable)


def worker_label(hostname: str, mode: str) -> str:
    """``celery@pod-7f9c`` -> ``celery`` (mode "name") or ``pod-7f9c`` (mode "host").

    Names without an ``@`` (no host part to split off) are kept whole.
    """
    if mode == "full" or "@" not in hostname:
        return hostname
    name, _, host = hostname.partition("@")
    return name if mode == "name" else host


class TaskNameCap:
    """At most ``limit`` task names become labels; every other name is folded into ``other``.

    A name, once kept, stays kept until the monitor restarts, so no series moves between its own
    label and ``other`` from one scrape to the next (which would look like a counter reset).
    The first scrape keeps the busiest names; later ones keep new names while room is left.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.kept: dict[str, None] = {}  # insertion-ordered set
        self._lock = threading.Lock()

    def admit(self, weights: Mapping[str, float]) -> None:
        if self.limit is None:
            return
        with self._lock:
            room = self.limit - len(self.kept)
            if room <= 0:
                return
            candidates = sorted((n for n in weights if n not in self.kept), key=lambda n: (-weights[n], n))
            self.kept.update(dict.fromkeys(candidates[:room]))

    def label(self, name: str) -> str:
        if self.limit is None or name in self.kept:
            return name
        return OTHER_TASKS


class LabelPolicy:
    """How task and worker names become label values."""

    def __init__(self, worker_mode: str = "full", max_task_names: int | None = None) -> None:
        if worker_mode not in WORKER_LABEL_MODES:
            raise ValueError(f"worker label mode {worker_mode!r} is not one of {', '.join(WORKER_LABEL_MODES)}")
        self.worker_mode = worker_mode
        self.tasks = TaskNameCap(max_task_names)

    @property
    def is_identity(self) -> bool:
        """True when every name is exported as it is (Flower's behaviour)."""
        return self.worker_mode == "full" and self.tasks.limit is None

    def worker(self, hostname: str) -> str:
        return worker_label(hostname, self.worker_mode)

    def task(self, name: str) -> str:
        return self.tasks.label(name)


def fold(items: Iterable[tuple[K, float]], relabel: Callable[[K], K] | None,
         combine: Callable[[float, float], float]) -> dict[K, float]:
    """Relabel every key (``None``: keep them), combining the values of keys that become equal."""
    if relabel is None:
        return dict(items)
    out: dict[K, float] = {}
    for key, value in items:
        new = relabel(key)
        out[new] = combine(out[new], value) if new in out else value
    return out


def fold_histograms(items: Iterable[tuple[K, Histogram]], relabel: Callable[[K], K] | None) -> dict[K, Histogram]:
    """Relabel every key, adding up the buckets and sums of histograms whose keys become equal.

    The histograms must be this scrape's own copies (:meth:`LiveView.snapshot` makes them): merging adds into them.
    """
    if relabel is None:
        return dict(items)
    out: dict[K, Histogram] = {}
    for key, hist in items:
        new = relabel(key)
        merged = out.get(new)
        if merged is None:
            out[new] = hist
        else:
            merged.counts = [a + b for a, b in zip(merged.counts, hist.counts, strict=True)]
            merged.sum += hist.sum
    return out
