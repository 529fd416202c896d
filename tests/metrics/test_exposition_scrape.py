"""GET /metrics as text: exact lines for a small state, a parser round trip for a large one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from support.harness import Harness

ODD_WORKER = 'celery@pod\\b\nline'
QUOTED_WORKER = 'celery@pod "a"'
ODD_TASK = 'app.quote"d\\back\nslash'
ODD_EXCEPTION = 'Bad"Err\\or\nX'

# Every family, in the order of the text, with its HELP text: what the exposition has always had.
HEADERS = [
    ("flower_events_total", "counter", "Number of events"),
    ("flower_task_runtime_seconds", "histogram", "Task runtime"),
    ("flower_task_prefetch_time_seconds", "gauge", "The time the task spent waiting at the worker to be executed."),
    ("flower_worker_prefetched_tasks", "gauge", "Number of tasks of given type prefetched at a worker"),
    ("flower_worker_online", "gauge", "Worker online status"),
    ("flower_worker_number_of_currently_executing_tasks", "gauge", "Number of tasks currently executing at a worker"),
    ("celery_monitor_task_outcomes_total", "counter", "Finished task events by state and exception class"),
    ("celery_monitor_task_queue_wait_seconds", "histogram", "Time from sent (or received) to started"),
    ("celery_monitor_task_queue_latency_seconds", "histogram",
     "Time from sent (or from the ETA, when later) to started, per queue"),
    ("celery_monitor_tasks", "gauge", "Retained tasks by current state"),
    ("celery_monitor_tasks_lost_total", "counter",
     "Tasks turned LOST: their worker went offline or restarted while it held them"),
    ("celery_monitor_tasks_reconciled_total", "counter",
     "Tasks whose final state, missed as an event, was read from the result backend"),
    ("celery_monitor_workers", "gauge", "Workers by status"),
    ("celery_monitor_worker_pool_processes", "gauge", "Pool processes per online worker"),
    ("celery_monitor_queue_length", "gauge", "Messages ready for delivery in a queue"),
    ("celery_monitor_queue_unacked", "gauge", "Messages delivered to consumers, not yet acknowledged"),
    ("celery_monitor_queue_consumers", "gauge", "Consumers attached to a queue"),
    ("celery_monitor_queue_oldest_message_age_seconds", "gauge",
     "Age of the message at the head of a queue (brokers that tell only)"),
    ("celery_monitor_queue_reserved", "gauge",
     "Tasks online workers prefetched from a queue and have not started (their last inspect replies)"),
    ("celery_monitor_queue_backlog", "gauge", "Messages waiting in a queue (Redis priority sub-queues included) "
     "plus tasks workers reserved from it and have not started: what to scale workers on"),
    ("celery_monitor_events_received_total", "counter", "Events received"),
    ("celery_monitor_event_messages_dropped_total", "counter",
     "Event messages dropped: the applier's hand-off was full"),
    ("celery_monitor_events_malformed_total", "counter", "Events refused at the event boundary, all reasons"),
    ("celery_monitor_events_rejected_total", "counter", "Events refused at the event boundary, by reason"),
    ("celery_monitor_receiver_connected", "gauge", "Event receiver connected to the broker"),
    ("celery_monitor_receiver_reconnects_total", "counter", "Event receiver reconnections"),
    ("celery_monitor_receiver_disconnects_total", "counter",
     "Event streams lost while connected (a broker drops a subscriber that lags)"),
    ("celery_monitor_reader_restarts_total", "counter", "Restarts of the Redis reader process (--event_spool)"),
    ("celery_monitor_spool_backlog_bytes", "gauge",
     "Event bytes read into the spool (--event_spool) that the applier has not taken yet"),
    ("celery_monitor_last_event_timestamp_seconds", "gauge", "When the last event arrived"),
    ("celery_monitor_ingest_lag_seconds", "gauge", "Delay between receiving and applying events"),
    ("celery_monitor_store_tasks", "gauge", "Tasks in the history"),
    ("celery_monitor_store_size_bytes", "gauge", "Size of the history on disk"),
    ("celery_monitor_store_quarantined_rows", "gauge",
     "History rows found damaged or from an older version, set aside"),
    ("celery_monitor_receiver_errors_total", "counter", "Failed connections and lost event streams, by reason"),
    ("celery_monitor_store_persisting", "gauge", "1 while the history is written, 0 while writes fail"),
    ("celery_monitor_store_write_errors_total", "counter", "Failed writes of the history (disk full, ...)"),
    ("celery_monitor_store_pending_tasks", "gauge", "Changed tasks waiting to be written to the history"),
    ("celery_monitor_store_writes_dropped_total", "counter",
     "Pending task writes dropped: over the bound while writes failed, or refused"),
    ("celery_monitor_background_errors_total", "counter", "Unexpected exceptions in background loops"),
    ("celery_monitor_live", "gauge", "1 while ingestion works (/livez answers 200), 0 when it has stopped"),
    ("celery_monitor_schedule_missed_total", "counter",
     "Periodic task runs that did not arrive within their interval plus --schedule_tolerance, by beat entry"),
    ("celery_monitor_notifications_total", "counter", "Notification delivery attempts by channel kind and outcome "
     "(delivered, failed; dropped: never attempted, too many waiting)"),
    ("celery_monitor_notification_notices_dropped_total", "counter",
     "Task notices dropped: the notifier's queue was full"),
    ("celery_monitor_leader", "gauge", "1 on the replica that ingests the history (always, with SQLite), 0 on a "
     "standby, which serves no other family of the cluster or the event stream"),
]  # fmt: skip

Q = 'task="app.quote\\"d\\\\back\\nslash"'
A = 'worker="celery@pod \\"a\\""'
B = 'worker="celery@pod\\\\b\\nline"'
C = 'cluster="default"'  # a monitor of one broker: its one cluster, named default
# Family -> its lines exactly, for the small state below (label names sorted, values as Go prints them).
EXPECTED = {
    "flower_events_total": [
        f'flower_events_total{{{C},{Q},type="task-received",{A}}} 1.0',
        f'flower_events_total{{{C},{Q},type="task-started",{A}}} 1.0',
        f'flower_events_total{{{C},{Q},type="task-succeeded",{A}}} 1.0',
        f'flower_events_total{{{C},task="app.add",type="task-received",{B}}} 1.0',
        f'flower_events_total{{{C},task="app.add",type="task-started",{B}}} 1.0',
        f'flower_events_total{{{C},task="app.add",type="task-failed",{B}}} 1.0',
    ],
    "flower_task_runtime_seconds": [
        f'flower_task_runtime_seconds_bucket{{{C},le="0.5",{Q},{A}}} 1.0',
        f'flower_task_runtime_seconds_bucket{{{C},le="2.0",{Q},{A}}} 1.0',
        f'flower_task_runtime_seconds_bucket{{{C},le="+Inf",{Q},{A}}} 1.0',
        f"flower_task_runtime_seconds_count{{{C},{Q},{A}}} 1.0",
        f"flower_task_runtime_seconds_sum{{{C},{Q},{A}}} 0.3",
    ],
    "flower_worker_online": [f"flower_worker_online{{{C},{A}}} 1.0", f"flower_worker_online{{{C},{B}}} 1.0"],
    "flower_worker_number_of_currently_executing_tasks": [
        f"flower_worker_number_of_currently_executing_tasks{{{C},{A}}} 1.0",
        f"flower_worker_number_of_currently_executing_tasks{{{C},{B}}} 0.0",
    ],
    "celery_monitor_task_outcomes_total": [
        f'celery_monitor_task_outcomes_total{{{C},exception="",state="SUCCESS",{Q}}} 1.0',
        f'celery_monitor_task_outcomes_total{{{C},exception="Bad\\"Err\\\\or\\nX",state="FAILURE",task="app.add"}} 1.0',
    ],
    "celery_monitor_workers": [f'celery_monitor_workers{{{C},status="online"}} 2.0',
                               f'celery_monitor_workers{{{C},status="offline"}} 0.0'],
    "celery_monitor_events_received_total": [f"celery_monitor_events_received_total{{{C}}} 8.0"],
}


def blocks(text: str) -> dict[str, list[str]]:
    """Family name (from its TYPE line) -> the sample lines that follow its header."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            current = out.setdefault(line.split()[2], [])
        elif not line.startswith("#"):
            current.append(line)
    return out


def small(harness: Harness) -> Harness:
    harness.heartbeat(QUOTED_WORKER, active=1)
    harness.heartbeat(ODD_WORKER)
    harness.run_task(ODD_TASK, QUOTED_WORKER, runtime=0.3)
    harness.run_task("app.add", ODD_WORKER, fail=ODD_EXCEPTION)
    return harness


def test_small_state_is_written_exactly(harness_factory: Callable[..., Harness]) -> None:
    harness = small(harness_factory("--task_runtime_metric_buckets=0.5,2"))
    response = harness.get("/metrics")
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    text = response.text
    headers = [line for line in text.splitlines() if line.startswith("#")]
    assert headers == [line for name, kind, help_text in HEADERS
                       for line in (f"# HELP {name} {help_text}", f"# TYPE {name} {kind}")]
    written = blocks(text)
    for family, lines in EXPECTED.items():
        assert written[family] == lines, family


def test_escaped_labels_read_back_as_they_were(harness_factory: Callable[..., Harness]) -> None:
    harness = small(harness_factory())
    assert set(harness.values("flower_worker_online")) == {(QUOTED_WORKER,), (ODD_WORKER,)}
    assert harness.values("celery_monitor_task_outcomes", "celery_monitor_task_outcomes_total",
                          state="FAILURE") == {(ODD_EXCEPTION, "FAILURE", "app.add"): 1}
    assert set(harness.values("flower_task_runtime_seconds", "flower_task_runtime_seconds_count")) == {
        (ODD_TASK, QUOTED_WORKER)}


WORKERS = [f"w{n % 4}@pod-{n:02d}" for n in range(39)] + [ODD_WORKER]
TASKS = [f"app.tasks.t{n:02d}" for n in range(29)] + [ODD_TASK]


def runtime_of(worker: int, task: int) -> float:
    return ((worker * 7 + task * 3) % 23) * 0.45


def large(harness: Harness) -> Harness:
    """40 workers x 30 task names; a task fails where worker + task is a multiple of 5."""
    for worker in WORKERS:
        harness.heartbeat(worker, active=2)
    now = time.time()
    for w, worker in enumerate(WORKERS):
        ids = [str(uuid.uuid4()) for _ in TASKS]
        harness.feed(*({"type": "task-received", "uuid": task_id, "name": name, "hostname": worker,
                        "args": "()", "kwargs": "{}"} for task_id, name in zip(ids, TASKS, strict=True)), at=now - 1)
        harness.feed(*({"type": "task-started", "uuid": task_id, "hostname": worker} for task_id in ids), at=now)
        done: list[dict[str, Any]] = []
        for t, task_id in enumerate(ids):
            if (w + t) % 5:
                done.append({"type": "task-succeeded", "uuid": task_id, "hostname": worker,
                             "runtime": runtime_of(w, t), "result": "None"})
            else:
                done.append({"type": "task-failed", "uuid": task_id, "hostname": worker,
                             "exception": f"{ODD_EXCEPTION}('x')", "traceback": ""})
        harness.feed(*done, at=now)
    return harness


def parsed(harness: Harness) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Family -> (sample name, sorted labels) -> value, from prometheus-client's parser."""
    return {family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
            for family in text_string_to_metric_families(harness.exposition())}


def test_large_state_round_trips(harness_factory: Callable[..., Harness]) -> None:
    harness = large(harness_factory())
    families = parsed(harness)
    assert list(families) == [name.removesuffix("_total") for name, _, _ in HEADERS]

    expected_events: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    expected_runtime: dict[tuple[str, str], float] = {}
    for w, worker in enumerate(WORKERS):
        for t, task in enumerate(TASKS):
            finished = "task-succeeded" if (w + t) % 5 else "task-failed"
            for kind in ("task-received", "task-started", finished):
                labels = (("cluster", "default"), ("task", task), ("type", kind), ("worker", worker))
                expected_events[("flower_events_total", labels)] = 1
            if (w + t) % 5:
                expected_runtime[(task, worker)] = runtime_of(w, t)
    assert families["flower_events"] == expected_events

    runtime = families["flower_task_runtime_seconds"]
    bounds = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, float("inf")]
    assert len(runtime) == len(expected_runtime) * (len(bounds) + 2)
    for (task, worker), seconds in expected_runtime.items():
        labels = (("cluster", "default"), ("task", task), ("worker", worker))
        assert runtime[("flower_task_runtime_seconds_sum", labels)] == seconds
        assert runtime[("flower_task_runtime_seconds_count", labels)] == 1
        for bound in bounds:
            le = "+Inf" if bound == float("inf") else repr(bound)
            bucket = runtime[("flower_task_runtime_seconds_bucket", tuple(sorted((("le", le), *labels))))]
            assert bucket == (1 if seconds <= bound else 0), (task, worker, le)

    online = families["flower_worker_online"]
    assert online == {("flower_worker_online", (("cluster", "default"), ("worker", worker))): 1 for worker in WORKERS}
    failures = families["celery_monitor_task_outcomes"]
    failed = sum(1 for w in range(len(WORKERS)) for t in range(len(TASKS)) if (w + t) % 5 == 0)
    assert sum(v for (_, labels), v in failures.items() if ("exception", ODD_EXCEPTION) in labels) == failed


def test_folded_labels_round_trip(harness_factory: Callable[..., Harness]) -> None:
    harness = large(harness_factory("--metrics_worker_label=name", "--metrics_max_task_names=10"))
    families = parsed(harness)
    events = families["flower_events"]
    assert sum(events.values()) == 3 * len(WORKERS) * len(TASKS)
    workers = {dict(labels)["worker"] for _, labels in events}
    assert workers == {"w0", "w1", "w2", "w3", "celery"}
    tasks = {dict(labels)["task"] for _, labels in events}
    assert len(tasks) == 11 and "other" in tasks

    runtime = families["flower_task_runtime_seconds"]
    counts = {labels: v for (name, labels), v in runtime.items() if name.endswith("_count")}
    assert sum(counts.values()) == sum(1 for w in range(len(WORKERS)) for t in range(len(TASKS)) if (w + t) % 5)
    for labels, count in counts.items():
        assert runtime[("flower_task_runtime_seconds_bucket", tuple(sorted((("le", "+Inf"), *labels))))] == count
    assert families["flower_worker_online"] == {("flower_worker_online", (("cluster", "default"), ("worker", w))): 1
                                                for w in workers}
