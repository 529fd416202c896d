"""WebSockets fed by the hub: live pushes for the pages, and Flower 1.x's task events API.

``/api/ws`` sends the pages batches of changed tasks and workers (graph samples, audit entries), coalesced
over a short window so a burst of events costs one message per window, not one per event.
``/api/task/events/<event-type>/[<task-id>]`` streams each matching Celery event as JSON, as
Flower 1.x did. Unlike Flower, both sit behind the auth gate, which also refuses a handshake whose
Origin is not our own (a page of another site cannot read a user's live data).

A client too slow to keep up loses notices in the hub (never slowing ingestion); the page socket
then tells the browser to fetch afresh.

Both take ``cluster=`` (comma-separated names, as the lists do): only the tasks, workers and events of
those clusters are sent, chosen here rather than in the browser, so a page on one cluster neither
receives nor pays for another's traffic. An audit entry belongs to the cluster its action reached;
the entries of actions on every cluster belong to none: they go to unscoped identities whatever
``cluster=`` says, never to a scoped one. Graph samples go narrowed to those clusters' measures (and
to a scoped identity's clusters).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from celery_monitor import clusters
from celery_monitor.http.errors import ApiError
from celery_monitor.http.scope import readable_filter, scope_of
from celery_monitor.http.tasks import cluster_filter
from celery_monitor.http.workers import worker_row
from celery_monitor.hub import Notice, Subscription

if TYPE_CHECKING:
    from celery_monitor.service import Monitor

BATCH_WINDOW = 0.2
PAGE_TOPICS = frozenset({"tasks", "workers", "samples", "audit"})
EVENT_TYPE = re.compile(r"^task-[a-z0-9_-]{1,64}$")
CLOSE_POLICY = 1008
CLOSE_DISABLED = 4403


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """Accept, then close with a code and reason: a refused handshake would only say 403."""
    await websocket.accept()
    await websocket.close(code=code, reason=reason[:120])


def _clusters_wanted(websocket: WebSocket) -> set[str] | str:
    """The ``cluster=`` names asked for (empty: every cluster), narrowed to those an identity scoped
    to some clusters may see (--cluster_access); or why they cannot be used."""
    try:
        return set(readable_filter(websocket, cluster_filter(websocket)))
    except ApiError as exc:
        return exc.reason


def cluster_of(notice: Notice) -> str | None:
    """The cluster a notice belongs to, or None for one of no cluster (a sample, an action on every cluster).
    A record or event that does not say is of ``default`` (events of it carry no ``cluster``)."""
    kind = notice.get("kind")
    if kind == "task":
        return str(notice["task"].get("cluster") or clusters.DEFAULT)
    if kind == "worker":
        return str(notice["worker"].get("cluster") or clusters.DEFAULT)
    if kind == "event":
        return str(notice["event"].get("cluster") or clusters.DEFAULT)
    if kind == "audit":  # None: an action on every cluster
        cluster = notice["audit"].get("cluster")
        return str(cluster) if cluster else None
    return None


async def _drain(subscription: Subscription, window: float) -> list[Notice]:
    """Wait for one notice, then gather what else arrives within ``window``."""
    first = await subscription.queue.get()
    batch = [first]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    while (left := deadline - loop.time()) > 0:
        try:
            batch.append(await asyncio.wait_for(subscription.queue.get(), left))
        except TimeoutError:
            break
    while not subscription.queue.empty():
        batch.append(subscription.queue.get_nowait())
    return batch


def page_message(batch: list[Notice], overflowed: bool,
                 sample: Callable[[dict[str, Any]], dict[str, Any]] = lambda point: point) -> dict[str, Any]:
    """One push to a page; ``sample`` narrows the graphs' points to the page's clusters."""
    tasks: dict[str, Any] = {}
    workers: dict[str, Any] = {}
    samples: list[Any] = []
    audit: list[Any] = []
    for notice in batch:
        kind = notice.get("kind")
        if kind == "task":
            tasks[notice["task"]["uuid"]] = notice["task"]
        elif kind == "worker":
            workers[notice["worker"]["hostname"]] = worker_row(notice["worker"])
        elif kind == "sample":
            samples.append(sample(notice["sample"]))
        elif kind == "audit":
            audit.append(notice["audit"])
    return {"tasks": list(tasks.values()), "workers": list(workers.values()), "samples": samples, "audit": audit,
            "overflow": overflowed}


async def _watch_close(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a close is noticed at once."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


async def _pump(websocket: WebSocket, subscription: Subscription, render: Any, window: float) -> None:
    reader = asyncio.create_task(_watch_close(websocket))
    try:
        while not reader.done():
            getter = asyncio.create_task(_drain(subscription, window))
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            overflowed = subscription.overflowed > 0
            subscription.overflowed = 0
            for message in render(getter.result(), overflowed):
                await websocket.send_text(orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS).decode())
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass
    finally:
        reader.cancel()


async def page_updates(websocket: WebSocket) -> None:
    """/api/ws?topics=tasks,workers,samples,audit&task=<id>&cluster=<names>: pushes for the open page."""
    monitor: Monitor = websocket.app.state.monitor
    if not monitor.settings.auto_refresh:
        await _refuse(websocket, CLOSE_DISABLED, "Live updates are off (--auto_refresh=False)")
        return
    raw_topics = websocket.query_params.get("topics") or ",".join(sorted(PAGE_TOPICS))
    topics = {t.strip() for t in raw_topics.split(",") if t.strip()}
    if not topics or not topics <= PAGE_TOPICS:
        await _refuse(websocket, CLOSE_POLICY, f"Unknown topics (known: {', '.join(sorted(PAGE_TOPICS))})")
        return
    only_task = websocket.query_params.get("task") or None
    wanted_clusters = _clusters_wanted(websocket)
    if isinstance(wanted_clusters, str):
        await _refuse(websocket, CLOSE_POLICY, wanted_clusters)
        return
    unscoped = scope_of(websocket) is None
    kinds = {"tasks": "task", "workers": "worker", "samples": "sample", "audit": "audit"}
    wanted = {kinds[t] for t in topics}

    def accepts(notice: Notice) -> bool:
        kind = notice.get("kind")
        if kind not in wanted:
            return False
        if kind == "sample":
            return True  # narrowed to the clusters asked for when sent (below)
        if wanted_clusters and cluster_of(notice) not in (None if unscoped else "", *wanted_clusters):
            return False  # a scoped identity gets nothing of no cluster: it spans every cluster
        return only_task is None or kind != "task" or notice["task"].get("uuid") == only_task

    await websocket.accept()
    subscription = monitor.hub.subscribe(accepts)
    try:
        await websocket.send_text(orjson.dumps({"hello": sorted(topics)}).decode())
        chosen = sorted(wanted_clusters)
        await _pump(websocket, subscription,
                    lambda batch, over: [page_message(batch, over, lambda point: monitor.graph_point(point, chosen))],
                    BATCH_WINDOW)
    finally:
        monitor.hub.unsubscribe(subscription)


async def task_events(websocket: WebSocket) -> None:
    """/api/task/events/<event-type>/[<task-id>][?cluster=<names>]: each matching event as one JSON message."""
    monitor: Monitor = websocket.app.state.monitor
    event_type = websocket.path_params["event_type"]
    task_id = (websocket.path_params.get("task_id") or "").strip("/") or None
    if not EVENT_TYPE.match(event_type):
        await _refuse(websocket, CLOSE_POLICY, f"Unknown event type '{event_type[:64]}' (expected task-...)")
        return
    wanted_clusters = _clusters_wanted(websocket)
    if isinstance(wanted_clusters, str):
        await _refuse(websocket, CLOSE_POLICY, wanted_clusters)
        return

    def accepts(notice: Notice) -> bool:
        if notice.get("kind") != "event":
            return False
        if wanted_clusters and cluster_of(notice) not in wanted_clusters:
            return False
        event = notice["event"]
        return event.get("type") == event_type and (task_id is None or event.get("uuid") == task_id)

    await websocket.accept()
    subscription = monitor.hub.subscribe(accepts)
    try:
        await _pump(websocket, subscription, lambda batch, _over: [n["event"] for n in batch], 0.0)
    finally:
        monitor.hub.unsubscribe(subscription)
