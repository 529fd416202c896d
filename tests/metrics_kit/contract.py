"""The metric families the monitor promises to export, and the series names they expose.

The alert rules and the dashboard may name only these: a rule on a metric nobody exports never fires.
"""

from __future__ import annotations

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"

# Family name as it appears on /metrics -> type. Counters are listed with their `_total` suffix.
METRIC_FAMILIES: dict[str, str] = {
    # Flower's six families, unchanged.
    "flower_events_total": COUNTER,
    "flower_task_runtime_seconds": HISTOGRAM,
    "flower_task_prefetch_time_seconds": GAUGE,
    "flower_worker_prefetched_tasks": GAUGE,
    "flower_worker_online": GAUGE,
    "flower_worker_number_of_currently_executing_tasks": GAUGE,
    # The monitor's own.
    "celery_monitor_queue_length": GAUGE,
    "celery_monitor_queue_unacked": GAUGE,
    "celery_monitor_queue_consumers": GAUGE,
    "celery_monitor_queue_oldest_message_age_seconds": GAUGE,
    "celery_monitor_queue_reserved": GAUGE,
    "celery_monitor_queue_backlog": GAUGE,
    "celery_monitor_tasks": GAUGE,
    "celery_monitor_task_outcomes_total": COUNTER,
    "celery_monitor_tasks_lost_total": COUNTER,
    "celery_monitor_schedule_missed_total": COUNTER,
    "celery_monitor_tasks_reconciled_total": COUNTER,
    "celery_monitor_task_queue_wait_seconds": HISTOGRAM,
    "celery_monitor_task_queue_latency_seconds": HISTOGRAM,
    "celery_monitor_workers": GAUGE,
    "celery_monitor_worker_pool_processes": GAUGE,
    "celery_monitor_events_received_total": COUNTER,
    "celery_monitor_event_messages_dropped_total": COUNTER,
    "celery_monitor_events_malformed_total": COUNTER,
    "celery_monitor_events_rejected_total": COUNTER,
    "celery_monitor_receiver_connected": GAUGE,
    "celery_monitor_receiver_reconnects_total": COUNTER,
    "celery_monitor_receiver_disconnects_total": COUNTER,
    "celery_monitor_reader_restarts_total": COUNTER,
    "celery_monitor_spool_backlog_bytes": GAUGE,
    "celery_monitor_last_event_timestamp_seconds": GAUGE,
    "celery_monitor_ingest_lag_seconds": GAUGE,
    "celery_monitor_store_tasks": GAUGE,
    "celery_monitor_store_size_bytes": GAUGE,
    "celery_monitor_store_quarantined_rows": GAUGE,
    "celery_monitor_receiver_errors_total": COUNTER,
    "celery_monitor_store_persisting": GAUGE,
    "celery_monitor_store_write_errors_total": COUNTER,
    "celery_monitor_store_pending_tasks": GAUGE,
    "celery_monitor_store_writes_dropped_total": COUNTER,
    "celery_monitor_background_errors_total": COUNTER,
    "celery_monitor_live": GAUGE,
    "celery_monitor_notifications_total": COUNTER,
    "celery_monitor_notification_notices_dropped_total": COUNTER,
    "celery_monitor_leader": GAUGE,
}

# Families with a ``cluster`` label: those of tasks, workers, queues and each cluster's event stream
# (``default`` for a monitor of one broker). The others describe the monitor as a whole.
CLUSTER_FAMILIES: frozenset[str] = frozenset({
    "flower_events_total",
    "flower_task_runtime_seconds",
    "flower_task_prefetch_time_seconds",
    "flower_worker_prefetched_tasks",
    "flower_worker_online",
    "flower_worker_number_of_currently_executing_tasks",
    "celery_monitor_tasks",
    "celery_monitor_task_outcomes_total",
    "celery_monitor_task_queue_wait_seconds",
    "celery_monitor_task_queue_latency_seconds",
    "celery_monitor_tasks_lost_total",
    "celery_monitor_workers",
    "celery_monitor_worker_pool_processes",
    "celery_monitor_events_received_total",
    "celery_monitor_event_messages_dropped_total",
    "celery_monitor_reader_restarts_total",
    "celery_monitor_spool_backlog_bytes",
    "celery_monitor_receiver_connected",
    "celery_monitor_receiver_reconnects_total",
    "celery_monitor_receiver_disconnects_total",
    "celery_monitor_receiver_errors_total",
    "celery_monitor_last_event_timestamp_seconds",
    "celery_monitor_queue_length",
    "celery_monitor_queue_unacked",
    "celery_monitor_queue_consumers",
    "celery_monitor_queue_oldest_message_age_seconds",
    "celery_monitor_queue_reserved",
    "celery_monitor_queue_backlog",
})

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def series_names() -> frozenset[str]:
    """Every series name a query may select: gauges and counters as is, histograms by their parts."""
    names: set[str] = set()
    for family, kind in METRIC_FAMILIES.items():
        if kind == HISTOGRAM:
            names.update(family + suffix for suffix in _HISTOGRAM_SUFFIXES)
        else:
            names.add(family)
    return frozenset(names)


def family_of(series: str) -> str | None:
    """The contract family a series name belongs to, or None when the contract has no such series."""
    if series in METRIC_FAMILIES and METRIC_FAMILIES[series] != HISTOGRAM:
        return series
    for suffix in _HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and METRIC_FAMILIES.get(base) == HISTOGRAM:
            return base
    return None
