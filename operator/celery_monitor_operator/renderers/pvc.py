"""The PersistentVolumeClaim for the task store; without an owner when it must outlive the resource."""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta


def render_pvc(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    persistence = monitor.spec.persistence
    claim: dict[str, Any] = {
        "accessModes": [persistence.access_mode],
        "resources": {"requests": {"storage": persistence.size}},
    }
    if persistence.storage_class_name:
        claim["storageClassName"] = persistence.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta.metadata(
            monitor, naming.pvc_name(monitor.name),
            annotations={naming.KEEP_ANNOTATION: str(persistence.keep_on_delete).lower()},
            owned=not persistence.keep_on_delete,
        ),
        "spec": claim,
    }
