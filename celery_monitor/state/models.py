"""Task and worker records: the shapes every part of the monitor shares.

Field names follow Celery's event fields and Flower's task JSON, so the API can emit a record as is.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

from celery_monitor.clusters import DEFAULT

DEFAULT_CLUSTER = DEFAULT  # a task's or worker's cluster when the monitor watches one (clusters.py)

# Fields of Flower's task JSON, in the order the API emits them.
TASK_FIELDS: tuple[str, ...] = (
    "uuid", "name", "state", "args", "kwargs", "result", "exception", "traceback",
    "received", "sent", "started", "succeeded", "failed", "retried", "revoked", "rejected",
    "runtime", "retries", "eta", "expires", "worker", "exchange", "routing_key", "queue",
    "clock", "timestamp", "root_id", "parent_id", "children", "client", "cluster",
)  # fmt: skip

_task_fields = operator.attrgetter(*TASK_FIELDS)

# Fields an event may carry that a task keeps (anything else an event holds is ignored).
# The cluster is the monitor's to say (the broker the event came from), never the event's.
EVENT_TASK_FIELDS: frozenset[str] = frozenset(TASK_FIELDS) - {"uuid", "children", "worker", "state", "cluster"}


@dataclass(slots=True)
class TaskRecord:
    """One task as the monitor knows it, with the ordered list of its state transitions."""

    uuid: str
    name: str | None = None
    state: str | None = None
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    received: float | None = None
    sent: float | None = None
    started: float | None = None
    succeeded: float | None = None
    failed: float | None = None
    retried: float | None = None
    revoked: float | None = None
    rejected: float | None = None
    runtime: float | None = None
    retries: int | None = None
    eta: str | None = None
    expires: str | None = None
    worker: str | None = None
    exchange: str | None = None
    routing_key: str | None = None
    queue: str | None = None
    clock: int | None = None
    timestamp: float | None = None
    root_id: str | None = None
    parent_id: str | None = None
    children: list[str] = field(default_factory=list)
    client: str | None = None
    cluster: str = DEFAULT_CLUSTER
    transitions: list[list[Any]] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Flower's task JSON plus our additions (transitions, custom event data).

        A copy other threads may keep: the lists and the dict are copied too, since the applier
        goes on appending to the record's own while the writer, the hub and readers serialise this.
        """
        data = dict(zip(TASK_FIELDS, _task_fields(self), strict=True))  # one C call for all thirty fields
        data["children"] = list(self.children)
        data["transitions"] = list(self.transitions)
        if self.custom:
            data["custom"] = _copy_custom(self.custom)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskRecord:
        record = cls(uuid=data["uuid"])
        for name in TASK_FIELDS:
            if name != "uuid" and name in data:
                setattr(record, name, data[name])
        record.cluster = data.get("cluster") or DEFAULT_CLUSTER
        record.children = list(data.get("children") or [])
        record.transitions = list(data.get("transitions") or [])
        record.custom = _copy_custom(data.get("custom") or {})
        return record


def _copy_custom(custom: dict[str, Any]) -> dict[str, Any]:
    """Custom event data per state: the applier updates each state's dict in place, so copy those too."""
    return {state: dict(data) if isinstance(data, dict) else data for state, data in custom.items()}


# Worker fields copied from worker events.
WORKER_EVENT_FIELDS: frozenset[str] = frozenset(
    {"pid", "freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys", "clock"}
)


@dataclass(slots=True)
class WorkerRecord:
    """One worker: identity, last heartbeat data, and heartbeat times on the monitor's own clock."""

    hostname: str  # qualified by its cluster unless that is ``default`` (clusters.qualified)
    pid: int | None = None
    freq: float = 60.0
    active: int | None = None
    processed: int | None = None
    loadavg: list[float] | None = None
    sw_ident: str | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None
    clock: int | None = None
    heartbeats: list[float] = field(default_factory=list)
    last_seen: float | None = None
    clock_skew: float | None = None
    went_offline: float | None = None
    counters: dict[str, int] = field(default_factory=dict)
    cluster: str = DEFAULT_CLUSTER

    # A worker is online while its last heartbeat is younger than twice its heartbeat interval
    # (Celery's own expiry rule); heartbeats are stamped with the monitor's receive time, so a
    # worker whose clock is skewed is still judged correctly.
    EXPIRE_WINDOW = 2.0

    @property
    def heartbeat_expires(self) -> float | None:
        if not self.heartbeats:
            return None
        return self.heartbeats[-1] + self.freq * self.EXPIRE_WINDOW

    def is_online(self, now: float) -> bool:
        expires = self.heartbeat_expires
        return expires is not None and now < expires

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "pid": self.pid,
            "freq": self.freq,
            "active": self.active,
            "processed": self.processed,
            "loadavg": self.loadavg,
            "sw_ident": self.sw_ident,
            "sw_ver": self.sw_ver,
            "sw_sys": self.sw_sys,
            "clock": self.clock,
            "heartbeats": list(self.heartbeats),
            "last_heartbeat": self.heartbeats[-1] if self.heartbeats else None,
            "heartbeat_expires": self.heartbeat_expires,
            "status": self.is_online(now),
            "last_seen": self.last_seen,
            "clock_skew": self.clock_skew,
            "counters": dict(self.counters),
            "cluster": self.cluster,
        }

    def to_store(self) -> dict[str, Any]:
        """A copy for the history's writer thread (the applier keeps changing the record)."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["heartbeats"] = list(self.heartbeats)
        data["counters"] = dict(self.counters)
        return data

    @classmethod
    def from_store(cls, data: dict[str, Any]) -> WorkerRecord:
        known = set(cls.__slots__)
        worker = cls(**{k: v for k, v in data.items() if k in known})
        worker.cluster = worker.cluster or DEFAULT_CLUSTER  # saved before there were clusters
        return worker
