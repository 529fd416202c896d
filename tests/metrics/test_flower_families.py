"""Flower's six metric families: names, types, label sets, values and runtime buckets."""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client.utils import floatToGoString
from support.harness import Harness

# As Flower 2.x declares them: family -> (type, label names). Each has one more label here, ``cluster``
# (a monitor watches one or several Celery clusters, docs/metrics.md): ``default`` with one broker.
FLOWER_FAMILIES = {
    "flower_events": ("counter", {"worker", "type", "task"}),
    "flower_task_runtime_seconds": ("histogram", {"worker", "task"}),
    "flower_task_prefetch_time_seconds": ("gauge", {"worker", "task"}),
    "flower_worker_prefetched_tasks": ("gauge", {"worker", "task"}),
    "flower_worker_online": ("gauge", {"worker"}),
    "flower_worker_number_of_currently_executing_tasks": ("gauge", {"worker"}),
}
# prometheus-client's default buckets, which Flower uses when --task_runtime_metric_buckets is unset.
FLOWER_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
WORKER = "celery@node-1"


def busy(harness: Harness) -> Harness:
    harness.heartbeat(WORKER, active=1)
    harness.run_task("app.add", WORKER, runtime=0.3)
    harness.run_task("app.add", WORKER, fail="ValueError")
    harness.run_task("app.slow", WORKER, finish=False)
    harness.receive_only("app.slow", WORKER)
    return harness


def test_the_six_families_have_flowers_types_and_labels(harness_factory: Callable[..., Harness]) -> None:
    families = busy(harness_factory()).families()
    for name, (kind, labels) in FLOWER_FAMILIES.items():
        family = families[name]
        assert family.type == kind, name
        assert family.samples, f"{name} has no samples"
        for sample in family.samples:
            names = set(sample.labels) - ({"le"} if sample.name.endswith("_bucket") else set())
            assert sample.labels["cluster"] == "default", sample
            names.remove("cluster")
            assert names == labels, f"{sample.name}: labels {names}, Flower's are {labels}"


def test_the_exposition_reads_as_flowers(harness_factory: Callable[..., Harness]) -> None:
    # prometheus-client (Flower's exposition library too) writes label names in sorted order;
    # the cluster label comes first.
    text = busy(harness_factory()).exposition()
    assert re.search(r'^flower_events_total\{cluster="default",task="app.add",type="task-started",'
                     r'worker="celery@node-1"\} 2.0$', text, re.M)
    assert re.search(r'^flower_task_runtime_seconds_bucket\{cluster="default",le="0.5",task="app.add",'
                     r'worker="celery@node-1"\} 1.0$', text, re.M)
    assert "# TYPE flower_events_total counter" in text
    assert "# TYPE flower_task_runtime_seconds histogram" in text


def test_values_follow_the_events(harness_factory: Callable[..., Harness]) -> None:
    harness = busy(harness_factory())
    events = harness.values("flower_events", "flower_events_total", worker=WORKER)
    assert events == {
        ("app.add", "task-received", WORKER): 2, ("app.add", "task-started", WORKER): 2,
        ("app.add", "task-succeeded", WORKER): 1, ("app.add", "task-failed", WORKER): 1,
        ("app.slow", "task-received", WORKER): 2, ("app.slow", "task-started", WORKER): 1,
    }  # fmt: skip
    assert harness.values("flower_task_runtime_seconds", "flower_task_runtime_seconds_count") == {
        ("app.add", WORKER): 1}
    assert harness.values("flower_task_runtime_seconds", "flower_task_runtime_seconds_sum") == {
        ("app.add", WORKER): 0.3}
    # One app.slow started, one still waiting at the worker.
    assert harness.values("flower_worker_prefetched_tasks") == {("app.add", WORKER): 0, ("app.slow", WORKER): 1}
    prefetch = harness.values("flower_task_prefetch_time_seconds")
    assert set(prefetch) == {("app.add", WORKER), ("app.slow", WORKER)}
    assert all(0.09 <= value <= 0.2 for value in prefetch.values()), prefetch
    assert harness.values("flower_worker_online") == {(WORKER,): 1}
    assert harness.values("flower_worker_number_of_currently_executing_tasks") == {(WORKER,): 1}


def bucket_bounds(harness: Harness) -> list[str]:
    return [s.labels["le"] for s in harness.samples("flower_task_runtime_seconds")
            if s.name.endswith("_bucket")]


def test_runtime_buckets_default_to_flowers(harness_factory: Callable[..., Harness]) -> None:
    harness = busy(harness_factory())
    assert bucket_bounds(harness) == [floatToGoString(b) for b in FLOWER_DEFAULT_BUCKETS] + ["+Inf"]


def test_runtime_buckets_follow_the_option(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory("--task_runtime_metric_buckets=30,0.5,2")
    for runtime in (0.1, 1.0, 1.5, 45.0):
        harness.run_task("app.add", WORKER, runtime=runtime)
    buckets = {s.labels["le"]: s.value for s in harness.samples("flower_task_runtime_seconds")
               if s.name.endswith("_bucket")}
    assert buckets == {"0.5": 1, "2.0": 3, "30.0": 3, "+Inf": 4}


def test_an_offline_worker_is_reported_offline_holding_nothing(harness_factory: Callable[..., Harness]) -> None:
    harness = busy(harness_factory())
    harness.offline(WORKER)
    assert harness.values("flower_worker_online") == {(WORKER,): 0}
    assert harness.values("flower_worker_number_of_currently_executing_tasks") == {(WORKER,): 0}
    assert harness.values("flower_worker_prefetched_tasks") == {("app.add", WORKER): 0, ("app.slow", WORKER): 0}
    # Counters are history: they stay until the worker is forgotten.
    assert harness.values("flower_events", "flower_events_total")[("app.slow", "task-received", WORKER)] == 2


def test_an_explicit_infinite_bucket_is_the_last_one(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory("--task_runtime_metric_buckets=1,inf")
    harness.run_task("app.add", WORKER, runtime=5.0)
    assert bucket_bounds(harness) == ["1.0", "+Inf"]
