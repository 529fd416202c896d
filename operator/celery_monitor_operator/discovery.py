"""Which optional APIs the cluster serves: the Prometheus Operator's, the Gateway API's and KEDA's.

Asked on every reconcile (one cheap discovery call per group), so installing the CRDs later
is noticed on the next pass without restarting the operator.
"""

from __future__ import annotations

from celery_monitor_operator import kube, reconcile, resources


def detect(api: kube.Api) -> reconcile.Capabilities:
    """What the cluster serves now, as :func:`reconcile.desired` takes it."""
    monitoring = api.served_resources(resources.SERVICE_MONITORS.group_version)
    gateway = api.served_resources(resources.HTTP_ROUTES.group_version)
    keda = api.served_resources(resources.SCALED_OBJECTS.group_version)
    return reconcile.Capabilities(
        service_monitors=resources.SERVICE_MONITORS.plural in monitoring,
        prometheus_rules=resources.PROMETHEUS_RULES.plural in monitoring,
        http_routes=resources.HTTP_ROUTES.plural in gateway,
        scaled_objects={resources.SCALED_OBJECTS.plural, resources.TRIGGER_AUTHENTICATIONS.plural} <= keda,
    )
