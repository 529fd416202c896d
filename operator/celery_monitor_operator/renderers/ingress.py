"""The Ingress: the monitor under a host and path prefix, with timeouts long enough for WebSockets."""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta

# ingress-nginx closes idle proxied connections after 60 s by default, which would cut the
# dashboard's live WebSocket; an hour keeps it open. Users may override any of these.
WEBSOCKET_TIMEOUT_SECONDS = "3600"
DEFAULT_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-read-timeout": WEBSOCKET_TIMEOUT_SECONDS,
    "nginx.ingress.kubernetes.io/proxy-send-timeout": WEBSOCKET_TIMEOUT_SECONDS,
}


def render_ingress(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    ingress = monitor.spec.ingress
    rule: dict[str, Any] = {"http": {"paths": [{
        "path": ingress.path_prefix,
        "pathType": "Prefix",
        "backend": {"service": {"name": naming.service_name(monitor.name),
                                "port": {"name": naming.PORT_NAME}}},
    }]}}
    if ingress.host:
        rule["host"] = ingress.host
    body: dict[str, Any] = {"rules": [rule]}
    if ingress.class_name:
        body["ingressClassName"] = ingress.class_name
    if ingress.tls_secret_name:
        tls: dict[str, Any] = {"secretName": ingress.tls_secret_name}
        if ingress.host:
            tls["hosts"] = [ingress.host]
        body["tls"] = [tls]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta.metadata(monitor, naming.route_name(monitor.name),
                                   annotations={**DEFAULT_ANNOTATIONS, **ingress.annotations}),
        "spec": body,
    }
