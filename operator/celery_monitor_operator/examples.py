"""Example CeleryMonitors for ``manifests/examples/``: kept as data so tests can check they parse."""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming


def _secret(name: str, namespace: str, values: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque", "stringData": values}


def _monitor(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": naming.API_VERSION, "kind": naming.KIND,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def minimal() -> list[dict[str, Any]]:
    """A Redis broker without a password: the URL may then be given inline."""
    return [_monitor("celery", "default", {"broker": {"url": "redis://redis.default.svc:6379/0"}})]


def production() -> list[dict[str, Any]]:
    """RabbitMQ with credentials in Secrets, an Ingress with TLS, and Prometheus Operator objects."""
    namespace = "celery"
    return [
        _secret("rabbitmq-urls", namespace, {
            "url": "amqp://celery:change-me@rabbitmq.celery.svc:5672/celery",
            "management": "http://celery:change-me@rabbitmq.celery.svc:15672/api/",
        }),
        _monitor("orders", namespace, {
            "broker": {
                "secretKeyRef": {"name": "rabbitmq-urls", "key": "url"},
                "managementApi": {"secretKeyRef": {"name": "rabbitmq-urls", "key": "management"}},
            },
            "resultBackend": {"url": "redis://redis.celery.svc:6379/1"},
            "auth": {"readOnly": True},
            "persistence": {"size": "5Gi", "keepOnDelete": True},
            "retention": {"maxTasks": 500000, "purgeOfflineWorkers": 3600},
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "host": "celery.example.com",
                "pathPrefix": "/monitor",
                "tls": {"secretName": "celery-example-com-tls"},
            },
            "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
            "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        }),
    ]


def gateway() -> list[dict[str, Any]]:
    """Reached through a Gateway API HTTPRoute, signing in with an OIDC provider."""
    namespace = "default"
    return [
        _secret("celery-oauth", namespace, {"client-secret": "change-me"}),
        _monitor("payments", namespace, {
            "broker": {"url": "redis://redis.default.svc:6379/0"},
            "auth": {
                "basic": {"enabled": False},
                "oauth2": {
                    "provider": "google",
                    "clientId": "1234567890.apps.googleusercontent.com",
                    "clientSecretRef": {"name": "celery-oauth"},
                    "redirectUri": "https://payments.example.com/login",
                    "emailRegex": r".*@example\.com",
                },
            },
            "httpRoute": {
                "enabled": True,
                "parentRefs": [{"name": "public", "namespace": "gateway-system"}],
                "hostnames": ["payments.example.com"],
            },
        }),
    ]


def autoscaling() -> list[dict[str, Any]]:
    """Workers scaled by KEDA (or an HPA) on the backlog of their queues, idle ones removed first."""
    return [_monitor("celery", "default", {
        "broker": {"url": "redis://redis.default.svc:6379/0"},
        "autoscaling": {
            "enabled": True,
            "workerDeployment": "celery-worker",
            "queues": ["celery", "reports"],
            "minReplicas": 1,
            "maxReplicas": 20,
            "backlogPerReplica": 10,
            "podDeletionCost": {"enabled": True},
        },
    })]


def high_availability() -> list[dict[str, Any]]:
    """Three replicas on one PostgreSQL history (a CloudNativePG cluster: database.cnpgCluster instead)."""
    namespace = "celery"
    return [
        _secret("celery-monitor-db", namespace, {
            "url": "postgresql://celery_monitor:change-me@postgres.celery.svc:5432/celery_monitor",
        }),
        _monitor("orders-ha", namespace, {
            "broker": {"url": "redis://redis.celery.svc:6379/0"},
            "database": {"secretKeyRef": {"name": "celery-monitor-db", "key": "url"}},
            "replicas": 3,
        }),
    ]


def clusters() -> list[dict[str, Any]]:
    """One monitor for three Celery clusters: two Redis databases and a RabbitMQ vhost, each URL from a Secret."""
    namespace = "celery"
    return [
        _secret("celery-brokers", namespace, {
            "orders": "redis://:change-me@redis.celery.svc:6379/0",
            "orders-results": "redis://:change-me@redis.celery.svc:6379/1",
            "billing": "redis://:change-me@redis.celery.svc:6379/2",
        }),
        _secret("rabbitmq-reports", namespace, {
            "url": "amqp://reports:change-me@rabbitmq.celery.svc:5672/reports",
            "management": "http://reports:change-me@rabbitmq.celery.svc:15672/api/",
        }),
        _monitor("fleet", namespace, {
            "clusters": [
                {"name": "orders",
                 "broker": {"secretKeyRef": {"name": "celery-brokers", "key": "orders"}},
                 "resultBackend": {"secretKeyRef": {"name": "celery-brokers", "key": "orders-results"}}},
                {"name": "billing",
                 "broker": {"secretKeyRef": {"name": "celery-brokers", "key": "billing"}}},
                {"name": "reports",
                 "broker": {"secretKeyRef": {"name": "rabbitmq-reports", "key": "url"},
                            "managementApi": {"secretKeyRef": {"name": "rabbitmq-reports", "key": "management"}}}},
            ],
            "persistence": {"size": "5Gi"},
        }),
    ]


EXAMPLES = {"minimal.yaml": minimal, "production.yaml": production, "gateway.yaml": gateway,
            "autoscaling.yaml": autoscaling, "high-availability.yaml": high_availability,
            "clusters.yaml": clusters}
