"""The PodDisruptionBudget of a monitor with replicas on a shared database.

A node drain then evicts its pods one at a time: one always serves (a standby takes over the
ingestion within seconds when the leader goes). One pod has nothing to keep, so it gets none:
a budget of one pod would block every drain of its node.
"""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta

MIN_AVAILABLE = 1


def wants_budget(monitor: spec.CeleryMonitorResource) -> bool:
    return monitor.spec.database is not None and monitor.spec.replicas > 1


def render_pod_disruption_budget(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta.metadata(monitor, naming.disruption_budget_name(monitor.name)),
        "spec": {
            "minAvailable": MIN_AVAILABLE,
            "selector": {"matchLabels": naming.selector_labels(monitor.name)},
        },
    }
