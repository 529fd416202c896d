"""Flower 1.x's WebSocket events API and the pages' live socket: events stream, behind the login and Origin check."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from support.browser import AUTH, WebCluster
from support.client import celery_client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.redis
BASIC = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()


def ws_url(cluster: WebCluster, path: str) -> str:
    return cluster.monitor.url.replace("http://", "ws://") + path


@contextmanager
def socket(cluster: WebCluster, path: str, **headers: str) -> Iterator[ClientConnection]:
    with connect(ws_url(cluster, path), additional_headers={"Authorization": BASIC, **headers},
                 open_timeout=5) as connection:
        yield connection


def next_json(connection: ClientConnection, timeout: float = 10) -> dict[str, object]:
    return json.loads(connection.recv(timeout=timeout))  # type: ignore[no-any-return]


def test_events_of_one_type_stream_as_json(web_cluster: WebCluster) -> None:
    with socket(web_cluster, "/api/task/events/task-succeeded/") as events, \
            celery_client(web_cluster.broker, web_cluster.backend) as client:
        result = client.send_task("tests.add", (20, 22))
        result.get(timeout=10)
        event = next_json(events)
        while event.get("uuid") != result.id:  # other tests' tasks may finish meanwhile
            event = next_json(events)
    assert event["type"] == "task-succeeded"
    assert event["result"] == "42"
    assert event["hostname"] == web_cluster.worker.hostname


def test_events_of_one_task_only(web_cluster: WebCluster) -> None:
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        other = client.send_task("tests.sleep", (0.3,))
        result = client.send_task("tests.sleep", (0.3,), countdown=1)
        with socket(web_cluster, f"/api/task/events/task-started/{result.id}") as events:
            event = next_json(events)
        other.get(timeout=10)
    assert (event["type"], event["uuid"]) == ("task-started", result.id)


def test_the_events_api_needs_credentials(web_cluster: WebCluster) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(web_cluster, "/api/task/events/task-succeeded/"), open_timeout=5)
    assert refused.value.response.status_code == 401


@pytest.mark.parametrize("path", ["/api/task/events/task-succeeded/", "/api/ws"])
def test_another_sites_page_may_not_connect(web_cluster: WebCluster, path: str) -> None:
    with pytest.raises(InvalidStatus) as refused, socket(web_cluster, path, Origin="http://evil.example"):
        pass
    assert refused.value.response.status_code == 403


def test_our_own_pages_origin_may_connect(web_cluster: WebCluster) -> None:
    with socket(web_cluster, "/api/ws?topics=workers", Origin=web_cluster.monitor.url) as live:
        assert next_json(live) == {"hello": ["workers"]}
        update = next_json(live, timeout=15)  # the worker's next heartbeat
    assert [w["hostname"] for w in update["workers"]] == [web_cluster.worker.hostname]


@pytest.mark.parametrize(("path", "reason"), [
    ("/api/task/events/worker-online/", "Unknown event type"),
    ("/api/ws?topics=tasks,gossip", "Unknown topics"),
])
def test_bad_requests_are_closed_with_a_reason(web_cluster: WebCluster, path: str, reason: str) -> None:
    with socket(web_cluster, path) as connection, pytest.raises(ConnectionClosed) as closed:
        connection.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith(reason)
