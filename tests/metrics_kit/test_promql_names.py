"""The metric-name reader the kit's checks rely on: if it misses names, those checks prove nothing."""

from __future__ import annotations

import pytest

from . import contract, promql_names


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", {"up"}),
        ('flower_worker_online{worker="celery@a"} == 0', {"flower_worker_online"}),
        (
            'sum by (job, task) (rate(celery_monitor_task_outcomes_total{state="FAILURE"}[5m]))'
            " / sum without (exception) (rate(celery_monitor_task_outcomes_total[5m]))",
            {"celery_monitor_task_outcomes_total"},
        ),
        (
            "histogram_quantile(0.95, sum(rate(flower_task_runtime_seconds_bucket[10m])) by (le, task)) > 5",
            {"flower_task_runtime_seconds_bucket"},
        ),
        (
            "a_metric and on (queue) group_left (worker) b_metric or ignoring(x) c_metric unless d_metric",
            {"a_metric", "b_metric", "c_metric", "d_metric"},
        ),
        ("rate(m_total[5m] offset 1h) > bool 3e2", {"m_total"}),
        ("time() - max(last_event_timestamp_seconds)", {"last_event_timestamp_seconds"}),
        ('{__name__="celery_monitor_tasks", state="STARTED"}', {"celery_monitor_tasks"}),
        ('count_values("version", build_info{label="by (x) metric_in_string"})', {"build_info"}),
        ("rate(m[$__rate_interval])", {"m"}),
        ('sum(m{job=~"$job", task=~"${task}"}) by (task)', {"m"}),
        ("deriv(q[15m:1m]) > 0 and absent(r)", {"q", "r"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)")', {"m"}),
        ("vector(1)", set()),
    ],
)
def test_reads_the_metric_names_of_an_expression(expr: str, expected: set[str]) -> None:
    assert promql_names.metric_names(expr) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("label_values(celery_monitor_receiver_connected, job)", {"celery_monitor_receiver_connected"}),
        ('label_values(flower_events_total{job=~"$job"}, task)', {"flower_events_total"}),
        ("label_values(job)", set()),
        ("query_result(topk(5, celery_monitor_queue_length))", {"celery_monitor_queue_length"}),
    ],
)
def test_reads_the_metric_names_of_a_grafana_variable_query(query: str, expected: set[str]) -> None:
    assert promql_names.variable_query_metric_names(query) == expected


def test_a_name_pattern_cannot_be_checked() -> None:
    with pytest.raises(promql_names.UncheckableSelector):
        promql_names.metric_names('{__name__=~"flower_.*"}')


@pytest.mark.parametrize("expr", ['sum(m{job="x"', "rate(m[5m)", 'm{job="unterminated}'])
def test_unbalanced_expressions_are_refused(expr: str) -> None:
    with pytest.raises(promql_names.PromQLSyntaxError):
        promql_names.metric_names(expr)


def test_histogram_parts_and_counters_map_to_their_family() -> None:
    assert contract.family_of("flower_task_runtime_seconds_bucket") == "flower_task_runtime_seconds"
    assert contract.family_of("celery_monitor_task_queue_wait_seconds_count") == (
        "celery_monitor_task_queue_wait_seconds"
    )
    assert contract.family_of("flower_events_total") == "flower_events_total"
    assert contract.family_of("flower_task_runtime_seconds") is None  # a histogram has no bare series
    assert contract.family_of("flower_worker_online_bucket") is None  # a gauge has no buckets
    assert contract.family_of("celery_monitor_queue_length_total") is None
