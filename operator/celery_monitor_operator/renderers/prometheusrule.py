"""The Prometheus Operator PrometheusRule carrying the project's alert rules, scoped to one monitor.

The rules file is written for every monitor Prometheus scrapes at once. Applied per monitor as
is, one monitor's rules would judge all of them: ``absent(celery_monitor_receiver_connected)``
stays quiet for a dead monitor while any other one is up. So every selector of the monitor's own
metrics is narrowed to the series of this monitor, as its ServiceMonitor labels them: the
namespace and the job (the Prometheus Operator names the job after the scraped Service).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta

# Every metric the monitor exports starts with one of these prefixes (see docs/metrics.md). A
# selector is the name, then maybe label matchers in braces (which hold no "}" in these rules).
METRIC_PREFIXES = ("celery_monitor_", "flower_")
_SELECTOR = re.compile(
    r"(?<![A-Za-z0-9_:\"'])(?P<name>(?:" + "|".join(METRIC_PREFIXES) + r")[A-Za-z0-9_:]*)"
    r"(?:\s*\{(?P<matchers>[^}]*)\})?")


def scope_matchers(monitor: spec.CeleryMonitorResource) -> str:
    """The label matchers that pick this monitor's series: names are DNS labels, so need no escaping."""
    return f'namespace="{monitor.namespace}",job="{naming.service_name(monitor.name)}"'


def scope_expression(expr: str, matchers: str) -> str:
    """``expr`` with ``matchers`` added to every selector of the monitor's metrics."""
    def narrowed(match: re.Match[str]) -> str:
        existing = (match["matchers"] or "").strip().rstrip(",")
        return f"{match['name']}{{{matchers}{',' + existing if existing else ''}}}"
    return _SELECTOR.sub(narrowed, expr)


def scope_groups(groups: Sequence[dict[str, Any]], matchers: str) -> list[dict[str, Any]]:
    """A copy of the rule groups with every rule's expression scoped; names and the rest unchanged."""
    scoped = copy.deepcopy([dict(group) for group in groups])
    for group in scoped:
        for rule in group.get("rules") or []:
            rule["expr"] = scope_expression(str(rule["expr"]), matchers)
    return scoped


def render_prometheus_rule(monitor: spec.CeleryMonitorResource, groups: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``groups`` is the ``groups`` list of the monitor's alert rules file, scoped to this monitor here."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta.metadata(monitor, naming.route_name(monitor.name),
                                   labels=monitor.spec.prometheus_rule.labels),
        "spec": {"groups": scope_groups(groups, scope_matchers(monitor))},
    }
