"""The per-event counters keep each cluster's apart, and a restart reads back what an older version saved."""

from __future__ import annotations

from celery_monitor.state.models import TaskRecord
from celery_monitor.state.stats import EventStats


def finished(stats: EventStats, cluster: str, worker: str) -> None:
    task = TaskRecord(uuid=f"{cluster}-1", name="app.add", worker=worker, cluster=cluster,
                      sent=10.0, received=11.0, started=12.0)
    stats.record("task-sent", task, {"hostname": "client@web"})
    stats.record("task-received", task, {"hostname": worker})
    stats.record("task-started", task, {"hostname": worker})
    stats.record("task-failed", task, {"hostname": worker, "exception": "KeyError('x')"})
    stats.count_lost(cluster, "app.add")


def test_the_same_task_in_two_clusters_is_counted_under_each() -> None:
    stats = EventStats()
    finished(stats, "default", "w@h")
    finished(stats, "beta", "beta:w@h")
    assert stats.events[("default", "app.add", "task-sent", "client@web")] == 1
    assert stats.events[("beta", "app.add", "task-sent", "client@web")] == 1
    assert stats.outcomes == {("default", "app.add", "FAILURE", "KeyError"): 1,
                              ("beta", "app.add", "FAILURE", "KeyError"): 1}
    assert set(stats.queue_wait) == {("default", "app.add"), ("beta", "app.add")}
    assert stats.lost == {("default", "app.add"): 1, ("beta", "app.add"): 1}
    stats.forget_worker("beta:w@h")
    assert ("beta", "app.add", "task-started", "beta:w@h") not in stats.events
    assert ("default", "app.add", "task-started", "w@h") in stats.events


def test_saved_counters_come_back_per_cluster_and_default_keeps_the_old_layout() -> None:
    stats = EventStats()
    finished(stats, "default", "w@h")
    finished(stats, "beta", "beta:w@h")
    saved = stats.to_store()
    # default's rows as a monitor of one broker always saved them; the others apart.
    assert ["app.add", "task-sent", "client@web", 1] in saved["events"]
    assert list(saved["clusters"]) == ["beta"]
    assert ["app.add", 1] in saved["clusters"]["beta"]["lost"]
    restored = EventStats()
    restored.load(saved)
    assert restored.to_store() == saved
    assert restored.events == stats.events and restored.lost == stats.lost


def test_counters_saved_before_clusters_continue_as_defaults() -> None:
    restored = EventStats()
    restored.load({"events": [["app.add", "task-received", "w@h", 3]], "lost": [["app.add", 2]],
                   "queue_wait": [["app.add", {"bounds": [1.0], "counts": [1, 0], "sum": 0.5}]]})
    assert restored.events == {("default", "app.add", "task-received", "w@h"): 3}
    assert restored.lost == {("default", "app.add"): 2}
    assert list(restored.queue_wait) == [("default", "app.add")]
    assert "clusters" not in restored.to_store()
