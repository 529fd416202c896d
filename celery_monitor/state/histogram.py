"""A minimal cumulative histogram: bucket counts and a sum, cheap to update on the applier path."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

# Flower's runtime buckets (prometheus-client's defaults).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        # +Inf is always the last bucket; a bound of inf given explicitly (as Flower's users may) is that one.
        self.bounds = tuple(b for b in bounds if b != float("inf"))
        self.counts = [0] * (len(self.bounds) + 1)  # last slot is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def add(self, other: Histogram) -> None:
        """Count ``other``'s observations here too (histograms of the same bounds)."""
        if other.bounds == self.bounds:
            self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
            self.sum += other.sum

    def copy(self) -> Histogram:
        """A copy to read outside the live view's lock while the applier keeps observing the original."""
        copy = Histogram.__new__(Histogram)
        copy.bounds = self.bounds
        copy.counts = list(self.counts)
        copy.sum = self.sum
        return copy

    def cumulative(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)

    def to_store(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.sum}

    @classmethod
    def from_store(cls, data: dict[str, Any], bounds: tuple[float, ...]) -> Histogram:
        hist = cls(bounds)
        if tuple(data.get("bounds", ())) == hist.bounds and len(data.get("counts", ())) == len(hist.counts):
            hist.counts = list(data["counts"])
            hist.sum = float(data["sum"])
        return hist
