"""spec.autoscaling: what is refused (naming the field), what is rendered, and what reconcile decides.

The rendered objects are checked against KEDA's CRDs and Kubernetes' own schemas by the schema
tests (the example specs of cmon_helpers carry autoscaling); here, what they say.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from cmon_helpers import make_monitor

from celery_monitor_operator import naming, reconcile, spec_reader, status, worker_costs
from celery_monitor_operator.renderers import autoscaling, deployment

BROKER = {"url": "redis://redis:6379/0"}
SCALED = {"enabled": True, "workerDeployment": "workers", "queues": ["celery", "reports.pdf"], "backlogPerReplica": 5}
PROMETHEUS = {**SCALED, "source": "Prometheus", "prometheus": {"serverAddress": "http://prometheus:9090"}}
KEDA = reconcile.Capabilities(service_monitors=False, prometheus_rules=False, http_routes=False,
                              scaled_objects=True)
NO_KEDA = reconcile.Capabilities(service_monitors=False, prometheus_rules=False, http_routes=False)


def scaled(autoscaling_spec: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"broker": BROKER, "autoscaling": autoscaling_spec, **more}


@pytest.mark.parametrize(("autoscaling_spec", "more", "field"), [
    ({"enabled": True, "queues": ["celery"]}, {}, "spec.autoscaling.workerDeployment"),
    ({"enabled": True, "workerDeployment": "Workers!", "queues": ["celery"]}, {}, "spec.autoscaling.workerDeployment"),
    ({"enabled": True, "workerDeployment": "workers"}, {}, "spec.autoscaling.queues"),
    ({**SCALED, "queues": ["a,b"]}, {}, "spec.autoscaling.queues[0]"),
    ({**SCALED, "queues": ["a", "a"]}, {}, "spec.autoscaling.queues"),
    ({**SCALED, "minReplicas": 5, "maxReplicas": 2}, {}, "spec.autoscaling.minReplicas"),
    ({**SCALED, "maxReplicas": 0}, {}, "spec.autoscaling.maxReplicas"),
    ({**SCALED, "backlogPerReplica": 0}, {}, "spec.autoscaling.backlogPerReplica"),
    ({**SCALED, "source": "Redis"}, {}, "spec.autoscaling.source"),
    ({**SCALED, "source": "Prometheus"}, {}, "spec.autoscaling.prometheus.serverAddress"),
    ({**PROMETHEUS, "prometheus": {"serverAddress": "prometheus:9090"}}, {},
     "spec.autoscaling.prometheus.serverAddress"),
    (SCALED, {"auth": {"basic": {"enabled": False}}}, "spec.autoscaling.source"),
    ({**SCALED, "podDeletionCost": {"enabled": "yes"}}, {}, "spec.autoscaling.podDeletionCost.enabled"),
    ({**SCALED, "cluster": "prod"}, {}, "spec.autoscaling.cluster"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_spec_the_autoscaler_cannot_use_is_refused_naming_the_field(autoscaling_spec: dict[str, Any],
                                                                     more: dict[str, Any], field: str) -> None:
    with pytest.raises(spec_reader.SpecError) as raised:
        make_monitor(scaled(autoscaling_spec, **more))

    assert raised.value.reason == spec_reader.INVALID_SPEC
    assert any(problem.message.startswith(f"{field}:") for problem in raised.value.problems), raised.value.problems


def test_prometheus_with_a_password_in_its_address_is_refused_as_inline_credentials() -> None:
    with pytest.raises(spec_reader.SpecError) as raised:
        make_monitor(scaled({**PROMETHEUS, "prometheus": {"serverAddress": "http://u:pw@prometheus:9090"}}))

    assert raised.value.reason == "InlineCredentials"
    assert "pw" not in str(raised.value)


def test_the_metrics_api_trigger_reads_the_summed_backlog_with_the_read_only_token() -> None:
    monitor = make_monitor(scaled(SCALED), name="cm", namespace="jobs")
    scaled_object = autoscaling.render_scaled_object(monitor)
    (trigger,) = scaled_object["spec"]["triggers"]
    authentication = autoscaling.render_trigger_authentication(monitor)

    assert scaled_object["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                       "name": "workers"}
    assert (scaled_object["spec"]["minReplicaCount"], scaled_object["spec"]["maxReplicaCount"]) == (1, 10)
    url = urllib.parse.urlsplit(trigger["metadata"]["url"])
    assert (url.scheme, url.netloc, url.path) == ("http", "cm.jobs.svc:5555", "/api/queues/backlog")
    assert urllib.parse.parse_qs(url.query) == {"queue": ["celery", "reports.pdf"]}
    assert trigger["metadata"] | {"url": ""} == {"url": "", "valueLocation": "backlog", "targetValue": "5",
                                                 "authMode": "bearer"}
    assert trigger["authenticationRef"] == {"name": authentication["metadata"]["name"]}
    # The token stays in the metrics Secret the operator made for Prometheus: read-only, never the login.
    assert authentication["spec"] == {"secretTargetRef": [{"parameter": "token", "name": "cm-metrics",
                                                           "key": "token"}]}
    assert "--queues=celery,reports.pdf" in deployment.monitor_args(monitor)


def test_the_metrics_api_url_follows_the_monitor_s_prefix_and_tls() -> None:
    monitor = make_monitor(scaled(SCALED, ingress={"enabled": True, "pathPrefix": "/cm"},
                                  extraArgs=["--certfile=/tls/tls.crt", "--keyfile=/tls/tls.key"]))
    (trigger,) = autoscaling.render_scaled_object(monitor)["spec"]["triggers"]

    assert trigger["metadata"]["url"].startswith("https://demo.team.svc:5555/cm/api/queues/backlog?")


def test_the_prometheus_trigger_sums_this_monitor_s_gauges_over_exactly_its_queues() -> None:
    monitor = make_monitor(scaled({**PROMETHEUS, "queues": ["celery", "reports.pdf", 'odd"q']}),
                           name="cm", namespace="jobs")
    (trigger,) = autoscaling.render_scaled_object(monitor)["spec"]["triggers"]

    assert trigger["type"] == "prometheus" and "authenticationRef" not in trigger
    assert trigger["metadata"] == {
        "serverAddress": "http://prometheus:9090", "threshold": "5",
        "query": 'sum(celery_monitor_queue_backlog{namespace="jobs",job="cm",'
                 'queue=~"celery|reports\\\\.pdf|odd\\"q"})'}


CLUSTERS = [{"name": "prod", "broker": {"url": "redis://redis:6379/0"}},
            {"name": "staging", "broker": {"url": "redis://redis:6379/1"}}]


def test_with_several_clusters_the_backlog_is_the_named_clusters_alone() -> None:
    """A queue of one name in each cluster is a queue of its own: the workers scaled consume prod's."""
    spec_data = {"clusters": CLUSTERS, "autoscaling": {**PROMETHEUS, "queues": ["celery"], "cluster": "prod"}}
    monitor = make_monitor(spec_data, name="cm", namespace="jobs")
    (trigger,) = autoscaling.render_scaled_object(monitor)["spec"]["triggers"]
    assert trigger["metadata"]["query"] == ('sum(celery_monitor_queue_backlog{namespace="jobs",job="cm",'
                                            'queue=~"celery",cluster="prod"})')
    api = make_monitor({**spec_data, "autoscaling": {**SCALED, "cluster": "prod"}}, name="cm", namespace="jobs")
    (trigger,) = autoscaling.render_scaled_object(api)["spec"]["triggers"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(trigger["metadata"]["url"]).query)
    assert query == {"queue": ["celery", "reports.pdf"], "cluster": ["prod"]}
    hpa = autoscaling.render_hpa(api)
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"] == {"job": "cm",
                                                                                         "cluster": "prod"}
    with pytest.raises(spec_reader.SpecError) as raised:
        make_monitor({**spec_data, "autoscaling": {**SCALED, "cluster": "dev"}})
    assert [p.message for p in raised.value.problems] == [
        "spec.autoscaling.cluster: 'dev' is not a cluster of this monitor (prod, staging)"]


def test_without_keda_an_hpa_targets_the_backlog_per_worker() -> None:
    hpa = autoscaling.render_hpa(make_monitor(scaled(SCALED), name="cm"))

    (metric,) = hpa["spec"]["metrics"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 10)
    assert metric["external"] == {
        "metric": {"name": "celery_monitor_queue_backlog", "selector": {
            "matchLabels": {"job": "cm"},
            "matchExpressions": [{"key": "queue", "operator": "In", "values": ["celery", "reports.pdf"]}]}},
        "target": {"type": "AverageValue", "averageValue": "5"}}


def plan_of(spec_data: dict[str, Any], capabilities: reconcile.Capabilities) -> reconcile.Plan:
    return reconcile.desired(make_monitor(spec_data), reconcile.Observed(capabilities), lambda: "generated")


def autoscaler_part(plan: reconcile.Plan) -> tuple[list[str], list[str]]:
    name = naming.autoscaler_name("demo")
    applied = [f"{child.ref.plural}" for child in plan.apply if child.name == name]
    pruned = [f"{removal.ref.plural}" for removal in plan.prune if removal.name == name]
    return applied, pruned


@pytest.mark.parametrize(("spec_data", "capabilities", "applied", "pruned", "condition"), [
    (scaled(SCALED), KEDA, ["triggerauthentications", "scaledobjects"], ["horizontalpodautoscalers"],
     (True, "ScaledObjectConfigured")),
    (scaled(PROMETHEUS), KEDA, ["scaledobjects"], ["horizontalpodautoscalers", "triggerauthentications"],
     (True, "ScaledObjectConfigured")),
    (scaled(SCALED), NO_KEDA, ["horizontalpodautoscalers"], [], (True, "HorizontalPodAutoscalerConfigured")),
    (scaled({**SCALED, "minReplicas": 0}), NO_KEDA, [], ["horizontalpodautoscalers"], (False, "KEDANotInstalled")),
    (scaled({**SCALED, "queues": ["tasks:high"]}), NO_KEDA, [], ["horizontalpodautoscalers"],
     (False, "KEDANotInstalled")),
    ({"broker": BROKER}, KEDA, [], ["horizontalpodautoscalers", "scaledobjects", "triggerauthentications"], None),
    ({"broker": BROKER}, NO_KEDA, [], ["horizontalpodautoscalers"], None),
], ids=["KEDA: ScaledObject on the API", "KEDA: ScaledObject on Prometheus", "no KEDA: HPA",
        "no KEDA, scale to zero: reported", "no KEDA, a queue no selector can name: reported",
        "switched off with KEDA: all pruned", "switched off without KEDA: the HPA pruned"])
def test_reconcile_picks_the_autoscaler_the_cluster_can_run(
        spec_data: dict[str, Any], capabilities: reconcile.Capabilities, applied: list[str], pruned: list[str],
        condition: tuple[bool, str] | None) -> None:
    plan = plan_of(spec_data, capabilities)

    assert autoscaler_part(plan) == (applied, pruned)
    found = None if plan.autoscaling is None else (plan.autoscaling.status, plan.autoscaling.reason)
    assert found == condition
    if plan.autoscaling is not None:
        assert plan.autoscaling.type == status.AUTOSCALING
        # Not summed up in Ready: a missing KEDA leaves the monitor itself ready.
        assert status.AUTOSCALING not in status.SUMMARIZED


def test_the_running_tasks_of_each_pod_s_online_workers_are_its_cost() -> None:
    answer = {
        "celery@workers-7d9-abc": {"status": True, "events": {"active": 3}},
        "second@workers-7d9-abc": {"status": True, "events": {"active": 1}},
        "celery@workers-7d9-def": {"status": True, "events": {"active": 0}},
        "celery@workers-7d9-gone": {"status": False, "events": {"active": 4}},
        "celery@inspected-only": {"status": True},
    }

    assert worker_costs.active_per_host(answer) == {"workers-7d9-abc": 4, "workers-7d9-def": 0,
                                                    "inspected-only": 0}

