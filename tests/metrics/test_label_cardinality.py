"""--metrics_worker_label and --metrics_max_task_names, applied to every family with those labels."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.harness import Harness

FAMILIES_WITH_WORKER = (
    "flower_events", "flower_task_runtime_seconds", "flower_task_prefetch_time_seconds",
    "flower_worker_prefetched_tasks", "flower_worker_online", "flower_worker_number_of_currently_executing_tasks",
)  # fmt: skip
FAMILIES_WITH_TASK = (
    "flower_events", "flower_task_runtime_seconds", "flower_task_prefetch_time_seconds",
    "flower_worker_prefetched_tasks", "celery_monitor_task_outcomes", "celery_monitor_task_queue_wait_seconds",
)  # fmt: skip


def label_values(harness: Harness, label: str, families: tuple[str, ...]) -> dict[str, set[str]]:
    exposed = harness.families()
    return {name: {s.labels[label] for s in exposed[name].samples} for name in families}


def two_pods_one_host(harness: Harness) -> Harness:
    """Two workers named alike on different pods, and a second worker on one of them."""
    for worker in ("celery@pod-a", "celery@pod-b", "beat@pod-a"):
        harness.heartbeat(worker, active=1)
        harness.run_task("app.add", worker, runtime=0.5)
        harness.receive_only("app.add", worker)
    return harness


def test_by_default_worker_names_are_exported_whole(harness_factory: Callable[..., Harness]) -> None:
    harness = two_pods_one_host(harness_factory())
    for family, values in label_values(harness, "worker", FAMILIES_WITH_WORKER).items():
        assert values == {"celery@pod-a", "celery@pod-b", "beat@pod-a"}, family


def test_worker_label_name_drops_the_host(harness_factory: Callable[..., Harness]) -> None:
    harness = two_pods_one_host(harness_factory("--metrics_worker_label=name"))
    for family, values in label_values(harness, "worker", FAMILIES_WITH_WORKER).items():
        assert values == {"celery", "beat"}, family
    # Folded series add up; the 0/1 online gauge stays 0/1.
    assert harness.values("flower_events", "flower_events_total", type="task-received") == {
        ("app.add", "task-received", "celery"): 4, ("app.add", "task-received", "beat"): 2}
    assert harness.values("flower_task_runtime_seconds", "flower_task_runtime_seconds_count") == {
        ("app.add", "celery"): 2, ("app.add", "beat"): 1}
    assert harness.values("flower_task_runtime_seconds", "flower_task_runtime_seconds_sum") == {
        ("app.add", "celery"): 1.0, ("app.add", "beat"): 0.5}
    assert harness.values("flower_worker_prefetched_tasks") == {("app.add", "celery"): 2, ("app.add", "beat"): 1}
    assert harness.values("flower_worker_number_of_currently_executing_tasks") == {("celery",): 2, ("beat",): 1}
    assert harness.values("flower_worker_online") == {("celery",): 1, ("beat",): 1}
    harness.offline("celery@pod-a")
    assert harness.values("flower_worker_online") == {("celery",): 1, ("beat",): 1}
    harness.offline("celery@pod-b")
    assert harness.values("flower_worker_online") == {("celery",): 0, ("beat",): 1}


def test_worker_label_host_keeps_only_the_host(harness_factory: Callable[..., Harness]) -> None:
    harness = two_pods_one_host(harness_factory("--metrics_worker_label=host"))
    for family, values in label_values(harness, "worker", FAMILIES_WITH_WORKER).items():
        assert values == {"pod-a", "pod-b"}, family
    assert harness.values("flower_worker_number_of_currently_executing_tasks") == {("pod-a",): 2, ("pod-b",): 1}


def test_task_names_beyond_the_cap_fold_into_other(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory("--metrics_max_task_names=2")
    worker = "celery@pod-a"
    harness.heartbeat(worker)
    for name, times in (("app.busy", 3), ("app.often", 2), ("app.rare", 1), ("app.rarer", 1)):
        for _ in range(times):
            harness.run_task(name, worker)
    harness.run_task("app.rare", worker, fail="KeyError")
    for family, values in label_values(harness, "task", FAMILIES_WITH_TASK).items():
        assert values == {"app.busy", "app.often", "other"}, family
    assert harness.values("celery_monitor_task_outcomes", "celery_monitor_task_outcomes_total") == {
        ("", "SUCCESS", "app.busy"): 3, ("", "SUCCESS", "app.often"): 2, ("", "SUCCESS", "other"): 2,
        ("KeyError", "FAILURE", "other"): 1,
    }  # fmt: skip
    assert harness.values("celery_monitor_task_queue_wait_seconds",
                          "celery_monitor_task_queue_wait_seconds_count") == {
        ("app.busy",): 3, ("app.often",): 2, ("other",): 3}

    # The kept names stay kept, however busy a newcomer gets: series never jump between labels.
    for _ in range(5):
        harness.run_task("app.newcomer", worker)
    assert label_values(harness, "task", ("flower_events",))["flower_events"] == {"app.busy", "app.often", "other"}
    assert harness.values("flower_task_runtime_seconds", "flower_task_runtime_seconds_count") == {
        ("app.busy", worker): 3, ("app.often", worker): 2, ("other", worker): 7}


def test_names_are_admitted_while_there_is_room(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory("--metrics_max_task_names=2")
    worker = "celery@pod-a"
    harness.run_task("app.first", worker)
    assert label_values(harness, "task", ("flower_events",))["flower_events"] == {"app.first"}
    # Two newcomers for the one place left, equally busy: the first in name order gets it.
    harness.run_task("app.third", worker)
    harness.run_task("app.second", worker)
    assert label_values(harness, "task", ("flower_events",))["flower_events"] == {"app.first", "app.second", "other"}


@pytest.mark.parametrize(("argument", "message"), [
    ("--metrics_worker_label=fqdn", "--metrics_worker_label: unknown mode 'fqdn' (use full, name, host)"),
    ("--metrics_max_task_names=0", "--metrics_max_task_names: 0 is below the minimum 1"),
    ("--metrics_max_task_names=many", "--metrics_max_task_names: 'many' is not an integer"),
])
def test_bad_values_stop_the_monitor_with_one_line(tmp_path: Path, argument: str, message: str) -> None:
    command = Path(sys.executable).parent / "celery-monitor"
    result = subprocess.run([str(command), argument, "--broker=redis://127.0.0.1:9/0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env={**os.environ})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"celery-monitor: error: {message}"], result.stderr
