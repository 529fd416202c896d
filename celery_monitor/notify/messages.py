"""One notification as every channel sends it: what happened, how often, and links to the monitor."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER

FIRING = "firing"
RESOLVED = "resolved"
TEST = "test"
MAX_EXAMPLES = 5  # tasks or subjects listed in a grouped message; the count says how many there were


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass
class Message:
    rule: str
    kind: str
    severity: str
    status: str
    subject: str
    summary: str
    count: int = 1
    details: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    first_at: float = field(default_factory=time.time)
    last_at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def dedup_key(self) -> str:
        """One incident per rule and subject: a resolve closes what its firing opened (PagerDuty)."""
        return f"celery-monitor/{self.rule}/{self.subject}"

    @property
    def title(self) -> str:
        prefix = "RESOLVED" if self.status == RESOLVED else self.severity.upper()
        return f"[{prefix}] {self.summary}"

    def text(self) -> str:
        lines = [self.title, *self.details]
        lines.extend(f"{link.title}: {link.url}" for link in self.links)
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule, "kind": self.kind, "severity": self.severity,
                "status": self.status, "subject": self.subject, "summary": self.summary, "count": self.count,
                "details": list(self.details), "links": [{"title": k.title, "url": k.url} for k in self.links],
                "first_at": self.first_at, "last_at": self.last_at, "dedup_key": self.dedup_key}


class Links:
    """Addresses of the monitor's pages, from ``--public_url``, else as the last page request a trusted
    proxy forwarded saw them (--xheaders); with neither, messages carry no links."""

    def __init__(self, public_url: str) -> None:
        self.base = public_url.rstrip("/")
        self.configured = bool(self.base)

    def learn(self, base: str) -> None:
        """The monitor's address as a trusted proxy forwarded it; --public_url, when given, wins."""
        if not self.configured:
            self.base = base.rstrip("/")

    def _at(self, title: str, path: str) -> list[Link]:
        return [Link(title, f"{self.base}{path}")] if self.base else []

    def task(self, task_id: str) -> list[Link]:
        return self._at(f"task {task_id}", f"/task/{quote(task_id, safe='')}")

    def tasks(self, name: str, state: str, cluster: str | None = None) -> list[Link]:
        """The tasks page listing tasks of this name (in this state, of this cluster)."""
        state_filter = f"&state={quote(state, safe='')}" if state else ""
        cluster_filter = f"&cluster={quote(cluster, safe='')}" if cluster else ""
        return self._at("tasks", f"/tasks?taskname={quote(name, safe='')}{state_filter}{cluster_filter}")

    def worker(self, hostname: str) -> list[Link]:
        return self._at(f"worker {hostname}", f"/worker/{quote(hostname, safe='')}")

    def broker(self, cluster: str | None = None) -> list[Link]:
        """The broker page; narrowed to a cluster's queues when one is named."""
        return self._at("queues", f"/broker?cluster={quote(cluster, safe='')}" if cluster else "/broker")

    def schedules(self) -> list[Link]:
        return self._at("periodic tasks", "/schedules")

    def failure_group(self, name: str, exception_type: str, cluster: str | None = None) -> list[Link]:
        """The group's page; a group of another cluster than default is named with its cluster."""
        query = f"name={quote(name, safe='')}&exception={quote(exception_type, safe='')}"
        if cluster and cluster != DEFAULT_CLUSTER:
            query += f"&group_cluster={quote(cluster, safe='')}"
        return self._at("failure group", f"/failures?{query}")

    def workflow(self, root_id: str) -> list[Link]:
        return self._at(f"workflow {root_id}", f"/workflow/{quote(root_id, safe='')}")

    def page(self) -> list[Link]:
        return self._at("notifications", "/notifications")
