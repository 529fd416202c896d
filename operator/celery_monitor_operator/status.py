"""Conditions in the shape the Kubernetes API conventions ask for, and the Ready summary.

A condition keeps its ``lastTransitionTime`` while its status stays the same, so the time
says when things last changed, not when the operator last looked.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

READY = "Ready"
RECONCILED = "Reconciled"
AVAILABLE = "Available"
PERSISTENCE_BOUND = "PersistenceBound"
MONITORING_CONFIGURED = "MonitoringConfigured"
EXPOSED = "Exposed"
# Not summed up in Ready: the workers' autoscaler is not the monitor's own health.
AUTOSCALING = "AutoscalingConfigured"
# The order Ready looks at them: the first one that fails explains why the monitor is not ready.
# What the user must fix comes before what the cluster is still doing (binding, starting pods).
SUMMARIZED = (RECONCILED, MONITORING_CONFIGURED, EXPOSED, PERSISTENCE_BOUND, AVAILABLE)


@dataclasses.dataclass(frozen=True)
class Condition:
    """One condition as the operator decides it; :func:`render_conditions` gives it the API's shape."""

    type: str
    status: bool | None  # None is "Unknown"
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else str(self.status)


def summarize(conditions: Sequence[Condition]) -> Condition:
    """Ready: true when every condition is; otherwise the first one that is not, in ``SUMMARIZED`` order."""
    by_type = {condition.type: condition for condition in conditions}
    for kind in SUMMARIZED:
        condition = by_type.get(kind)
        if condition is not None and condition.status is not True:
            return Condition(READY, False if condition.status is False else None, condition.reason,
                             condition.message)
    return Condition(READY, True, "Ready", "The monitor is running and everything it needs is in place.")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_conditions(conditions: Iterable[Condition], previous: Sequence[Mapping[str, Any]] | None,
                      generation: int, timestamp: str | None = None) -> list[dict[str, Any]]:
    """Conditions for ``status.conditions``, Ready first, keeping transition times that did not change."""
    conditions = list(conditions)
    ordered = [summarize(conditions), *conditions]
    earlier = {item.get("type"): item for item in previous or []}
    stamp = timestamp or now()
    rendered: list[dict[str, Any]] = []
    for condition in ordered:
        before = earlier.get(condition.type)
        unchanged = before is not None and before.get("status") == condition.status_text
        rendered.append({
            "type": condition.type,
            "status": condition.status_text,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": before.get("lastTransitionTime", stamp) if unchanged and before else stamp,
            "observedGeneration": generation,
        })
    return rendered
