"""The Prometheus Operator ServiceMonitor, scraping with the monitor's own login."""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta, secret


def metrics_path(monitor: spec.CeleryMonitorResource) -> str:
    prefix = monitor.spec.url_prefix.rstrip("/")
    return f"{prefix}{naming.METRICS_PATH}"


def render_service_monitor(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    settings = monitor.spec.service_monitor
    endpoint: dict[str, Any] = {
        "port": naming.PORT_NAME,
        "path": metrics_path(monitor),
        "interval": settings.interval,
    }
    if settings.scrape_timeout:
        endpoint["scrapeTimeout"] = settings.scrape_timeout
    if monitor.spec.auth.basic.enabled:
        # /metrics is open by default, but may be put behind the login: sending it costs nothing.
        secret_name = secret.basic_auth_secret_name(monitor)
        endpoint["basicAuth"] = {
            "username": {"name": secret_name, "key": secret.USERNAME_KEY},
            "password": {"name": secret_name, "key": secret.PASSWORD_KEY},
        }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta.metadata(monitor, naming.route_name(monitor.name), labels=settings.labels),
        "spec": {
            "selector": {"matchLabels": naming.child_labels(monitor.name)},
            "endpoints": [endpoint],
        },
    }
