"""How a workflow's graph is read from root_id, parent_id and times: joins, groups, layers, the slowest path."""

from __future__ import annotations

from typing import Any

from celery_monitor.http import workflow_graph


def task(uuid: str, parent: str | None, sent: float, started: float | None = None, runtime: float | None = None,
         state: str = "SUCCESS", name: str = "t") -> dict[str, Any]:
    data: dict[str, Any] = {"uuid": uuid, "name": name, "state": state, "root_id": "r", "parent_id": parent,
                            "sent": sent, "started": started, "runtime": runtime}
    if state == "SUCCESS" and started is not None and runtime is not None:
        data["succeeded"] = started + runtime
    return data


def edges(graph: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e["source"], e["target"], e["kind"]) for e in graph["edges"]}


def test_a_chord_over_a_group_of_chains_joins_every_branch_tail() -> None:
    tasks = [task("r", None, 0, 0, 1),
             task("a1", "r", 1, 1, 1), task("a2", "a1", 2, 2, 1),  # branch a: a chain of two
             task("b1", "r", 1, 1, 5),  # branch b: one slow task, the last to finish
             task("cb", "b1", 6.1, 6.2, 1)]  # the callback, sent by b1
    graph = workflow_graph.build("r", tasks, now=100)
    assert edges(graph) == {("r", "a1", "spawned"), ("a1", "a2", "spawned"), ("r", "b1", "spawned"),
                            ("b1", "cb", "spawned"), ("a2", "cb", "joined")}
    layers = {n["id"]: n["layer"] for n in graph["nodes"]}
    assert layers == {"r": 0, "a1": 1, "b1": 1, "a2": 2, "cb": 3}
    assert graph["groups"] == [{"parent": "r", "members": ["a1", "b1"]}]
    assert graph["slowest_path"] == {"tasks": ["r", "b1", "cb"], "seconds": 7.0}


def test_a_task_sent_while_its_siblings_still_run_is_no_join() -> None:
    tasks = [task("r", None, 0, 0, 1), task("a", "r", 1, 1, 10), task("b", "r", 1, 1, 10),
             task("spawned", "a", 3, 3, 1)]
    assert ("b", "spawned", "joined") not in edges(workflow_graph.build("r", tasks, now=100))
    running = [task("r", None, 0, 0, 1), task("a", "r", 1, 1, 1), task("b", "r", 1, 1, state="STARTED"),
               task("c", "a", 2.5, state="RECEIVED")]
    graph = workflow_graph.build("r", running, now=5)
    assert edges(graph) == {("r", "a", "spawned"), ("r", "b", "spawned"), ("a", "c", "spawned")}
    assert sorted(graph["unfinished"]) == ["b", "c"]
    # A running task's duration is the time since it started.
    assert {n["id"]: n["duration"] for n in graph["nodes"]}["b"] == 4


def test_damaged_lineage_never_loops_and_unknown_parents_make_roots() -> None:
    tasks = [task("x", "y", 1), task("y", "x", 2), task("z", "gone", 3)]
    graph = workflow_graph.build("r", tasks, now=10)
    assert {n["id"] for n in graph["nodes"]} == {"x", "y", "z"}
    assert {n["id"]: n["layer"] for n in graph["nodes"]}["z"] == 0
    assert graph["states"] == {"SUCCESS": 3}


def test_a_chains_next_step_after_its_sibling_finished_gives_way_to_the_callback() -> None:
    tasks = [task("r", None, 0, 0, 1), task("b", "r", 1, 1, 0.5),  # the single task finishes first
             task("a1", "r", 1, 1, 2), task("a2", "a1", 3.1, 3.2, 1),  # then the chain's second step is sent
             task("cb", "a2", 4.3, 4.4, 1)]
    graph = workflow_graph.build("r", tasks, now=100)
    joined = {(s, t) for s, t, kind in edges(graph) if kind == "joined"}
    assert joined == {("b", "cb")}
    # Before the callback is sent, the next step looks like one: the events cannot tell.
    assert {(s, t) for s, t, kind in edges(workflow_graph.build("r", tasks[:4], now=100))
            if kind == "joined"} == {("b", "a2")}
