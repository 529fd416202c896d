"""The worker reads the API and the pages share: a table row, and fresh inspect details on request."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from celery_monitor import clusters
from celery_monitor.http.context import monitor_of


def worker_row(worker: dict[str, Any]) -> dict[str, Any]:
    """One row of the workers table from a live worker record (the pages' and their live pushes')."""
    counters = worker.get("counters") or {}
    processed = worker.get("processed")
    return {
        "hostname": worker["hostname"],
        "status": bool(worker.get("status")),
        "active": worker.get("active") or 0,
        "processed": processed if processed is not None else counters.get("task-received", 0),
        "succeeded": counters.get("task-succeeded", 0),
        "failed": counters.get("task-failed", 0),
        "retried": counters.get("task-retried", 0),
        "loadavg": worker.get("loadavg"),
        "last_heartbeat": worker.get("last_heartbeat"),
        "sw_ident": worker.get("sw_ident"),
        "sw_ver": worker.get("sw_ver"),
        "pid": worker.get("pid"),
        "cluster": worker.get("cluster") or clusters.DEFAULT,
    }


async def refresh_inspector(request: Request, name: str | None) -> None:
    """Ask the workers (``name``, or all) for fresh inspect details and wait for them, within bounds.

    A refresh that fails or takes too long is not an error: the cached details are answered, and
    their timestamp tells their age.
    """
    inspector = monitor_of(request).inspector
    future = inspector.refresh(name)
    try:
        await asyncio.wait_for(asyncio.wrap_future(future), timeout=inspector.refresh_bound)
    except Exception:
        pass
