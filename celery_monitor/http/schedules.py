"""The beat entries as /api/schedules and the schedules page list them: narrowed by ``cluster=``
and, for an identity scoped to some clusters, to those it may read."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from celery_monitor.http.context import monitor_of
from celery_monitor.http.scope import readable_filter
from celery_monitor.http.tasks import cluster_filter


def schedules_listing(request: Request) -> dict[str, Any]:
    """The entries of the clusters asked for (all: none asked) that the identity may read."""
    return monitor_of(request).schedules.listing(readable_filter(request, cluster_filter(request)) or None)
