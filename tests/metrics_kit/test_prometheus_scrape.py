"""A real Prometheus scrapes a running monitor, with basic auth, while real workers run tasks.

The alert rules are loaded into that Prometheus too, so they are evaluated against what the
monitor really exports, not only against promtool's synthetic series.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from support import client, processes

from . import contract, dashboard, promql_names, tools
from .prometheus_server import PrometheusServer

pytestmark = pytest.mark.redis

ADDS = 7
FAILS = 2
# A database of the private Redis that no other test's worker uses: events do not cross databases.
BROKER_DB = 7
# Families a Redis broker cannot fill: consumer and unacked counts come from RabbitMQ's API,
# and Redis lists do not tell how old their oldest message is.
NOT_FROM_REDIS = {
    "celery_monitor_queue_unacked",
    "celery_monitor_queue_consumers",
    "celery_monitor_queue_oldest_message_age_seconds",
}
# Families a healthy cluster leaves without a sample: no task is lost here (the alert rules must
# stay quiet), none has its final event missed. tests/ingest/test_lost_workers.py kills a worker,
# tests/ingest/test_reconcile_cluster.py a monitor and tests/schedules/test_beat_missed.py a beat,
# and read the families on /metrics. No notification channel is configured here:
# tests/notify/test_notify_delivery.py reads the deliveries'.
NOT_WHEN_HEALTHY = {"celery_monitor_tasks_lost_total", "celery_monitor_tasks_reconciled_total",
                    "celery_monitor_schedule_missed_total", "celery_monitor_notifications_total"}


@dataclass
class Stack:
    prometheus: PrometheusServer
    worker: processes.Worker
    monitor: processes.MonitorProcess


@pytest.fixture(scope="module")
def stack(redis_server: processes.RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus-scrape")
    broker = f"redis://127.0.0.1:{redis_server.port}/{BROKER_DB}"
    backend = f"redis://127.0.0.1:{redis_server.port}/{BROKER_DB + 1}"
    credentials = ("scraper", secrets.token_urlsafe(12))
    monitor = processes.new_monitor(broker, tmp, auth=credentials).start()
    prometheus = PrometheusServer(tmp, f"127.0.0.1:{monitor.port}", credentials, tools.RULES).start()
    worker = processes.start_worker(broker, f"prom-{uuid.uuid4().hex[:8]}", tmp, backend=backend)
    try:
        with client.celery_client(broker, backend) as app:
            results = [app.send_task("tests.add", args=(n, n)) for n in range(ADDS)]
            results += [app.send_task("tests.fail", args=("expected",)) for _ in range(FAILS)]
            for result in results:
                result.get(timeout=20, propagate=False)
        yield Stack(prometheus, worker, monitor)
    finally:
        worker.stop()
        prometheus.stop()
        monitor.stop()


def test_prometheus_scrapes_the_monitor_with_basic_auth(stack: Stack) -> None:
    assert stack.prometheus.settled('up{job="celery-monitor"}', 1) == 1
    (target,) = stack.prometheus.api("targets")["activeTargets"]
    assert target["health"] == "up", target["lastError"]
    assert target["scrapeUrl"] == f"{stack.monitor.url}/metrics"


def test_task_counts_match_the_tasks_run(stack: Stack) -> None:
    prometheus = stack.prometheus
    assert prometheus.settled('sum(flower_events_total{task="tests.add",type="task-succeeded"})', ADDS) == ADDS
    assert prometheus.settled('sum(flower_events_total{task="tests.fail",type="task-failed"})', FAILS) == FAILS
    assert prometheus.settled('sum(flower_task_runtime_seconds_count{task="tests.add"})', ADDS) == ADDS
    outcome = 'celery_monitor_task_outcomes_total{task="tests.fail",state="FAILURE",exception="ValueError"}'
    assert prometheus.settled(outcome, FAILS) == FAILS
    assert prometheus.settled('celery_monitor_tasks{state="SUCCESS"}', ADDS) == ADDS


def test_worker_and_receiver_state_match_reality(stack: Stack) -> None:
    prometheus, worker = stack.prometheus, stack.worker.hostname
    assert prometheus.settled(f'flower_worker_online{{worker="{worker}"}}', 1) == 1
    assert prometheus.settled('celery_monitor_workers{status="online"}', 1) == 1
    assert prometheus.settled(f'celery_monitor_worker_pool_processes{{worker="{worker}"}}', 2) == 2
    assert prometheus.settled("celery_monitor_receiver_connected", 1) == 1
    # Each task sends at least sent, received, started and a final event.
    assert (prometheus.value("celery_monitor_events_received_total") or 0) >= 4 * (ADDS + FAILS)


def exported_families(stack: Stack) -> set[str]:
    names = [
        name
        for name in stack.prometheus.api("label/__name__/values")
        if name.startswith(("flower_", "celery_monitor_"))
    ]
    unknown = sorted(name for name in names if contract.family_of(name) is None)
    assert not unknown, f"the monitor exports series outside the contract: {unknown}"
    return {family for name in names if (family := contract.family_of(name))}


def test_every_contract_family_a_redis_broker_can_fill_is_exported(stack: Stack) -> None:
    stack.prometheus.settled('sum(flower_events_total{type="task-succeeded"})', ADDS)
    missing = set(contract.METRIC_FAMILIES) - NOT_FROM_REDIS - NOT_WHEN_HEALTHY - exported_families(stack)
    assert not missing, f"families in the contract that Prometheus never received: {sorted(missing)}"


def test_every_dashboard_query_runs_and_shows_data_when_its_metrics_exist(stack: Stack) -> None:
    exported = exported_families(stack)
    queries = [
        (
            title,
            promql_names.without_grafana_variables(expr, interval="1m", value=".*"),
            {contract.family_of(name) for name in promql_names.metric_names(expr)},
        )
        for title, expr in dashboard.queries(dashboard.load())
    ]

    def empty_panels() -> list[str]:
        # Every query must run (a PromQL error fails at once); rates need two scrapes to show.
        return [
            f"{title}: {live}"
            for title, live, families in queries
            if families <= exported and not stack.prometheus.query(live)
        ]

    try:
        processes.wait_for(lambda: not empty_panels(), 15, message="data in every panel")
    except AssertionError:
        pass
    assert empty_panels() == [], "panels with no data although their metrics are scraped"


def test_alert_rules_evaluate_cleanly_and_stay_quiet_on_a_healthy_cluster(stack: Stack) -> None:
    def evaluated_rules() -> list[dict[str, object]] | None:
        rules = [rule for group in stack.prometheus.api("rules")["groups"] for rule in group["rules"]]
        done = all(not str(rule["lastEvaluation"]).startswith("0001-") for rule in rules)
        return rules if rules and done else None

    rules = processes.wait_for(evaluated_rules, 15, message="every rule evaluated")
    shipped = yaml.safe_load(tools.RULES.read_text())["groups"]
    assert {rule["name"] for rule in rules} == {rule["alert"] for group in shipped for rule in group["rules"]}
    assert {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"} == {}
    processes.wait_for(lambda: not stack.prometheus.api("alerts")["alerts"], 15, message="no alert pending or firing")


def test_a_stopped_worker_turns_offline_and_raises_worker_down(stack: Stack) -> None:
    prometheus, worker = stack.prometheus, stack.worker.hostname
    stack.worker.stop()
    assert prometheus.settled(f'flower_worker_online{{worker="{worker}"}}', 0) == 0
    assert prometheus.settled('celery_monitor_workers{status="online"}', 0) == 0
    pending = f'ALERTS{{alertname="CeleryWorkerDown",alertstate="pending",worker="{worker}"}}'
    assert prometheus.settled(pending, 1) == 1
    assert prometheus.settled('ALERTS{alertname="CeleryNoWorkersOnline",alertstate="pending"}', 1) == 1
