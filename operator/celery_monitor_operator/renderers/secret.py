"""The generated Secrets: the auth one (a basic-auth login and the cookie-signing key) and
Prometheus's own read-only metrics token.

Passwords, keys and tokens are random, made once: on every later reconcile the existing values
are passed back in and kept, so a login never changes under the user.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta

USERNAME_KEY = "username"
PASSWORD_KEY = "password"
COOKIE_SECRET_KEY = "cookie-secret"
DEFAULT_USERNAME = "admin"
# The metrics Secret: the bearer token Prometheus sends, and the monitor's --api_tokens entry for it
# (its SHA-256 digest with the read-only scope, in the monitor's name:scope:sha256:<hex> form).
METRICS_TOKEN_KEY = "token"
METRICS_ENTRY_KEY = "api-tokens"
METRICS_TOKEN_NAME = "prometheus"
METRICS_TOKEN_SCOPE = "read-only"
METRICS_TOKEN_PREFIX = "cmon_"  # the monitor's own token prefix, so a leaked one is recognisable


def _encode(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def new_token() -> str:
    """A fresh random password or cookie key."""
    return secrets.token_urlsafe(32)


def render_auth_secret(monitor: spec.CeleryMonitorResource, existing_data: Mapping[str, str] | None = None,
                       token: Callable[[], str] = new_token) -> dict[str, Any]:
    """The Secret ``<name>-auth``; ``existing_data`` is the live Secret's base64 ``data``, kept as is."""
    wanted: dict[str, Callable[[], str]] = {
        USERNAME_KEY: lambda: _encode(DEFAULT_USERNAME),
        PASSWORD_KEY: lambda: _encode(token()),
        COOKIE_SECRET_KEY: lambda: _encode(token()),
    }
    existing = dict(existing_data or {})
    data = {key: existing[key] if existing.get(key) else make() for key, make in wanted.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta.metadata(monitor, naming.auth_secret_name(monitor.name)),
        "type": "Opaque",
        "data": data,
    }


def metrics_token_entry(token: str) -> str:
    """The monitor's ``--api_tokens`` entry admitting ``token`` read-only: no usable secret in it."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f"{METRICS_TOKEN_NAME}:{METRICS_TOKEN_SCOPE}:sha256:{digest}"


def render_metrics_secret(monitor: spec.CeleryMonitorResource, existing_data: Mapping[str, str] | None = None,
                          token: Callable[[], str] = new_token) -> dict[str, Any]:
    """The Secret ``<name>-metrics``: a read-only token for Prometheus, apart from the admin login, so
    whatever may read it (the Prometheus Operator, Prometheus) can read metrics and nothing else."""
    try:
        value = base64.b64decode((existing_data or {}).get(METRICS_TOKEN_KEY) or "", validate=True).decode()
    except ValueError:
        value = ""
    value = value or METRICS_TOKEN_PREFIX + token()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta.metadata(monitor, naming.metrics_secret_name(monitor.name)),
        "type": "Opaque",
        "data": {METRICS_TOKEN_KEY: _encode(value), METRICS_ENTRY_KEY: _encode(metrics_token_entry(value))},
    }


def basic_auth_secret_name(monitor: spec.CeleryMonitorResource) -> str:
    """The Secret holding the login: the user's own, or the generated one."""
    return monitor.spec.auth.basic.secret_name or naming.auth_secret_name(monitor.name)
