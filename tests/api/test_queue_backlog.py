"""The backlog a worker autoscaler reads, on real brokers and real workers.

A queue nobody consumes, filled with tasks of every priority (on Redis each priority step is a list
of its own), and a queue whose one worker runs a task and holds prefetched ones: the backlog is
what waits in the broker plus what the worker reserved, read as KEDA would read it. The ScaledObject's
trigger is the operator's own rendering for a CeleryMonitor naming these queues: its metrics-api URL
(with the read-only metrics token) and its Prometheus query, evaluated on the monitor's /metrics.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from metrics_kit.prometheus_server import PrometheusServer
from prometheus_client.parser import text_string_to_metric_families
from support.client import celery_client
from support.processes import MonitorProcess, Worker, kill9_with_pool, new_monitor, start_worker, wait_for

from celery_monitor_operator import spec, spec_parser
from celery_monitor_operator.renderers import autoscaling, secret

ADMIN = ("admin", "s3cret")
CONFIG = """
from kombu import Queue
task_queues = [Queue("celery"), Queue({held!r})]
broker_transport_options = {options!r}
"""
# Celery's way to many priorities on Redis: a list per step, served highest first.
PRIORITY_OPTIONS = {"queue_order_strategy": "priority", "priority_steps": list(range(10))}
SENT_TO_HELD = 6  # the worker runs one and prefetches two (-c 1, multiplier 2): three stay in the broker


def scaled_monitor(parked: str, held: str) -> spec.CeleryMonitorResource:
    return spec_parser.parse({"metadata": {"name": "cm", "namespace": "jobs"}, "spec": {
        "broker": {"url": "redis://redis:6379/0"},
        "autoscaling": {"enabled": True, "workerDeployment": "workers", "queues": [parked, held]}}})


def gjson_path(document: Any, path: str) -> Any:
    """The dotted paths of GJSON that the trigger uses (keys only)."""
    for key in path.split("."):
        document = document[key]
    return document


def trigger_value(monitor: MonitorProcess, resource: spec.CeleryMonitorResource, token: str) -> float:
    """What KEDA's metrics-api trigger reads: its URL, pointed at this monitor, with the bearer token."""
    (trigger,) = autoscaling.render_scaled_object(resource)["spec"]["triggers"]
    url = trigger["metadata"]["url"].replace(autoscaling.monitor_base_url(resource), monitor.url + "/")
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return float(gjson_path(response.json(), trigger["metadata"]["valueLocation"]))


def gauges(monitor: MonitorProcess, token: str, family: str) -> dict[str, float]:
    text = httpx.get(f"{monitor.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    return {sample.labels["queue"]: sample.value for metric in text_string_to_metric_families(text)
            for sample in metric.samples if sample.name == family}


def prometheus_sum(monitor: MonitorProcess, token: str, resource: spec.CeleryMonitorResource) -> float:
    """The ScaledObject's Prometheus query (a sum over exactly its queues), on the scraped gauges."""
    escaped = "|".join(queue.replace(".", "\\\\.") for queue in resource.spec.autoscaling.queues)
    assert f'queue=~"{escaped}"' in autoscaling.prometheus_query(resource)
    backlog = gauges(monitor, token, autoscaling.BACKLOG_METRIC)
    return sum(backlog.get(queue, 0.0) for queue in resource.spec.autoscaling.queues)


def prometheus_scraping(monitor: MonitorProcess, token: str, tmp_path: Path) -> PrometheusServer:
    """A real Prometheus scraping the monitor as the Prometheus Operator would for the CeleryMonitor "cm" in
    "jobs" (job: the Service's name, namespace: its namespace), and as the same job in another namespace
    (another team's monitor of the same name), which the trigger's query must leave out."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("groups: []\n")
    jobs = [{"job_name": f"cm-in-{namespace}", "metrics_path": "/metrics",
             "authorization": {"type": "Bearer", "credentials": token},
             "relabel_configs": [{"target_label": "namespace", "replacement": namespace},
                                 {"target_label": "job", "replacement": "cm"}]} for namespace in ("jobs", "other")]
    (tmp_path / "prometheus").mkdir()
    return PrometheusServer(tmp_path / "prometheus", f"127.0.0.1:{monitor.port}", ("", ""), rules, jobs=jobs).start()


def start_monitor(broker: str, tmp_path: Path, held: str, parked: str,
                  options: dict[str, Any]) -> tuple[MonitorProcess, str]:
    """A monitor as the operator runs it: a login, metrics behind auth, a read-only token, --queues."""
    token = f"cmon_{secrets.token_urlsafe(16)}"
    (tmp_path / "flowerconfig.py").write_text(CONFIG.format(held=held, options=options))
    monitor = new_monitor(broker, tmp_path, "--metrics_auth=any", f"--api_tokens={secret.metrics_token_entry(token)}",
                          f"--queues={parked},{held}", auth=ADMIN).start(timeout=40)
    return monitor, token


def fill(broker: str, backend: str, parked: str, held: str, options: dict[str, Any]) -> None:
    with celery_client(broker, backend) as app:
        app.conf.broker_transport_options = options
        for priority in (None, 1, 4, 7, 9):
            app.send_task("tests.add", args=(1, 2), queue=parked, priority=priority)
        for _ in range(SENT_TO_HELD):
            app.send_task("tests.hold", args=(120,), queue=held)


def busy_worker(broker: str, backend: str, held: str, tmp_path: Path, options: dict[str, Any]) -> Worker:
    return start_worker(broker, f"busy-{held}", tmp_path, "-Q", held, "-c", "1", "--prefetch-multiplier=2",
                        backend=backend, env={"TEST_BROKER_TRANSPORT_OPTIONS": json.dumps(options)})


def assert_backlog(monitor: MonitorProcess, token: str, parked: str, held: str) -> None:
    resource = scaled_monitor(parked, held)

    def settled() -> dict[str, Any] | None:
        answer = monitor.json("/api/queues/backlog", params={"queue": [parked, held]})
        return answer if answer["queues"][held]["reserved"] == 2 and answer["queues"][held]["waiting"] == 3 else None

    answer = wait_for(settled, 60, interval=0.5, message="one task running, two reserved, three waiting")
    one = {"cluster": "default"}
    assert answer["queues"][parked] == {**one, "name": parked, "waiting": 5, "reserved": 0, "backlog": 5}
    assert answer["queues"][held] == {**one, "name": held, "waiting": 3, "reserved": 2, "backlog": 5}
    assert (answer["backlog"], answer["waiting"], answer["reserved"]) == (10, 8, 2)

    assert trigger_value(monitor, resource, token) == 10
    assert prometheus_sum(monitor, token, resource) == 10
    assert gauges(monitor, token, "celery_monitor_queue_reserved")[held] == 2
    # Read-only: the token reads, changes nothing; without it nothing is read.
    assert httpx.get(f"{monitor.url}/api/queues/backlog", timeout=10).status_code == 401
    refused = httpx.post(f"{monitor.url}/api/task/revoke/{uuid.uuid4()}",
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert refused.status_code == 403
    assert monitor.get("/api/queues/backlog", params={"queue": "nobody-measures-this"}).status_code == 404


@pytest.mark.redis
def test_redis_backlog_counts_priority_sub_queues_and_prefetched_tasks(redis_server: Any, tmp_path: Path) -> None:
    broker, backend = redis_server.url.replace("/0", "/5"), redis_server.url.replace("/0", "/6")
    parked, held = f"parked.{uuid.uuid4().hex[:6]}", f"held-{uuid.uuid4().hex[:6]}"
    monitor, token = start_monitor(broker, tmp_path, held, parked, PRIORITY_OPTIONS)
    worker = busy_worker(broker, backend, held, tmp_path, PRIORITY_OPTIONS)
    prometheus = prometheus_scraping(monitor, token, tmp_path)
    try:
        wait_for(lambda: monitor.json("/api/workers?status=true").get(worker.hostname), 40, message="worker online")
        # Nothing consumes the parked queue yet: measured all the same (--queues), at zero.
        assert monitor.json("/api/queues/backlog", params={"queue": parked})["backlog"] == 0
        fill(broker, backend, parked, held, PRIORITY_OPTIONS)
        lists = redis.Redis.from_url(broker).keys(f"{parked}*")
        assert len(lists) == 5, "each priority went to a list of its own"
        assert_backlog(monitor, token, parked, held)
        # The ScaledObject's prometheus trigger, its query as rendered, on a real Prometheus.
        query = autoscaling.prometheus_query(scaled_monitor(parked, held))
        assert prometheus.settled(query, 10) == 10
        # The other namespace's series are there (each job scrapes on its own beat): left out above.
        assert prometheus.settled(f'sum({autoscaling.BACKLOG_METRIC}{{job="cm"}})', 20) == 20
        assert prometheus.value(query) == 10
    finally:
        prometheus.stop()
        kill9_with_pool(worker)
        monitor.stop()


@pytest.mark.rabbitmq
def test_rabbitmq_backlog_counts_ready_and_prefetched_tasks(rabbitmq_vhost: str, redis_server: Any,
                                                            tmp_path: Path) -> None:
    broker, backend = f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}", redis_server.url.replace("/0", "/7")
    parked, held = f"parked.{uuid.uuid4().hex[:6]}", f"held-{uuid.uuid4().hex[:6]}"
    monitor, token = start_monitor(broker, tmp_path, held, parked, {})
    worker = busy_worker(broker, backend, held, tmp_path, {})
    try:
        wait_for(lambda: monitor.json("/api/workers?status=true").get(worker.hostname), 40, message="worker online")
        fill(broker, backend, parked, held, {})
        assert_backlog(monitor, token, parked, held)
    finally:
        kill9_with_pool(worker)
        monitor.stop()
