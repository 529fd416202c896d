"""The Prometheus Operator PrometheusRule carrying the project's alert rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta


def render_prometheus_rule(monitor: spec.CeleryMonitorResource, groups: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``groups`` is the ``groups`` list of the monitor's alert rules file, used unchanged."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta.metadata(monitor, naming.route_name(monitor.name),
                                   labels=monitor.spec.prometheus_rule.labels),
        "spec": {"groups": [dict(group) for group in groups]},
    }
