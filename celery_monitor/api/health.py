"""Health: Flower's ``/healthcheck``, the probes ``/livez`` and ``/readyz``, and the monitor's own status.

``/healthcheck`` keeps Flower's meaning (the server answers: ``OK``), whatever the monitor's state,
because load balancers and scripts written for Flower probe it, and a monitor that cannot ingest
still serves its history. The probes say more (see :mod:`celery_monitor.liveness`):
``/livez`` is 503 when ingestion has stopped and a restart is the remedy, ``/readyz`` is 503 until
the history is open and the loops started, and from the beginning of shutdown. Both answer JSON
with the reasons and the warnings (what is degraded), and stay outside authentication.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import json_response


async def healthcheck(request: Request) -> Response:
    return PlainTextResponse("OK")


async def livez(request: Request) -> Response:
    report = monitor_of(request).health_report()
    body = {"live": report["live"], "problems": report["problems"], "warnings": report["warnings"]}
    if report["live"]:
        return json_response(body)
    return json_response({"error": "ingestion has stopped: " + "; ".join(report["problems"]), **body}, 503)


async def readyz(request: Request) -> Response:
    report = monitor_of(request).health_report()
    body = {"ready": report["ready"], "warnings": report["warnings"]}
    if report["ready"]:
        return json_response(body)
    return json_response({"error": "not ready: the monitor is starting or shutting down", **body}, 503)


async def monitor_status(request: Request) -> Response:
    return json_response(monitor_of(request).status())
