"""The per-event counters keep each cluster's apart, and a restart reads back what an older version saved."""

from __future__ import annotations

from celery_monitor.state.models import TaskRecord
from celery_monitor.state.stats import EventStats, GraphTotals


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


def test_the_graphs_totals_kept_as_events_come_equal_the_sums_of_the_counters() -> None:
    stats = EventStats()
    for index in range(30):
        cluster = ("default", "beta", "gamma")[index % 3]
        worker = f"{cluster}:w{index % 4}@h"
        task = TaskRecord(uuid=f"t{index}", name=f"app.task{index % 5}", worker=worker, cluster=cluster,
                          queue=f"q{index % 2}", sent=10.0, received=11.0, started=12.0 + index / 10)
        stats.record("task-received", task, {"hostname": worker})
        stats.record("task-started", task, {"hostname": worker})
        if index % 4:
            stats.record("task-succeeded", task, {"hostname": worker, "runtime": index / 7})
        else:
            stats.record("task-failed", task, {"hostname": worker, "exception": "ValueError('x')"})

    def plain(totals: GraphTotals) -> tuple[object, ...]:
        return (totals.outcomes, totals.received, {k: (h.counts, round(h.sum, 9)) for k, h in totals.runtime.items()},
                {k: (h.counts, round(h.sum, 9)) for k, h in totals.latency.items()})

    def each(graphs: dict[str, GraphTotals]) -> dict[str, tuple[object, ...]]:
        return {cluster: plain(totals) for cluster, totals in graphs.items()}

    assert each(stats.graphs) == each(GraphTotals.of(stats))
    # Kept per cluster: every third task is each cluster's.
    assert stats.graphs["beta"].received == 10 and stats.graphs["beta"].outcomes == {"SUCCESS": 7, "FAILURE": 3}
    everything = GraphTotals()
    for totals in stats.graphs.values():
        everything.add(totals)
    assert everything.outcomes == {"SUCCESS": 22, "FAILURE": 8} and everything.received == 30
    restored = EventStats()
    restored.load(stats.to_store())  # a restart sums them once from what was saved
    assert each(restored.graphs) == each(stats.graphs)
    stats.forget_worker("beta:w1@h")  # a point is a difference of totals: a forgotten worker takes nothing back
    assert stats.graphs["beta"].received == 10
