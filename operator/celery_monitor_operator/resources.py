"""The kinds the operator reads and writes, each by API group, version and plural: data, no client.

The pure reconcile step names what to prune with these, and the client (:mod:`.kube`) turns
them into request paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from celery_monitor_operator import naming


@dataclasses.dataclass(frozen=True)
class ResourceRef:
    """A kind the operator works with, as the API server's paths name it (the core group is "")."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
        if subresource is not None:
            base += f"/{subresource}"
        return base


CELERY_MONITORS = ResourceRef(naming.GROUP, naming.VERSION, naming.PLURAL)
SECRETS = ResourceRef("", "v1", "secrets")
SERVICES = ResourceRef("", "v1", "services")
PVCS = ResourceRef("", "v1", "persistentvolumeclaims")
DEPLOYMENTS = ResourceRef("apps", "v1", "deployments")
INGRESSES = ResourceRef("networking.k8s.io", "v1", "ingresses")
HTTP_ROUTES = ResourceRef("gateway.networking.k8s.io", "v1", "httproutes")
SERVICE_MONITORS = ResourceRef("monitoring.coreos.com", "v1", "servicemonitors")
PROMETHEUS_RULES = ResourceRef("monitoring.coreos.com", "v1", "prometheusrules")
SCALED_OBJECTS = ResourceRef("keda.sh", "v1alpha1", "scaledobjects")
TRIGGER_AUTHENTICATIONS = ResourceRef("keda.sh", "v1alpha1", "triggerauthentications")
HPAS = ResourceRef("autoscaling", "v2", "horizontalpodautoscalers")
PDBS = ResourceRef("policy", "v1", "poddisruptionbudgets")
PODS = ResourceRef("", "v1", "pods")
CLUSTER_PEERINGS = ResourceRef("kopf.dev", "v1", "clusterkopfpeerings", namespaced=False)
NAMESPACE_PEERINGS = ResourceRef("kopf.dev", "v1", "kopfpeerings")
EVENTS = ResourceRef("", "v1", "events")

BY_KIND: dict[tuple[str, str], ResourceRef] = {
    ("v1", "Secret"): SECRETS,
    ("v1", "Service"): SERVICES,
    ("v1", "PersistentVolumeClaim"): PVCS,
    ("apps/v1", "Deployment"): DEPLOYMENTS,
    ("networking.k8s.io/v1", "Ingress"): INGRESSES,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTP_ROUTES,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITORS,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULES,
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECTS,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): TRIGGER_AUTHENTICATIONS,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): HPAS,
    ("policy/v1", "PodDisruptionBudget"): PDBS,
}


def ref_for(obj: Mapping[str, Any]) -> ResourceRef:
    """The reference of a rendered child, by its apiVersion and kind."""
    return BY_KIND[(obj["apiVersion"], obj["kind"])]
