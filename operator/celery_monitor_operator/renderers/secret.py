"""The generated auth Secret: a basic-auth login and the cookie-signing key.

The password and the cookie key are random, made once: on every later reconcile the
existing values are passed back in and kept, so the login never changes under the user.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta

USERNAME_KEY = "username"
PASSWORD_KEY = "password"
COOKIE_SECRET_KEY = "cookie-secret"
DEFAULT_USERNAME = "admin"


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


def basic_auth_secret_name(monitor: spec.CeleryMonitorResource) -> str:
    """The Secret holding the login: the user's own, or the generated one."""
    return monitor.spec.auth.basic.secret_name or naming.auth_secret_name(monitor.name)
