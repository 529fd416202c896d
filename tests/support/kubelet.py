"""The monitor container's environment as the kubelet would set it from the operator's Deployment."""

from __future__ import annotations

import re

from celery_monitor_operator import spec
from celery_monitor_operator.renderers import deployment


def kubelet_environment(monitor: spec.CeleryMonitorResource, values: dict[str, str]) -> dict[str, str]:
    """The monitor container's variables: Secret keys from ``values`` ("secret/key"), $(VAR) expanded."""
    env: dict[str, str] = {}
    for var in deployment.monitor_env(monitor):
        if "value" in var:
            value = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            value = values[f"{ref['name']}/{ref['key']}"]
        env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda found: env[found.group(1)], value)
    return env
