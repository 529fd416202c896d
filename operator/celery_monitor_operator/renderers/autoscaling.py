"""The workers' autoscaler: a KEDA ScaledObject (and its TriggerAuthentication), or an HPA.

All of them scale on the backlog the monitor measures per queue (messages waiting in the broker,
Redis priority sub-queues included, plus tasks workers prefetched and have not started), summed
over ``spec.autoscaling.queues``, with ``backlogPerReplica`` as the target per worker:

- source MonitorAPI: KEDA's metrics-api trigger reads ``backlog`` from the monitor's
  ``/api/queues/backlog?queue=...`` inside the cluster, with the read-only token of the
  ``<name>-metrics`` Secret (a TriggerAuthentication names it: the token never leaves the Secret);
- source Prometheus: KEDA's prometheus trigger sums ``celery_monitor_queue_backlog`` of this
  monitor only (its namespace and job, the Service's name);
- without KEDA: an autoscaling/v2 HPA on the external metric ``celery_monitor_queue_backlog``,
  which an external-metrics adapter (prometheus-adapter) must serve.

With ``spec.clusters`` the queues are those of ``spec.autoscaling.cluster`` alone (a queue of one
name in each cluster is a queue of its own): ``cluster=`` in the API's address, a ``cluster``
matcher in the query and the HPA's selector.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta, secret

KEDA_API_VERSION = "keda.sh/v1alpha1"
BACKLOG_METRIC = "celery_monitor_queue_backlog"
BACKLOG_PATH = "api/queues/backlog"
VALUE_LOCATION = "backlog"  # the GJSON path KEDA reads in the answer: the sum over the queues asked for
# What a label value may be (an HPA's metric selector is a label selector).
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PROMQL_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def monitor_base_url(monitor: spec.CeleryMonitorResource) -> str:
    """The monitor inside the cluster, through its Service, ending with '/' (its URL prefix included)."""
    desired = monitor.spec
    scheme = "https" if desired.serves_tls else "http"
    prefix = desired.url_prefix.strip("/")
    prefix = f"/{prefix}/" if prefix else "/"
    return f"{scheme}://{naming.service_name(monitor.name)}.{monitor.namespace}.svc:{desired.service.port}{prefix}"


def backlog_url(monitor: spec.CeleryMonitorResource) -> str:
    """The monitor API's backlog of the autoscaled queues, as the metrics-api trigger asks for it."""
    settings = monitor.spec.autoscaling
    query = urllib.parse.urlencode([("queue", queue) for queue in settings.queues]
                                   + ([("cluster", settings.cluster)] if settings.cluster else []))
    return f"{monitor_base_url(monitor)}{BACKLOG_PATH}?{query}"


def _promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prometheus_query(monitor: spec.CeleryMonitorResource) -> str:
    """The sum of this monitor's backlog gauges over the autoscaled queues (queue names matched exactly)."""
    queues = "|".join(_PROMQL_SPECIAL.sub(r"\\\1", queue) for queue in monitor.spec.autoscaling.queues)
    matchers = (f"namespace={_promql_string(monitor.namespace)},"
                f"job={_promql_string(naming.service_name(monitor.name))},queue=~{_promql_string(queues)}")
    if monitor.spec.autoscaling.cluster:
        matchers += f",cluster={_promql_string(monitor.spec.autoscaling.cluster)}"
    return f"sum({BACKLOG_METRIC}{{{matchers}}})"


def _target(monitor: spec.CeleryMonitorResource) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": monitor.spec.autoscaling.worker_deployment}


def _trigger(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    settings = monitor.spec.autoscaling
    target = str(settings.backlog_per_replica)
    if settings.source == "Prometheus":
        assert settings.prometheus_address is not None
        return {"type": "prometheus", "metricType": "AverageValue", "metadata": {
            "serverAddress": settings.prometheus_address, "query": prometheus_query(monitor), "threshold": target}}
    return {"type": "metrics-api", "metricType": "AverageValue",
            "metadata": {"url": backlog_url(monitor), "valueLocation": VALUE_LOCATION, "targetValue": target,
                         "authMode": "bearer"},
            "authenticationRef": {"name": naming.autoscaler_name(monitor.name)}}


def uses_trigger_authentication(monitor: spec.CeleryMonitorResource) -> bool:
    return monitor.spec.autoscaling.source == "MonitorAPI"


def render_scaled_object(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    settings = monitor.spec.autoscaling
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": _meta.metadata(monitor, naming.autoscaler_name(monitor.name)),
        "spec": {
            "scaleTargetRef": _target(monitor),
            "minReplicaCount": settings.min_replicas,
            "maxReplicaCount": settings.max_replicas,
            "pollingInterval": settings.polling_interval,
            "cooldownPeriod": settings.cooldown_period,
            "triggers": [_trigger(monitor)],
        },
    }


def render_trigger_authentication(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    """KEDA reads the bearer token from the metrics Secret itself: read-only, never the admin login."""
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "TriggerAuthentication",
        "metadata": _meta.metadata(monitor, naming.autoscaler_name(monitor.name)),
        "spec": {"secretTargetRef": [{"parameter": "token", "name": naming.metrics_secret_name(monitor.name),
                                      "key": secret.METRICS_TOKEN_KEY}]},
    }


def hpa_problem(monitor: spec.CeleryMonitorResource) -> str:
    """Why an HPA cannot do what the spec asks (KEDA can), or ''."""
    settings = monitor.spec.autoscaling
    if settings.min_replicas < 1:
        return ("spec.autoscaling.minReplicas is 0: scaling to zero needs KEDA (keda.sh CRDs), and the "
                "cluster does not serve keda.sh/v1alpha1 scaledobjects")
    unusable = [queue for queue in settings.queues if not LABEL_VALUE.match(queue) or len(queue) > 63]
    if unusable:
        return (f"spec.autoscaling.queues: {unusable[0]!r} cannot be selected in an HPA's external metric (not a "
                "label value); install KEDA, which reads any queue name")
    return ""


def render_hpa(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    settings = monitor.spec.autoscaling
    selector = {
        "matchLabels": {"job": naming.service_name(monitor.name),
                        **({"cluster": settings.cluster} if settings.cluster else {})},
        "matchExpressions": [{"key": "queue", "operator": "In", "values": list(settings.queues)}],
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta.metadata(monitor, naming.autoscaler_name(monitor.name)),
        "spec": {
            "scaleTargetRef": _target(monitor),
            "minReplicas": max(1, settings.min_replicas),
            "maxReplicas": settings.max_replicas,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": BACKLOG_METRIC, "selector": selector},
                "target": {"type": "AverageValue", "averageValue": str(settings.backlog_per_replica)},
            }}],
        },
    }
