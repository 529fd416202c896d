"""Names, labels and identifiers shared by every part of the operator.

One place for the API group, the kind and the names of the children, so the CRD, the
renderers, the handlers and the install manifests cannot drift apart.
"""

from __future__ import annotations

GROUP = "celerymonitor.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "CeleryMonitor"
PLURAL = "celerymonitors"
SINGULAR = "celerymonitor"
SHORT_NAMES = ("cmon",)
CATEGORIES = ("celery",)

DEFAULT_IMAGE = "ghcr.io/celery-monitor/celery-monitor:0.1.0"
OPERATOR_NAME = "celery-monitor-operator"
DEFAULT_OPERATOR_NAMESPACE = "celery-monitor-system"
FIELD_MANAGER = OPERATOR_NAME

MONITOR_PORT = 5555
DATA_MOUNT_PATH = "/data"
DATABASE_PATH = f"{DATA_MOUNT_PATH}/celery-monitor.db"
LIVENESS_PATH = "/livez"  # 503 when the monitor's ingestion has stopped: restart it
READINESS_PATH = "/readyz"  # 200 once its history is open and it serves
METRICS_PATH = "/metrics"
CONTAINER_NAME = "monitor"
PORT_NAME = "http"
RUN_AS_USER = 10001

CHECKSUM_ANNOTATION = f"{GROUP}/secrets-checksum"
KEEP_ANNOTATION = f"{GROUP}/keep-on-delete"


def deployment_name(monitor_name: str) -> str:
    return monitor_name


def service_name(monitor_name: str) -> str:
    return monitor_name


def auth_secret_name(monitor_name: str) -> str:
    return f"{monitor_name}-auth"


def metrics_secret_name(monitor_name: str) -> str:
    """Prometheus's read-only token. A Secret's name is a DNS subdomain (253 characters), so this
    longer suffix does not limit the resource's own name (below)."""
    return f"{monitor_name}-metrics"


def pvc_name(monitor_name: str) -> str:
    return f"{monitor_name}-data"


def disruption_budget_name(monitor_name: str) -> str:
    return monitor_name


def route_name(monitor_name: str) -> str:
    """Ingress, HTTPRoute, ServiceMonitor and PrometheusRule share the monitor's name."""
    return monitor_name


def autoscaler_name(monitor_name: str) -> str:
    """The ScaledObject or HorizontalPodAutoscaler of the workers, and the TriggerAuthentication."""
    return f"{monitor_name}-workers"


DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"


# A child's name must stay a DNS label (63 characters at most), so the resource's own name is
# limited by the longest suffix a child adds to it.
DNS_LABEL_LENGTH = 63
MAX_NAME_LENGTH = DNS_LABEL_LENGTH - max(len(child_name("")) for child_name in (
    deployment_name, service_name, auth_secret_name, pvc_name, route_name))


def selector_labels(monitor_name: str) -> dict[str, str]:
    """Labels that pick the monitor's pods: stable for the life of the resource."""
    return {
        "app.kubernetes.io/name": "celery-monitor",
        "app.kubernetes.io/instance": monitor_name,
    }


def child_labels(monitor_name: str) -> dict[str, str]:
    """Labels on every child, so `kubectl get all -l ...` finds them."""
    return {
        **selector_labels(monitor_name),
        "app.kubernetes.io/component": "monitor",
        "app.kubernetes.io/managed-by": OPERATOR_NAME,
    }
