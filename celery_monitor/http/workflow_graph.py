"""The graph of a canvas (chain, group, chord, nested ones) from the tasks of one root.

Celery's events say, for each task, its ``root_id`` (the first task of the workflow) and its
``parent_id`` (the task that sent it: the previous step of a chain, the task that started a group,
the header task that finished last for a chord's callback). They do not say which tasks form a group
or which callback joins a chord: those are read from the shape and the times.

- **spawned** edges: parent -> child, from ``parent_id``.
- **groups**: the children of one task, when it has two or more (a group, or tasks it sent itself).
- **joined** edges: a chord's callback C is sent by the header task that finishes last, so its parent
  P is the tail of one branch of a group (a member, or the last step of a chain a member started).
  When every other branch's tail had finished (by its event, or its start plus runtime) no later
  than C was sent, give or take ``JOIN_TOLERANCE``, C joins them all; of several such tasks for one
  group, the last sent (a callback comes after everything in its chord). A task a group member sent
  after all its siblings had finished (the next step of a chain in a group, a task it sent itself)
  is drawn as a join when no later one is: without the group id, which events do not carry,
  nothing tells it from a callback.

The slowest path is the path through the graph with the largest sum of task durations (runtime,
or the time since a running task started).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from celery_monitor.states import FINISHED_STATES

JOIN_TOLERANCE = 2.0  # seconds: a header's final event may follow the callback it let go
_FINAL_TIMES = ("succeeded", "failed", "revoked", "rejected")
NODE_FIELDS = ("name", "state", "worker", "args", "kwargs", "retries", "sent", "received", "started", "runtime",
               "parent_id", "exception")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def finished_at(task: dict[str, Any]) -> float | None:
    """When a finished task ended: its final event, or its start plus its runtime if that is earlier."""
    if task.get("state") not in FINISHED_STATES:
        return None
    times = [t for key in _FINAL_TIMES if (t := _number(task.get(key))) is not None]
    started, runtime = _number(task.get("started")), _number(task.get("runtime"))
    if started is not None and runtime is not None:
        times.append(started + runtime)
    if not times:
        return _number(task.get("timestamp"))
    return min(times)


def dispatched_at(task: dict[str, Any]) -> float | None:
    """When a task was sent, or failing that first seen."""
    for key in ("sent", "received", "started", "timestamp"):
        if (value := _number(task.get(key))) is not None:
            return value
    return None


def duration(task: dict[str, Any], now: float) -> float | None:
    """Runtime when known; for a task still running, the time since it started."""
    runtime = _number(task.get("runtime"))
    if runtime is not None:
        return runtime
    started = _number(task.get("started"))
    if started is None:
        return None
    end = finished_at(task)
    return max(0.0, (end if end is not None else now) - started)


class _Shape:
    """Parents and children among the workflow's tasks (a parent outside the workflow is no parent)."""

    def __init__(self, tasks: dict[str, dict[str, Any]]) -> None:
        self.tasks = tasks
        self.parent: dict[str, str] = {}
        self.children: dict[str, list[str]] = defaultdict(list)
        for uuid, task in tasks.items():
            parent = task.get("parent_id")
            if isinstance(parent, str) and parent in tasks and parent != uuid:
                self.parent[uuid] = parent
                self.children[parent].append(uuid)
        for kids in self.children.values():
            kids.sort(key=lambda uuid: (dispatched_at(tasks[uuid]) or 0.0, uuid))

    def branch_head(self, uuid: str) -> str:
        """Up a chain of only children: the first step of the branch ``uuid`` is in."""
        seen = {uuid}
        while (parent := self.parent.get(uuid)) is not None and len(self.children[parent]) == 1:
            if parent in seen:
                break
            seen.add(parent)
            uuid = parent
        return uuid

    def branch_tail(self, uuid: str, stop: str) -> str:
        """Down a chain of only children (never into ``stop``): the last step of a branch."""
        seen = {uuid}
        while len(kids := self.children.get(uuid, [])) == 1 and kids[0] != stop and kids[0] not in seen:
            uuid = kids[0]
            seen.add(uuid)
        return uuid

    def joined_by(self, uuid: str) -> tuple[str, list[str]] | None:
        """The fork and the other branch tails a task joins, if it may be a chord's callback (see the
        module's docstring)."""
        parent = self.parent.get(uuid)
        if parent is None:
            return None
        head = self.branch_head(parent)
        fork = self.parent.get(head)
        if fork is None or len(self.children[fork]) < 2:
            return None
        sent = dispatched_at(self.tasks[uuid])
        if sent is None:
            return None
        tails = [self.branch_tail(member, uuid) for member in self.children[fork] if member != head]
        for tail in tails:
            end = finished_at(self.tasks[tail])
            if tail == uuid or end is None or end > sent + JOIN_TOLERANCE:
                return None
        return fork, tails

    def joins(self, ids: list[str]) -> dict[str, list[str]]:
        """The callback of each fork and the tails it joins. Of several candidates for one fork (the
        next step of a chain in the group, sent once the other branches had finished, then the
        callback itself) the last sent wins: a chord's callback is sent after everything in it."""
        chosen: dict[str, tuple[float, str, list[str]]] = {}
        for uuid in ids:
            found = self.joined_by(uuid)
            if found is None:
                continue
            fork, tails = found
            sent = dispatched_at(self.tasks[uuid]) or 0.0
            if fork not in chosen or sent >= chosen[fork][0]:
                chosen[fork] = (sent, uuid, tails)
        return {callback: tails for _, callback, tails in chosen.values()}


def _topological(ids: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Kahn's order; anything left in a cycle (only damaged data makes one) comes last."""
    incoming: dict[str, int] = dict.fromkeys(ids, 0)
    out: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        incoming[target] += 1
        out[source].append(target)
    ready = [uuid for uuid in ids if incoming[uuid] == 0]
    order: list[str] = []
    while ready:
        uuid = ready.pop(0)
        order.append(uuid)
        for target in out[uuid]:
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    placed = set(order)
    return order + [uuid for uuid in ids if uuid not in placed]


def build(root_id: str, tasks: Iterable[dict[str, Any]], now: float, truncated: bool = False) -> dict[str, Any]:
    """The workflow's nodes (with layer and position in it), edges, groups, slowest path and counts."""
    by_id = {task["uuid"]: task for task in tasks if isinstance(task.get("uuid"), str)}
    ids = sorted(by_id, key=lambda uuid: (dispatched_at(by_id[uuid]) or 0.0, uuid))
    shape = _Shape(by_id)
    edges: list[dict[str, str]] = []
    pairs: list[tuple[str, str]] = []
    joins = shape.joins(ids)
    for uuid in ids:
        if (parent := shape.parent.get(uuid)) is not None:
            edges.append({"source": parent, "target": uuid, "kind": "spawned"})
            pairs.append((parent, uuid))
        for tail in joins.get(uuid, []):
            edges.append({"source": tail, "target": uuid, "kind": "joined"})
            pairs.append((tail, uuid))
    order = _topological(ids, pairs)
    predecessors: dict[str, list[str]] = defaultdict(list)
    for source, target in pairs:
        predecessors[target].append(source)
    layer: dict[str, int] = {}
    slowest: dict[str, tuple[float, str | None]] = {}
    for uuid in order:
        before = [p for p in predecessors[uuid] if p in layer]
        layer[uuid] = 1 + max((layer[p] for p in before), default=-1)
        own = duration(by_id[uuid], now) or 0.0
        best = max(before, key=lambda p: slowest[p][0], default=None)
        slowest[uuid] = (own + (slowest[best][0] if best is not None else 0.0), best)
    path: list[str] = []
    if slowest:
        cursor: str | None = max(order, key=lambda uuid: slowest[uuid][0])
        while cursor is not None and cursor not in path:
            path.append(cursor)
            cursor = slowest[cursor][1]
        path.reverse()
    position: dict[str, int] = {}
    per_layer: dict[int, int] = defaultdict(int)
    for uuid in ids:
        position[uuid] = per_layer[layer[uuid]]
        per_layer[layer[uuid]] += 1
    edges.sort(key=lambda e: (layer[e["target"]], position[e["target"]], layer[e["source"]], position[e["source"]]))
    nodes = []
    states: dict[str, int] = defaultdict(int)
    for uuid in ids:
        task = by_id[uuid]
        state = task.get("state") if isinstance(task.get("state"), str) else None
        states[state or "UNKNOWN"] += 1
        node = {"id": uuid, **{key: task.get(key) for key in NODE_FIELDS}, "finished": finished_at(task),
                "duration": duration(task, now), "layer": layer[uuid], "position": position[uuid],
                "root": uuid == root_id}
        nodes.append(node)
    groups = [{"parent": parent, "members": list(kids)} for parent, kids in shape.children.items() if len(kids) > 1]
    unfinished = [node["id"] for node in nodes if node["state"] not in FINISHED_STATES]
    return {
        "root_id": root_id,
        "nodes": nodes,
        "edges": edges,
        "groups": groups,
        "slowest_path": {"tasks": path, "seconds": slowest[path[-1]][0] if path else 0.0},
        "states": dict(states),
        "unfinished": unfinished,
        "truncated": truncated,
    }
