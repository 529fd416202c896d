"""The graphs: percentiles interpolated from bucket counts, and the points saved with the history."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.harness import Harness

from celery_monitor.metrics.timeline import quantile, saved_points

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


def test_a_damaged_saved_minute_gives_no_points() -> None:
    assert saved_points("not an entry") == []
    assert saved_points({"minute": 5, "points": "nope"}) == []
    entry = {"minute": 5, "points": [{"time": "noon"}, 7, {"time": 300.5, "online": 1}]}
    assert saved_points(entry) == [{"time": 300.5, "online": 1}]
    assert saved_points(entry, minute=6) == []  # an hour-old entry in the same slot


def test_the_graphs_outlive_a_restart(tmp_path: Path) -> None:
    first = Harness(tmp_path, db=tmp_path / "history.db")
    first.monitor.timeline.sample()
    first.run_task("app.graphed", "celery@graphs", fail="ValueError")
    point = first.monitor.timeline.sample()
    assert point is not None and point["failure_rate"] == 1.0
    first.flush()
    first.close()
    again = Harness(tmp_path, db=tmp_path / "history.db")
    try:
        again.monitor.timeline.restore(time.time())
        assert again.get("/ui/graphs.json").json()["points"] == [point]
    finally:
        again.close()
