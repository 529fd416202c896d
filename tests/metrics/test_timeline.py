"""The graphs' percentiles come from bucket counts: check the interpolation on known distributions."""

from __future__ import annotations

import pytest

from celery_monitor.metrics.timeline import quantile

BOUNDS = (0.1, 0.5, 1.0, 5.0)


@pytest.mark.parametrize(("counts", "q", "expected"), [
    ([10, 0, 0, 0, 0], 0.5, 0.05),        # all in the first bucket: halfway into [0, 0.1]
    ([0, 0, 10, 0, 0], 0.5, 0.75),        # all in (0.5, 1.0]
    ([50, 0, 0, 50, 0], 0.99, 4.92),      # the slow half sits in (1, 5]
    ([0, 0, 0, 0, 4], 0.5, 5.0),          # beyond the last bound: the last bound, not infinity
])
def test_quantile_interpolates_inside_the_bucket(counts: list[int], q: float, expected: float) -> None:
    assert quantile(BOUNDS, counts, q) == pytest.approx(expected)


def test_no_observations_no_quantile() -> None:
    assert quantile(BOUNDS, [0, 0, 0, 0, 0], 0.5) is None
