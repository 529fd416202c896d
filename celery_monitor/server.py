"""Serving the app with uvicorn on a TCP port or a UNIX socket, optionally with TLS."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import uvicorn
from starlette.applications import Starlette

from celery_monitor.settings import Settings


def serve(app: Starlette, settings: Settings) -> None:
    kwargs: dict[str, Any] = {}
    if settings.unix_socket:
        kwargs["uds"] = settings.unix_socket
    else:
        kwargs["host"] = settings.address or "0.0.0.0"
        kwargs["port"] = settings.port
    if settings.certfile:
        kwargs["ssl_certfile"] = settings.certfile
        kwargs["ssl_keyfile"] = settings.keyfile
        if settings.ca_certs:
            kwargs["ssl_ca_certs"] = settings.ca_certs
            kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    config = uvicorn.Config(
        app,
        # Forwarding headers are read by the app's own middleware (auth/proxy.py), from
        # --trusted_proxies only; uvicorn's would otherwise trust loopback's by default.
        proxy_headers=False,
        server_header=False,
        log_config=None,
        access_log=settings.debug,
        log_level=logging.getLevelName(logging.getLogger().level).lower(),
        timeout_graceful_shutdown=5,
        **kwargs,
    )
    uvicorn.Server(config).run()
