"""The event boundary: each event is checked against its type's fields; a bad one is refused alone,
counted by reason and listed; unambiguous values are normalised and long texts cut with a marker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.harness import Harness
from support.hostile_events import good_task_events

from celery_monitor.applier.boundary import EventBoundary
from celery_monitor.receiver.handoff import RawMessage

# The malformed events that once made /api/workers, /metrics, /api/task/types and /tasks answer 500.
REPORTED = [
    ({"type": "worker-heartbeat", "hostname": "w@h", "timestamp": "yesterday"}, "invalid_field", "timestamp"),
    ({"type": "worker-online", "hostname": None}, "invalid_field", "hostname"),
    ({"type": "task-received", "uuid": "t1", "name": 5, "clock": "x"}, "invalid_field", "name"),
    ({"type": "task-failed", "uuid": "t1", "exception": {"class": "E"}, "traceback": 3}, "invalid_field", "exception"),
    ({"type": "task-started"}, "missing_field", "uuid"),
    ({"type": "worker-heartbeat"}, "missing_field", "hostname"),
    ({"type": "task-succeeded", "uuid": "t1", "runtime": float("nan")}, "invalid_field", "runtime"),
    ({"type": "worker-heartbeat", "hostname": "w@h", "freq": float("inf")}, "invalid_field", "freq"),
    ({"type": "worker-heartbeat", "hostname": "w@h", "freq": 0}, "invalid_field", "freq"),
    ({"type": "task-received", "uuid": "t1", "timestamp": 1e300}, "invalid_field", "timestamp"),
    ({"type": "task-received", "uuid": "t1", "clock": 2**70}, "invalid_field", "clock"),
    ({"type": "task-received", "uuid": "x" * 300}, "invalid_field", "uuid"),
    ({"type": "task-received", "uuid": "t1", "retries": True}, "invalid_field", "retries"),
    ({"type": "no-such-event"}, "unknown_type", None),
    ({"type": 7}, "not_an_event", None),
    ([1, 2], "not_an_event", None),
]


@pytest.mark.parametrize(("item", "reason", "field"), REPORTED)
def test_a_malformed_event_is_refused_with_its_reason(item: Any, reason: str, field: str | None) -> None:
    boundary = EventBoundary()
    assert boundary.check(item) is None
    assert boundary.rejections.counts()[reason] == 1
    (latest,) = boundary.rejections.latest()
    assert latest["reason"] == reason
    if field is not None:
        assert f"`$.{field}`" in latest["detail"] or f"`{field}`" in latest["detail"]


def test_a_rejection_names_the_field_never_the_value() -> None:
    boundary = EventBoundary()
    assert boundary.check({"type": "task-received", "uuid": "t1", "name": ["password=hunter2"]}) is None
    assert "hunter2" not in json.dumps(boundary.rejections.latest())


def test_unambiguous_values_are_normalised() -> None:
    boundary = EventBoundary()
    heartbeat = boundary.check({"type": "worker-heartbeat", "hostname": "w@h", "freq": "2", "active": "3",
                                "timestamp": 1700000000, "loadavg": ["0.5", 1, 2.5], "unknown": object()})
    assert heartbeat == {"type": "worker-heartbeat", "hostname": "w@h", "freq": 2.0, "active": 3,
                         "timestamp": 1700000000.0, "loadavg": [0.5, 1.0, 2.5]}
    # A client that sends the arguments themselves rather than Celery's reprs gets them shown as reprs.
    received = boundary.check({"type": "task-received", "uuid": "t1", "args": [1, "<b>"], "kwargs": {"k": None}})
    assert received is not None and (received["args"], received["kwargs"]) == ("[1, '<b>']", "{'k': None}")
    assert boundary.rejections.total() == 0


def test_long_texts_are_cut_at_the_configured_bound_with_a_marker() -> None:
    boundary = EventBoundary(text_limit=1000)
    event = boundary.check({"type": "task-failed", "uuid": "t1", "exception": "E()", "traceback": "x" * 5000})
    assert event is not None
    assert event["traceback"] == "x" * 1000 + "…[cut: 4,000 more characters]"
    assert event["exception"] == "E()"


def test_custom_events_keep_their_own_fields_as_data_within_bounds() -> None:
    boundary = EventBoundary(text_limit=1000)
    progress = boundary.check({"type": "task-progress", "uuid": "t1", "hostname": "w@h", "current": 5,
                               "info": {"step": "resize", "note": "n" * 2000}})
    assert progress is not None and progress["current"] == 5
    assert progress["info"]["note"].endswith("…[cut: 1,000 more characters]")
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    assert boundary.check({"type": "task-progress", "uuid": "t1", "nested": deep}) is None
    assert boundary.check({"type": "task-progress", "uuid": "t1", "ratio": float("nan")}) is None
    # A field named like one of Celery's keeps that field's type, even in a custom event.
    assert boundary.check({"type": "task-progress", "uuid": "t1", "result": {"not": "a repr"}}) is None
    assert boundary.rejections.counts()["too_large"] == 1
    assert boundary.rejections.counts()["invalid_field"] == 2


def test_only_json_is_ever_decoded() -> None:
    boundary = EventBoundary()
    assert boundary.events_of(RawMessage(b"\x80\x04pickled", "application/x-python-serialize")) == []
    assert boundary.events_of(RawMessage(b"!!yaml", "application/x-yaml")) == []
    assert boundary.rejections.counts()["unsupported_content_type"] == 2


def test_the_latest_rejections_are_bounded() -> None:
    boundary = EventBoundary()
    for _ in range(100):
        boundary.check({"type": "task-started"})
    assert boundary.rejections.total() == 100
    assert len(boundary.rejections.latest()) == 20


def test_one_bad_event_never_drops_the_others_of_its_message(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        good = good_task_events("good-1")
        # NaN and a 70-bit integer: Celery's json writes them, orjson refuses them. Only their event goes.
        body = ("[" + ",".join([json.dumps(good[0]), '{"type": "task-started", "uuid": "bad", "timestamp": NaN}',
                                json.dumps(good[1]), '{"type": "worker-heartbeat", "hostname": "w@h", "clock": '
                                + str(2**70) + "}", json.dumps(good[2])]) + "]").encode()
        harness.feed_raw(body)
        info = harness.get("/api/task/info/good-1").json()
        assert info["state"] == "SUCCESS" and info["result"] == "3"
        assert harness.get("/api/task/info/bad").status_code == 404
        status = harness.get("/api/monitor/status").json()["events_rejected"]
        assert status["total"] == 2 and status["by_reason"]["invalid_field"] == 2
        assert {entry["event_type"] for entry in status["latest"]} == {"task-started", "worker-heartbeat"}
        assert harness.values("celery_monitor_events_rejected", reason="invalid_field") == {
            ("invalid_field",): 2.0}
        assert harness.values("celery_monitor_events_malformed") == {(): 2.0}
    finally:
        harness.close()
