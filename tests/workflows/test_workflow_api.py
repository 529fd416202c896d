"""Workflows on real prefork workers, on Redis and on RabbitMQ: a chord of ten with its callback, a chain
of five in order, and revoking what is left of a workflow (audited)."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from celery import chain, chord, group
from support.client import celery_client
from support.processes import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.rabbitmq]
Cluster = Any  # tests/conftest.py's Cluster: a broker, a backend, a worker and a monitor


def graph_of(cluster: Cluster, root_id: str) -> dict[str, Any]:
    answer = cluster.monitor.get(f"/api/workflow/{root_id}")
    return answer.json() if answer.status_code == 200 else {"nodes": [], "edges": []}


def states(graph: dict[str, Any]) -> dict[str, str]:
    return {node["id"]: node["state"] for node in graph["nodes"]}


def test_a_chord_of_ten_renders_twelve_nodes_with_their_edges_and_live_states(cluster: Cluster) -> None:
    with celery_client(cluster.broker, cluster.backend) as client:
        header = group(client.signature("tests.hold", args=(0.8, i), immutable=True) for i in range(10))
        callback = client.signature("tests.echo")
        result = chain(client.signature("tests.add", args=(1, 1), immutable=True), chord(header, callback)).delay()
        root_id = result.parent.parent.id if result.parent.parent is not None else result.parent.id
        # Live: while the header runs, the graph shows tasks running and others still to come.
        running = wait_for(lambda: (g := graph_of(cluster, root_id)) and "STARTED" in states(g).values() and g, 30,
                           message="a header task STARTED in the workflow")
        assert len(running["unfinished"]) >= 1
        assert result.get(timeout=60) is not None
    del client, result, running, header, callback  # results and their client hold each other: collect them while
    gc.collect()  # their Redis answers, or each complains later that it cannot unsubscribe
    graph = wait_for(lambda: (g := graph_of(cluster, root_id)) and len(g["nodes"]) == 12
                     and set(states(g).values()) == {"SUCCESS"} and g, 30,
                     message="12 tasks, all SUCCESS, in the workflow")
    nodes = {node["id"]: node for node in graph["nodes"]}
    root = nodes[root_id]
    assert root["root"] and root["name"] == "tests.add" and root["layer"] == 0
    headers = [n for n in nodes.values() if n["name"] == "tests.hold"]
    callbacks = [n for n in nodes.values() if n["name"] == "tests.echo"]
    assert len(headers) == 10 and len(callbacks) == 1
    callback_id = callbacks[0]["id"]
    edges = {(e["source"], e["target"], e["kind"]) for e in graph["edges"]}
    assert {(s, t) for s, t, _ in edges if s == root_id} == {(root_id, h["id"]) for h in headers}
    # Every header joins the callback: one by parent_id (the last to finish), the others inferred.
    into_callback = [(s, kind) for s, t, kind in edges if t == callback_id]
    assert {s for s, _ in into_callback} == {h["id"] for h in headers}
    assert sorted(kind for _, kind in into_callback) == ["joined"] * 9 + ["spawned"]
    assert len(graph["edges"]) == 20
    assert {h["layer"] for h in headers} == {1} and callbacks[0]["layer"] == 2
    assert graph["groups"] == [{"parent": root_id, "members": [h["id"] for h in sorted(
        headers, key=lambda n: n["position"])]}]
    slowest = graph["slowest_path"]["tasks"]
    assert len(slowest) == 3 and slowest[0] == root_id and slowest[-1] == callback_id
    assert graph["slowest_path"]["seconds"] >= 0.8
    assert all(h["duration"] >= 0.8 for h in headers)


def test_a_chain_of_five_renders_in_order(cluster: Cluster) -> None:
    with celery_client(cluster.broker, cluster.backend) as client:
        steps = [client.signature("tests.add", args=(1, 1))] + [client.signature("tests.add", args=(10,))
                                                                 for _ in range(4)]
        result = chain(*steps).delay()
        assert result.get(timeout=30) == 42
        ids = []
        cursor: Any = result
        while cursor is not None:
            ids.append(cursor.id)
            cursor = cursor.parent
        ids.reverse()
    del client, result  # results and their client hold each other: collect them while
    gc.collect()  # their Redis answers, or each complains later that it cannot unsubscribe
    assert len(ids) == 5
    graph = wait_for(lambda: (g := graph_of(cluster, ids[0])) and len(g["nodes"]) == 5
                     and set(states(g).values()) == {"SUCCESS"} and g, 30, message="the chain's five tasks")
    layers = {node["id"]: node["layer"] for node in graph["nodes"]}
    assert [layers[uuid] for uuid in ids] == [0, 1, 2, 3, 4]
    assert [(e["source"], e["target"], e["kind"]) for e in graph["edges"]] == [
        (ids[i], ids[i + 1], "spawned") for i in range(4)]
    assert [node["args"] for node in sorted(graph["nodes"], key=lambda n: n["layer"])] == [
        "(1, 1)", "(2, 10)", "(12, 10)", "(22, 10)", "(32, 10)"]
    assert graph["slowest_path"]["tasks"] == ids
    assert graph["groups"] == [] and graph["unfinished"] == []


def test_revoking_the_workflow_stops_what_is_left_and_is_audited(cluster: Cluster) -> None:
    with celery_client(cluster.broker, cluster.backend) as client:
        header = group(client.signature("tests.hold", args=(60, i), immutable=True) for i in range(6))
        result = chain(client.signature("tests.add", args=(2, 2), immutable=True),
                       chord(header, client.signature("tests.echo"))).delay()
        root_id = result.parent.parent.id if result.parent.parent is not None else result.parent.id
    del client, result, header  # results and their client hold each other: collect them while
    gc.collect()  # their Redis answers, or each complains later that it cannot unsubscribe
    wait_for(lambda: len(graph_of(cluster, root_id)["nodes"]) == 7
             and list(states(graph_of(cluster, root_id)).values()).count("STARTED") == 2, 40,
             message="the six header tasks known, two of them running")
    dry = cluster.monitor.client.post(f"/api/workflow/{root_id}/revoke", params={"dry_run": "true"})
    assert dry.status_code == 200 and dry.json()["count"] == 6
    answer = cluster.monitor.client.post(f"/api/workflow/{root_id}/revoke", params={"terminate": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["count"] == 6 and answer.json()["workers"] >= 1
    graph = wait_for(lambda: (g := graph_of(cluster, root_id)) and not g["unfinished"] and g, 40,
                     message="every task of the workflow finished")
    final = {node["name"]: [] for node in graph["nodes"]}
    for node in graph["nodes"]:
        final[node["name"]].append(node["state"])
    # The header tasks are revoked (two of them killed while running), so the callback never runs.
    assert final == {"tests.add": ["SUCCESS"], "tests.hold": ["REVOKED"] * 6}
    entries = cluster.monitor.json("/api/audit", params={"action": "workflow.revoke"})["entries"]
    mine = [e for e in entries if e["target"] == root_id and e["status"] == 200 and not e["params"].get("dry_run")]
    assert mine and mine[0]["result"]["count"] == 6
    again = cluster.monitor.client.post(f"/api/workflow/{root_id}/revoke")
    assert again.status_code == 200 and again.json()["count"] == 0


def test_an_unknown_or_invalid_workflow_is_a_4xx_with_a_reason(cluster: Cluster) -> None:
    missing = cluster.monitor.get("/api/workflow/no-such-root")
    assert missing.status_code == 404 and "Unknown workflow" in missing.json()["error"]
    too_long = cluster.monitor.get(f"/api/workflow/{'x' * 300}")
    assert too_long.status_code == 400 and "error" in too_long.json()
    revoke_missing = cluster.monitor.client.post("/api/workflow/no-such-root/revoke")
    assert revoke_missing.status_code == 404


def test_a_nested_canvas_a_chord_over_a_chain_and_a_task(cluster: Cluster) -> None:
    with celery_client(cluster.broker, cluster.backend) as client:
        branch = chain(client.signature("tests.add", args=(1, 1), immutable=True),
                       client.signature("tests.add", args=(1,)))
        header = group(branch, client.signature("tests.add", args=(5, 5), immutable=True))
        result = chain(client.signature("tests.add", args=(0, 0), immutable=True),
                       chord(header, client.signature("tests.echo"))).delay()
        assert result.get(timeout=30) == {"args": [[3, 10]], "kwargs": {}}
        root_id = result.parent.parent.id if result.parent.parent is not None else result.parent.id
    del client, result, header, branch  # results and their client hold each other: collect them while
    gc.collect()  # their Redis answers, or each complains later that it cannot unsubscribe
    graph = wait_for(lambda: (g := graph_of(cluster, root_id)) and len(g["nodes"]) == 5
                     and set(states(g).values()) == {"SUCCESS"} and g, 30, message="the nested canvas's 5 tasks")
    by_args = {node["args"]: node["id"] for node in graph["nodes"]}
    first, second, single = by_args["(1, 1)"], by_args["(2, 1)"], by_args["(5, 5)"]
    callback = next(node["id"] for node in graph["nodes"] if node["name"] == "tests.echo")
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert edges == {(root_id, first), (first, second), (root_id, single), (second, callback), (single, callback)}
    assert {e["kind"] for e in graph["edges"] if e["target"] == callback} == {"spawned", "joined"}
    layers = {node["id"]: node["layer"] for node in graph["nodes"]}
    assert (layers[root_id], layers[first], layers[single], layers[second], layers[callback]) == (0, 1, 1, 2, 3)
