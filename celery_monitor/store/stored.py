"""What a stored task or worker may hold, checked on the way out of the history.

Everything written since the event boundary exists is valid by construction, but a history
written by an older version, or damaged on disk, may hold anything. A row is checked when it is
read: the fields that fail are dropped (``repair``), and the caller quarantines the original. A
check costs a few microseconds in msgspec's C code and never copies the row.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from celery_monitor.state.models import DEFAULT_CLUSTER, TASK_FIELDS, WorkerRecord

_Text = str | None
_Time = float | None


class StoredTask(msgspec.Struct, forbid_unknown_fields=False):
    uuid: str
    name: _Text = None
    state: _Text = None
    args: _Text = None
    kwargs: _Text = None
    result: _Text = None
    exception: _Text = None
    traceback: _Text = None
    received: _Time = None
    sent: _Time = None
    started: _Time = None
    succeeded: _Time = None
    failed: _Time = None
    retried: _Time = None
    revoked: _Time = None
    rejected: _Time = None
    runtime: _Time = None
    retries: int | None = None
    eta: _Text = None
    expires: _Text = None
    worker: _Text = None
    exchange: _Text = None
    routing_key: _Text = None
    queue: _Text = None
    clock: int | None = None
    timestamp: _Time = None
    root_id: _Text = None
    parent_id: _Text = None
    children: list[str] | None = None
    client: _Text = None
    cluster: _Text = None
    transitions: list[tuple[_Text, _Time, _Text]] | None = None
    custom: dict[str, Any] | None = None


class StoredWorker(msgspec.Struct, forbid_unknown_fields=False):
    hostname: str
    pid: int | None = None
    freq: float = 60.0
    active: int | None = None
    processed: int | None = None
    loadavg: list[float] | None = None
    sw_ident: _Text = None
    sw_ver: _Text = None
    sw_sys: _Text = None
    clock: int | None = None
    heartbeats: list[float] | None = None
    last_seen: _Time = None
    clock_skew: _Time = None
    went_offline: _Time = None
    counters: dict[str, int] | None = None
    cluster: _Text = None


_FIELD = re.compile(r"`\$\.([A-Za-z_][A-Za-z0-9_]*)")
_TASK_DEFAULTS: dict[str, Any] = {"children": [], "transitions": []}


def task_problems(task: dict[str, Any]) -> str | None:
    """None when the task is sound, else what is wrong with it (no values, only fields)."""
    try:
        msgspec.convert(task, StoredTask)
    except msgspec.ValidationError as exc:
        return str(exc)
    return None


def repair(data: Any, struct: type[msgspec.Struct], defaults: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with every field that fails ``struct`` dropped; and the names of those fields."""
    if not isinstance(data, dict):
        return {}, ["(the whole record)"]
    repaired = dict(data)
    dropped: list[str] = []
    for _ in range(len(struct.__struct_fields__) + 1):
        try:
            msgspec.convert(repaired, struct)
            return repaired, dropped
        except msgspec.ValidationError as exc:
            match = _FIELD.search(str(exc))
            if match is None or match.group(1) not in repaired:
                break
            field = match.group(1)
            dropped.append(field)
            if field in defaults:
                repaired[field] = defaults[field]
            else:
                del repaired[field]
    return {}, ["(the whole record)"]


def repair_task(task: Any, uuid: str) -> tuple[dict[str, Any], list[str]]:
    """A sound task from what a row held, keeping every field that passes; its uuid is the row's."""
    repaired, dropped = repair(task, StoredTask, _TASK_DEFAULTS)
    repaired["uuid"] = uuid
    full = {name: repaired.get(name) for name in TASK_FIELDS}
    full["children"] = repaired.get("children") or []
    full.update((k, v) for k, v in repaired.items() if k not in full)
    full["transitions"] = repaired.get("transitions") or []
    full["cluster"] = repaired.get("cluster") or DEFAULT_CLUSTER
    return full, dropped


def repair_worker(data: Any) -> tuple[WorkerRecord | None, list[str]]:
    """The worker a stored row describes (None when its hostname itself is unusable), and the
    fields that had to be dropped."""
    repaired, dropped = repair(data, StoredWorker, {})
    if not repaired:
        return None, dropped
    return WorkerRecord.from_store({k: v for k, v in repaired.items() if v is not None}), dropped
