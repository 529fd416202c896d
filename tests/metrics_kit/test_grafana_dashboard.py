"""The Grafana dashboard: importable JSON, one datasource variable, queries on exported metrics only."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from . import contract, dashboard, promql_names, tools

BOARD = dashboard.load()
QUERIES = list(dashboard.queries(BOARD))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_dashboard_is_identified_and_titled() -> None:
    assert BOARD["uid"] == "celery-monitor"
    assert BOARD["title"] == "Celery Monitor"
    assert isinstance(BOARD["schemaVersion"], int)


def test_a_datasource_variable_picks_the_prometheus() -> None:
    variables = {variable["name"]: variable for variable in BOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_and_variable_queries_through_the_datasource_variable() -> None:
    for panel in dashboard.panels(BOARD):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
    for variable in BOARD["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    ids = [panel["id"] for panel in dashboard.panels(BOARD)]
    assert len(ids) == len(set(ids))
    for panel in dashboard.panels(BOARD):
        x, width = panel["gridPos"]["x"], panel["gridPos"]["w"]
        assert x >= 0 and width > 0 and x + width <= 24, panel["title"]
    refs = [[target["refId"] for target in panel.get("targets", [])] for panel in dashboard.panels(BOARD)]
    assert all(len(panel_refs) == len(set(panel_refs)) for panel_refs in refs)


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[f"{title}:{expr[:40]}" for title, expr in QUERIES])
def test_every_query_uses_only_exported_metrics(title: str, expr: str) -> None:
    names = promql_names.metric_names(expr)
    assert names, f"{title!r} selects no metric: {expr}"
    unknown = {name for name in names if contract.family_of(name) is None}
    assert not unknown, f"{title!r} uses metrics the monitor does not export: {sorted(unknown)}"


def test_every_variable_query_uses_only_exported_metrics() -> None:
    for name, query in dashboard.variable_queries(BOARD):
        names = promql_names.variable_query_metric_names(query)
        assert names, f"variable {name} selects no metric"
        assert all(contract.family_of(metric) for metric in names), f"variable {name}: {sorted(names)}"


def test_every_query_is_valid_promql(tmp_path: Any) -> None:
    """Prometheus's own parser (via promtool) reads each query once Grafana's variables are filled."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": promql_names.without_grafana_variables(expr)}
        for index, (_title, expr) in enumerate(QUERIES)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [tools.binary("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def panel_queries(title_pattern: str) -> str:
    joined = [expr for title, expr in QUERIES if re.search(title_pattern, title)]
    assert joined, f"no panel titled like {title_pattern!r}"
    return "\n".join(joined)


def test_throughput_by_state_and_failure_rate_are_shown() -> None:
    assert "sum by (type)" in panel_queries("^Task events by type$")
    assert "flower_events_total" in panel_queries("^Task events by type$")
    assert "sum by (state)" in panel_queries("^Task outcomes by state$")
    failure = panel_queries("^Failure rate by task$")
    assert 'state="FAILURE"' in failure and "/" in failure


@pytest.mark.parametrize("quantile", ["0.5", "0.95", "0.99"])
def test_runtime_quantiles_per_task_are_shown(quantile: str) -> None:
    expected = f"histogram_quantile({quantile}, sum by (task, le) (rate(flower_task_runtime_seconds_bucket"
    assert any(expr.startswith(expected) for _title, expr in QUERIES)


def test_queues_workers_and_monitor_health_are_shown() -> None:
    shown = set().union(*(promql_names.metric_names(expr) for _title, expr in QUERIES))
    for family in (
        "celery_monitor_queue_length",
        "celery_monitor_workers",
        "flower_worker_online",
        "celery_monitor_receiver_connected",
        "celery_monitor_events_received_total",
        "celery_monitor_event_messages_dropped_total",
        "celery_monitor_ingest_lag_seconds",
    ):
        assert family in shown, f"no panel shows {family}"


def test_every_exported_family_appears_somewhere() -> None:
    shown = {contract.family_of(name) for _title, expr in QUERIES for name in promql_names.metric_names(expr)}
    assert set(contract.METRIC_FAMILIES) - shown == set()


def test_a_cluster_variable_filters_every_query_of_a_family_with_a_cluster_label() -> None:
    variables = {variable["name"]: variable for variable in BOARD["templating"]["list"]}
    cluster = variables["cluster"]
    assert cluster["multi"] and cluster["includeAll"] and cluster["allValue"] == ".*"
    assert "cluster" in variables["task"]["query"]["query"]
    selector = re.compile(r"\b([a-z_]+)\{([^}]*)\}")
    filtered = 0
    for title, expr in QUERIES:
        for name, matchers in selector.findall(expr):
            if contract.family_of(name) in contract.CLUSTER_FAMILIES:
                assert 'cluster=~"$cluster"' in matchers, (title, expr)
                filtered += 1
    assert filtered >= len(contract.CLUSTER_FAMILIES)
    # Per worker: one hostname may be in two clusters, so the panels keep them apart.
    assert not [expr for _title, expr in QUERIES if "by (worker)" in expr]
