"""Which optional APIs the cluster serves: the Prometheus Operator's and the Gateway API's.

Asked on every reconcile (one cheap discovery call per group), so installing the CRDs later
is noticed on the next pass without restarting the operator.
"""

from __future__ import annotations

import dataclasses

from celery_monitor_operator import kube


@dataclasses.dataclass(frozen=True)
class Capabilities:
    service_monitors: bool
    prometheus_rules: bool
    http_routes: bool


def serves(api: kube.Api, ref: kube.ResourceRef) -> bool:
    return ref.plural in api.served_resources(ref.group_version)


def detect(api: kube.Api) -> Capabilities:
    monitoring = api.served_resources(kube.SERVICE_MONITORS.group_version)
    gateway = api.served_resources(kube.HTTP_ROUTES.group_version)
    return Capabilities(
        service_monitors=kube.SERVICE_MONITORS.plural in monitoring,
        prometheus_rules=kube.PROMETHEUS_RULES.plural in monitoring,
        http_routes=kube.HTTP_ROUTES.plural in gateway,
    )
