"""The Prometheus Operator ServiceMonitor, scraping with Prometheus's own read-only token (never the admin login)."""

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
    if monitor.spec.serves_tls:
        endpoint["scheme"] = "https"
        endpoint["tlsConfig"] = _tls_config(settings.tls)
    if monitor.spec.auth.metrics_auth:
        endpoint["authorization"] = {
            "type": "Bearer",
            "credentials": {"name": naming.metrics_secret_name(monitor.name), "key": secret.METRICS_TOKEN_KEY},
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


def _tls_config(tls: spec.ScrapeTls) -> dict[str, Any]:
    """The certificate check of an HTTPS scrape: verified unless the spec explicitly says otherwise."""
    config: dict[str, Any] = {"insecureSkipVerify": tls.insecure_skip_verify}
    if tls.ca is not None:
        config["ca"] = {"secret": {"name": tls.ca.name, "key": tls.ca.key}}
    if tls.server_name:
        config["serverName"] = tls.server_name
    return config
