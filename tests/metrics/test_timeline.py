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


def test_each_clusters_graphs_are_kept_apart_and_narrowed_on_request() -> None:
    from celery import Celery

    from celery_monitor.broker.poller import ClusterPoll, QueuePoller
    from celery_monitor.broker.queues import QueueLengths
    from celery_monitor.hub import Hub
    from celery_monitor.metrics.timeline import Timeline, narrow
    from celery_monitor.state.live import LiveView
    from celery_monitor.state.models import TaskRecord
    from celery_monitor.state.stats import EventStats

    live = LiveView(EventStats())
    poller = QueuePoller({"default": QueueLengths(Celery("graphs", broker="redis://127.0.0.1:6379/13",
                                                          set_as_current=False))}, lambda cluster: [])
    timeline = Timeline(live, Hub(), poller)
    # One queue name in both clusters, each read on its own broker.
    poller.polls = {name: ClusterPoll([{"name": "celery", "cluster": name, "messages": waiting}], at=1.0)
                    for name, waiting in (("prod", 3), ("staging", 7))}

    def finish(cluster: str, index: int, outcome: str, runtime: float) -> None:
        task = TaskRecord(uuid=f"{cluster}-{index}", name="app.work", worker=f"{cluster}:w@h", cluster=cluster)
        with live.applying():
            live.record("task-received", task, {"hostname": task.worker})
            live.record(outcome, task, {"hostname": task.worker, "runtime": runtime, "exception": "KeyError('k')"})

    timeline.sample()  # the baseline
    for index in range(3):
        finish("prod", index, "task-succeeded", 0.05)
    finish("staging", 0, "task-failed", 0.0)
    finish("staging", 1, "task-succeeded", 4.0)
    point = timeline.sample()
    assert point is not None and set(point["clusters"]) == {"prod", "staging"}
    assert point["failure_rate"] == 0.2  # every cluster: 1 failure of 5
    prod = narrow(point, ["prod"], "prod", several=True)
    assert point["queues"] == {"prod:celery": 3, "staging:celery": 7}  # two queues, not one line
    assert "clusters" not in prod and prod["failure_rate"] == 0.0 and prod["queues"] == {"celery": 3}
    assert prod["rates"]["SUCCESS"] == point["clusters"]["prod"]["rates"]["SUCCESS"] > 0
    staging = narrow(point, ["staging"], "prod", several=True)
    assert staging["failure_rate"] == 0.5 and "FAILURE" in staging["rates"] and staging["queues"] == {"celery": 7}
    assert staging["runtimes"]["app.work"][0] > prod["runtimes"]["app.work"][2]  # staging's slow run alone
    both = narrow(point, ["prod", "staging"], "prod", several=True)
    assert both["failure_rate"] == 0.2  # the rates are rounded per cluster before they are added
    assert both["queues"] == {"prod:celery": 3, "staging:celery": 7}
    assert both["rates"]["SUCCESS"] == pytest.approx(point["rates"]["SUCCESS"], abs=0.01)
    # One cluster: the point is the cluster's, unchanged.
    single = LiveView(EventStats())
    one = Timeline(single, Hub(), poller)
    one.sample()
    task = TaskRecord(uuid="d-1", name="app.work", worker="w@h")
    with single.applying():
        single.record("task-succeeded", task, {"hostname": "w@h", "runtime": 0.1})
    alone = one.sample()
    assert alone is not None and "clusters" not in alone
    assert narrow(alone, ["default"], "default", several=False) == alone
