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
    stats.count_reconciled(cluster, "SUCCESS")


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
    assert stats.reconciled == {("default", "SUCCESS"): 1, ("beta", "SUCCESS"): 1}
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
    assert saved["reconciled"] == [["SUCCESS", 1]] and saved["clusters"]["beta"]["reconciled"] == [["SUCCESS", 1]]
    restored = EventStats()
    restored.load(saved)
    assert restored.to_store() == saved
    assert restored.events == stats.events and restored.lost == stats.lost
    assert restored.reconciled == stats.reconciled


def test_counters_saved_before_clusters_continue_as_defaults() -> None:
    restored = EventStats()
    restored.load({"events": [["app.add", "task-received", "w@h", 3]], "lost": [["app.add", 2]],
                   "reconciled": [["FAILURE", 4]],
                   "queue_wait": [["app.add", {"bounds": [1.0], "counts": [1, 0], "sum": 0.5}]]})
    assert restored.events == {("default", "app.add", "task-received", "w@h"): 3}
    assert restored.lost == {("default", "app.add"): 2}
    assert restored.reconciled == {("default", "FAILURE"): 4}
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


def test_each_clusters_task_counts_follow_its_tasks_trims_and_a_restart() -> None:
    from celery_monitor.metrics.collector import task_counts
    from celery_monitor.state.live import LiveView

    live = LiveView(EventStats())
    with live.applying():
        for cluster, state in (("default", "SUCCESS"), ("beta", "SUCCESS"), ("beta", "FAILURE"), ("gamma", "PENDING")):
            live.count_state(None, state, cluster)
        live.count_state("PENDING", "STARTED", "gamma")
    live.forget_trimmed({"SUCCESS": 1}, {"beta": {"SUCCESS": 1}})
    snap = live.snapshot()
    assert snap.state_counts == {"SUCCESS": 1, "FAILURE": 1, "PENDING": 0, "STARTED": 1}
    rows = dict(task_counts(snap.state_counts, snap.cluster_state_counts, ["default", "beta", "gamma"]))
    assert rows == {("beta", "FAILURE"): 1, ("beta", "SUCCESS"): 0, ("gamma", "PENDING"): 0, ("gamma", "STARTED"): 1,
                    ("default", "SUCCESS"): 1, ("default", "FAILURE"): 0, ("default", "PENDING"): 0,
                    ("default", "STARTED"): 0}
    # Saved with the totals, taken back at a restart; default shows only when watched or holding tasks.
    saved = live.counters_to_save()
    again = LiveView(EventStats())
    again.restore([], EventStats(), saved["state_counts"], [], cluster_state_counts=saved["cluster_state_counts"])
    snap = again.snapshot()
    assert dict(task_counts(snap.state_counts, snap.cluster_state_counts, ["beta", "gamma", "default"])) == rows
    without_default = dict(task_counts({"SUCCESS": 2}, {"beta": {"SUCCESS": 2}}, ["beta"]))
    assert without_default == {("beta", "SUCCESS"): 2}
