"""The audit trail: who did what to which worker or task, with which parameters, and how it went.

Entries live in the history database (table ``audit``), newest first, and are pushed to the open
pages as they are recorded (``listeners``). Task data in them (a task call's args and kwargs, a
result read from the backend) is redacted before it is recorded, so every reader, read-only ones
included, sees the same redacted entries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery_monitor.store.base import Store

log = logging.getLogger(__name__)

MAX_LIST = 20
MAX_TEXT = 2000


def shorten(value: Any) -> Any:
    """Keep entries small: long lists become their head and a count, long strings are cut."""
    if isinstance(value, dict):
        return {str(k): shorten(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [shorten(v) for v in value[:MAX_LIST]]
        if len(value) > MAX_LIST:
            items.append(f"... {len(value) - MAX_LIST} more")
        return items
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "..."
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return shorten(repr(value))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to show: each field narrows (exact user, action and target; a time range)."""

    user: str | None = None
    action: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None
    clusters: tuple[str, ...] = ()  # the actions that reached one of these clusters (none: every entry)


class AuditTrail:
    def __init__(self, store: Store) -> None:
        self.store = store
        # Called with each recorded entry (the pages' live feed); they must not block.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def record(self, user: str, action: str, target: str, params: dict[str, Any], status: int,
               result: dict[str, Any], cluster: str | None = None) -> dict[str, Any]:
        """``cluster``: the one the action reached (None: every cluster, or not known)."""
        entry = {"time": time.time(), "user": user or "anonymous", "action": action, "target": target,
                 "params": shorten(params), "status": status, "ok": status < 400, "result": shorten(result),
                 "cluster": cluster}
        try:
            entry["id"] = self.store.add_audit(entry)
        except Exception as exc:  # the action happened; losing its record must not turn it into an error
            log.error("could not record %s on %s in the audit trail: %s", action, target, exc)
        for listener in self.listeners:
            try:
                listener(entry)
            except Exception as exc:  # a page not told is no reason to fail the action
                log.warning("could not push the audit entry of %s: %s", action, exc)
        return entry

    def entries(self, limit: int = 50, offset: int = 0, user: str | None = None,
                action: str | None = None, where: AuditFilter | None = None) -> list[dict[str, Any]]:
        where = where or AuditFilter(user=user, action=action)
        return self.store.audit_entries(limit, offset, user=where.user, action=where.action, target=where.target,
                                        since=where.since, until=where.until, clusters=where.clusters)

    def count(self, user: str | None = None, action: str | None = None, where: AuditFilter | None = None) -> int:
        where = where or AuditFilter(user=user, action=action)
        return self.store.audit_count(user=where.user, action=where.action, target=where.target,
                                      since=where.since, until=where.until, clusters=where.clusters)

    def facets(self, clusters: tuple[str, ...] = ()) -> dict[str, list[str]]:
        """The users and actions the trail holds (of these clusters' entries), for the page's filter menus."""
        return self.store.audit_facets(clusters)

