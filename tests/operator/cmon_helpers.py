"""Helpers for the operator tests: CeleryMonitor objects built from a spec, and what they render."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

from celery_monitor_operator import alert_rules, naming, spec, spec_parser
from celery_monitor_operator.renderers import (
    autoscaling,
    deployment,
    disruption,
    httproute,
    ingress,
    prometheusrule,
    pvc,
    secret,
    service,
    servicemonitor,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Representative specs: the least one can write, every field set, and a Gateway API variant
# (autoscaling through the monitor's API in the second, through Prometheus in the third; the third's
# replicas share a CloudNativePG database), and one monitor for several clusters.
SPECS: dict[str, dict[str, Any]] = {
    "minimal": {"broker": {"url": "redis://redis:6379/0"}},
    "everything": {
        "broker": {"secretKeyRef": {"name": "mq"}, "managementApi": {"secretKeyRef": {"name": "mq", "key": "api"}}},
        "resultBackend": {"secretKeyRef": {"name": "redis"}},
        "imagePullSecrets": [{"name": "registry"}],
        "auth": {"basic": {"secretName": "login"}, "readOnly": True,
                 "oauth2": {"provider": "okta", "clientId": "id", "clientSecretRef": {"name": "oidc"},
                            "redirectUri": "https://cm.example.com/login", "emailRegex": ".*"}},
        "persistence": {"size": "20Gi", "storageClassName": "ssd", "accessMode": "ReadWriteMany",
                        "keepOnDelete": True},
        "retention": {"maxTasks": 1, "maxWorkers": 1, "purgeOfflineWorkers": 60},
        "service": {"type": "NodePort", "port": 80, "annotations": {"a": "b"}},
        "ingress": {"enabled": True, "className": "nginx", "host": "cm.example.com", "pathPrefix": "/cm",
                    "tls": {"secretName": "tls"}, "annotations": {"x": "y"}},
        "trustedProxies": ["10.244.0.0/16", "fd00:10:244::/56"],
        "serviceMonitor": {"enabled": True, "interval": "10s", "scrapeTimeout": "5s", "labels": {"r": "p"},
                           "tls": {"caSecretKeyRef": {"name": "monitor-ca"}, "serverName": "demo.team.svc"}},
        "prometheusRule": {"enabled": True, "labels": {"r": "p"}},
        "autoscaling": {"enabled": True, "workerDeployment": "celery-worker", "queues": ["celery", "reports.pdf"],
                        "minReplicas": 0, "maxReplicas": 20, "backlogPerReplica": 25, "source": "MonitorAPI",
                        "pollingInterval": 10, "cooldownPeriod": 120, "podDeletionCost": {"enabled": True}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute",
                         "tolerationSeconds": 30}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}},
        "podAnnotations": {"p": "a"}, "podLabels": {"p": "l"},
        "extraArgs": ["--natural_time=true", "--oauth2_okta_base_url=https://example.okta.com/oauth2/default",
                      "--certfile=/tls/tls.crt", "--keyfile=/tls/tls.key"],
        "extraEnv": [{"name": "TZ", "value": "UTC"},
                     {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    },
    "gateway": {"broker": {"url": "redis://r/0"}, "database": {"cnpgCluster": "pg"}, "replicas": 3,
                "auth": {"basic": {"enabled": False}},
                "autoscaling": {"enabled": True, "workerDeployment": "workers", "queues": ["celery"],
                                "source": "Prometheus",
                                "prometheus": {"serverAddress": "http://prometheus-operated.monitoring:9090"}},
                "httpRoute": {"enabled": True, "hostnames": ["cm.example.com"], "pathPrefix": "/cm",
                              "parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "web"}]}},
    "clusters": {"clusters": [
        {"name": "orders", "broker": {"secretKeyRef": {"name": "orders-mq"}},
         "resultBackend": {"secretKeyRef": {"name": "orders-mq", "key": "results"}}},
        {"name": "reports_eu-1", "broker": {"url": "amqp://rabbitmq:5672/reports",
                                            "managementApi": {"secretKeyRef": {"name": "reports-api"}}}},
    ]},
}


def monitor_body(spec_data: dict[str, Any], name: str = "demo", namespace: str = "team",
                 uid: str = "0b6f6a8e-1111-4c3a-9c39-6b1f1b5c0d01") -> dict[str, Any]:
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 3},
        "spec": copy.deepcopy(spec_data),
    }


def make_monitor(spec_data: dict[str, Any] | None = None, **metadata: str) -> spec.CeleryMonitorResource:
    data = {"broker": {"secretKeyRef": {"name": "broker"}}} if spec_data is None else spec_data
    return spec_parser.parse(monitor_body(data, **metadata))


def rendered_children(spec_data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every child the operator renders for the spec, enabled or not."""
    monitor = make_monitor(spec_data)
    return [
        secret.render_auth_secret(monitor),
        secret.render_metrics_secret(monitor),
        service.render_service(monitor),
        pvc.render_pvc(monitor),
        deployment.render_monitor_deployment(monitor, deployment.secrets_checksum({"a/b": "c"})),
        disruption.render_pod_disruption_budget(monitor),
        ingress.render_ingress(monitor),
        httproute.render_http_route(monitor),
        servicemonitor.render_service_monitor(monitor),
        prometheusrule.render_prometheus_rule(monitor, alert_rules.load_groups()),
        *autoscaling_children(monitor),
    ]


def autoscaling_children(monitor: spec.CeleryMonitorResource) -> list[dict[str, Any]]:
    """The workers' autoscaler in both its forms (with KEDA, without), when the spec asks for it."""
    if not monitor.spec.autoscaling.enabled:
        return []
    keda = [autoscaling.render_scaled_object(monitor)]
    if autoscaling.uses_trigger_authentication(monitor):
        keda.append(autoscaling.render_trigger_authentication(monitor))
    return keda + ([] if autoscaling.hpa_problem(monitor) else [autoscaling.render_hpa(monitor)])


def secret_values(*rendered: dict[str, Any]) -> dict[str, str]:
    """The decoded keys of rendered Secrets, by "secret/key", as the kubelet reads them."""
    return {f"{body['metadata']['name']}/{key}": base64.b64decode(value).decode()
            for body in rendered for key, value in body["data"].items()}
