"""The events a standby rebuilds from task rows: each transition once, the monitor's own ones never,
a task first seen only for what is fresh, a custom event with its data."""

from __future__ import annotations

from celery_monitor.states import INSPECTED, LOST_WORKER_OFFLINE
from celery_monitor.store.relayed_events import FRESH_SECONDS, EventRebuilder

NOW = 1_000_000.0


def task(*transitions: list[object], **fields: object) -> dict[str, object]:
    return {"uuid": "t1", "name": "tests.add", "args": "(1, 2)", "kwargs": "{}", "result": "3", "runtime": 0.1,
            "transitions": [list(t) for t in transitions], **fields}


def test_each_transition_is_told_once_with_the_fields_of_its_type() -> None:
    rebuilder = EventRebuilder()
    received = ["RECEIVED", NOW - 1, "w@h"]
    first = rebuilder.events(task(received), now=NOW)
    assert first == [{"type": "task-received", "uuid": "t1", "hostname": "w@h", "timestamp": NOW - 1,
                      "name": "tests.add", "args": "(1, 2)", "kwargs": "{}"}]
    later = rebuilder.events(task(received, ["STARTED", NOW, "w@h"], ["SUCCESS", NOW + 1, "w@h"]), now=NOW + 1)
    assert [(e["type"], e.get("result"), e.get("runtime")) for e in later] == [
        ("task-started", None, None), ("task-succeeded", "3", 0.1)]
    assert rebuilder.events(task(received, ["STARTED", NOW, "w@h"], ["SUCCESS", NOW + 1, "w@h"]), now=NOW + 2) == []


def test_the_monitors_own_transitions_are_no_events_and_old_ones_of_a_new_task_are_not_told() -> None:
    rebuilder = EventRebuilder()
    rows = task(["RECEIVED", NOW - FRESH_SECONDS - 5, "w@h"], ["STARTED", NOW - 2, INSPECTED],
                ["LOST", NOW - 1, LOST_WORKER_OFFLINE], ["SUCCESS", NOW, "w@h"])
    assert [e["type"] for e in rebuilder.events(rows, now=NOW)] == ["task-succeeded"]


def test_a_custom_event_brings_its_data_and_the_memory_is_bounded() -> None:
    rebuilder = EventRebuilder(remember=2)
    progress = task(["PROGRESS", NOW, "w@h"], custom={"PROGRESS": {"done": 5, "of": 10}})
    assert rebuilder.events(progress, now=NOW) == [
        {"type": "task-progress", "uuid": "t1", "hostname": "w@h", "timestamp": NOW, "done": 5, "of": 10}]
    for other in ("t2", "t3"):
        rebuilder.events({**progress, "uuid": other}, now=NOW)
    assert len(rebuilder.events(progress, now=NOW)) == 1  # forgotten, told again while fresh


def test_an_event_of_another_cluster_says_its_cluster_as_the_leaders_do() -> None:
    rebuilder = EventRebuilder()
    (event,) = rebuilder.events(task(["SUCCESS", NOW, "prod:w@h"], cluster="prod"), now=NOW)
    assert (event["hostname"], event["cluster"]) == ("prod:w@h", "prod")
    (plain,) = EventRebuilder().events(task(["SUCCESS", NOW, "w@h"], cluster="default"), now=NOW)
    assert "cluster" not in plain  # the default cluster's events stay as Celery sent them
