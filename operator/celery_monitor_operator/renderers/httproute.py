"""The Gateway API HTTPRoute, for clusters that route through a Gateway instead of an Ingress."""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta


def render_http_route(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    route = monitor.spec.http_route
    parents: list[dict[str, Any]] = []
    for parent in route.parent_refs:
        ref: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": parent.name}
        if parent.namespace:
            ref["namespace"] = parent.namespace
        if parent.section_name:
            ref["sectionName"] = parent.section_name
        parents.append(ref)
    body: dict[str, Any] = {
        "parentRefs": parents,
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": route.path_prefix}}],
            "backendRefs": [{"name": naming.service_name(monitor.name), "port": monitor.spec.service.port}],
        }],
    }
    if route.hostnames:
        body["hostnames"] = list(route.hostnames)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta.metadata(monitor, naming.route_name(monitor.name)),
        "spec": body,
    }
