"""The Service in front of the monitor pods."""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta


def render_service(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    service = monitor.spec.service
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta.metadata(monitor, naming.service_name(monitor.name), annotations=service.annotations),
        "spec": {
            "type": service.type,
            "selector": naming.selector_labels(monitor.name),
            "ports": [{"name": naming.PORT_NAME, "port": service.port, "targetPort": naming.PORT_NAME,
                       "protocol": "TCP"}],
        },
    }
