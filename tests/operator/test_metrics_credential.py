"""Prometheus scrapes an operator-deployed monitor with the read-only token the operator keeps for it.

The monitor runs with the options and environment the operator renders, its Secrets filled in as
the kubelet would from the Secrets the operator renders. A real Prometheus is configured from the
rendered ServiceMonitor as the Prometheus Operator does it (its path, its bearer token read from the
metrics Secret), beside a job that sends no credential.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cmon_helpers import make_monitor, secret_values
from metrics_kit.prometheus_server import PrometheusServer
from support import processes
from support.kubelet import kubelet_environment

from celery_monitor_operator.renderers import deployment, secret, servicemonitor

pytestmark = pytest.mark.redis

BROKER_DB = 13
WITH_TOKEN = "service-monitor"
ANONYMOUS = "anonymous"


@dataclass
class Stack:
    monitor: processes.MonitorProcess
    prometheus: PrometheusServer
    values: dict[str, str]
    endpoint: dict[str, Any]


def scrape_job(name: str, endpoint: dict[str, Any], values: dict[str, str] | None) -> dict[str, Any]:
    """A ServiceMonitor endpoint as the Prometheus Operator writes it into Prometheus's configuration;
    without ``values`` (the Secrets it reads) the job sends no credential."""
    job: dict[str, Any] = {"job_name": name, "metrics_path": endpoint["path"]}
    if values is not None and "authorization" in endpoint:
        ref = endpoint["authorization"]["credentials"]
        job["authorization"] = {"type": endpoint["authorization"]["type"],
                                "credentials": values[f"{ref['name']}/{ref['key']}"]}
    return job


@pytest.fixture(scope="module")
def stack(redis_server: processes.RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("metrics-credential")
    resource = make_monitor({"broker": {"url": f"redis://127.0.0.1:{redis_server.port}/{BROKER_DB}"},
                             "serviceMonitor": {"enabled": True}})
    values = secret_values(secret.render_auth_secret(resource), secret.render_metrics_secret(resource))
    port = processes.free_port()
    # The operator's options first; the host-specific ones after them win, as repeated options do.
    args = [*deployment.monitor_args(resource), f"--port={port}", f"--db={tmp / 'monitor.db'}"]
    monitor = processes.MonitorProcess(args, port, tmp / "monitor.log", kubelet_environment(resource, values))
    monitor.start(wait_connected=False)
    (endpoint,) = servicemonitor.render_service_monitor(resource)["spec"]["endpoints"]
    rules = tmp / "rules.yaml"
    rules.write_text("groups: []\n")
    prometheus = PrometheusServer(tmp, f"127.0.0.1:{port}", ("", ""), rules, jobs=[
        scrape_job(WITH_TOKEN, endpoint, values), scrape_job(ANONYMOUS, endpoint, None)])
    try:
        prometheus.start()
        yield Stack(monitor, prometheus, values, endpoint)
    finally:
        prometheus.stop()
        monitor.stop()


def target(stack: Stack, job: str) -> dict[str, Any]:
    (found,) = [item for item in stack.prometheus.api("targets")["activeTargets"] if item["labels"]["job"] == job]
    return dict(found)


def test_prometheus_scrapes_with_the_token_the_service_monitor_names(stack: Stack) -> None:
    assert stack.prometheus.settled(f'up{{job="{WITH_TOKEN}"}}', 1) == 1
    assert target(stack, WITH_TOKEN)["health"] == "up"
    assert stack.prometheus.query(f'{{job="{WITH_TOKEN}",__name__=~"celery_monitor_.*"}}')  # the monitor's own


def test_prometheus_without_the_token_is_refused(stack: Stack) -> None:
    assert stack.prometheus.settled(f'up{{job="{ANONYMOUS}"}}', 0) == 0
    assert "401" in target(stack, ANONYMOUS)["lastError"]


def test_the_token_reads_metrics_and_nothing_it_could_change(stack: Stack) -> None:
    token = stack.values["demo-metrics/token"]
    bearer = {"Authorization": f"Bearer {token}"}
    client = httpx.Client(base_url=stack.monitor.url, timeout=10)

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    scraped = client.get("/metrics", headers=bearer)
    assert scraped.status_code == 200 and "celery_monitor_" in scraped.text
    assert client.get("/api/workers", headers=bearer).status_code == 200
    refused = client.post("/api/task/revoke/8a3c0e5e-0000-4000-8000-000000000000", headers=bearer)
    assert refused.status_code == 403 and "Read-only" in refused.text, refused.text


def test_the_admin_login_still_reads_metrics_but_is_not_what_prometheus_gets(stack: Stack) -> None:
    login = (stack.values["demo-auth/username"], stack.values["demo-auth/password"])

    assert httpx.get(f"{stack.monitor.url}/metrics", auth=login, timeout=10).status_code == 200
    assert stack.endpoint["authorization"]["credentials"]["name"] == "demo-metrics"
    assert "basicAuth" not in stack.endpoint


def test_the_metrics_secret_holds_no_usable_admin_credential() -> None:
    resource = make_monitor()
    rendered = secret.render_metrics_secret(resource)
    admin = secret.render_auth_secret(resource)

    assert set(rendered["data"]) == {secret.METRICS_TOKEN_KEY, secret.METRICS_ENTRY_KEY}
    decoded = {base64.b64decode(value).decode() for value in rendered["data"].values()}
    assert not decoded & {base64.b64decode(value).decode() for value in admin["data"].values()}

