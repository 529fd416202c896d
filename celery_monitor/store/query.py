"""A task query as the API and the pages ask it: filters, search, order and a page."""

from __future__ import annotations

from dataclasses import dataclass, field

from celery_monitor.store.search import SearchTerms

# Sort keys the store indexes; Flower's four first.
SORT_KEYS: tuple[str, ...] = (
    "name", "state", "received", "started", "runtime", "worker", "timestamp", "succeeded", "failed",
    "sent", "uuid",
)  # fmt: skip


@dataclass(slots=True)
class TaskQuery:
    limit: int | None = None
    offset: int = 0
    sort_by: str | None = None
    descending: bool = True
    workers: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)  # none: every cluster
    received_start: float | None = None
    received_end: float | None = None
    search: SearchTerms = field(default_factory=SearchTerms)
