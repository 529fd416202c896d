"""Who serves a request and for whom: the monitor, its redaction rules, the signed-in user."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from celery_monitor.auth.redact import Redactor

if TYPE_CHECKING:
    from celery_monitor.service import Monitor


def monitor_of(request: HTTPConnection) -> Monitor:
    monitor: Monitor = request.app.state.monitor  # set by create_app
    return monitor


def redactor_of(request: HTTPConnection) -> Redactor | None:
    """The --redact and format_task rules, for task data that does not come from the history."""
    return monitor_of(request).applier.redactor


def user_of(request: HTTPConnection) -> str:
    state = request.scope.get("state") or {}
    return str(state.get("user") or "anonymous")
