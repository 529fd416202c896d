"""Hypothesis strategies for events nobody meant to send, and the good events mixed in with them.

Hostile events take every event type Celery has (and made-up ones), and give their fields wrong
types, nulls, huge and deeply nested values, odd unicode, NaN, infinities and integers wider than
64 bits; fields go missing and unknown ones appear. They are encoded with Python's json, as
kombu encodes events, so NaN and big integers reach the wire as Celery would put them there.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

TASK_TYPES = ("task-sent", "task-received", "task-started", "task-succeeded", "task-failed", "task-retried",
              "task-revoked", "task-rejected")
WORKER_TYPES = ("worker-online", "worker-heartbeat", "worker-offline")
FIELDS = ("uuid", "hostname", "timestamp", "utcoffset", "pid", "clock", "name", "args", "kwargs", "retries",
          "eta", "expires", "queue", "exchange", "routing_key", "root_id", "parent_id", "result", "runtime",
          "exception", "traceback", "terminated", "signum", "expired", "requeue", "freq", "active", "processed",
          "loadavg", "sw_ident", "sw_ver", "sw_sys")

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=5).map(lambda s: s * 20_000),
    st.sampled_from(["2", "yesterday", "", " ", "1e400", "-1", "NaN", "<script>alert(1)</script>", "\x00", "\ud800"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def _deep(depth: int) -> Any:
    nested: Any = "bottom"
    for _ in range(depth):
        nested = [nested]
    return nested


event_types = st.one_of(st.sampled_from(TASK_TYPES + WORKER_TYPES),
                        st.sampled_from(["task-progress", "task-", "worker-bogus", "heartbeat", ""]),
                        st.text(max_size=12))


@st.composite
def hostile_events(draw: st.DrawFn) -> Any:
    """One item of an event message: usually an object with a type, with some fields broken."""
    if draw(st.integers(0, 19)) == 0:  # now and then not an event at all
        return draw(values)
    event: dict[str, Any] = {"type": draw(event_types)}
    if draw(st.booleans()):
        event["uuid"] = str(uuid.uuid4())
    if draw(st.booleans()):
        event["hostname"] = draw(st.sampled_from(["w@h", "celery@other"]))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True)):
        event[field] = draw(values)
    for field in draw(st.lists(st.text(min_size=1, max_size=10), max_size=2)):
        event[field] = draw(values)
    if draw(st.integers(0, 29)) == 0:
        event["deep"] = _deep(draw(st.integers(17, 400)))
    return event


def good_task_events(task_id: str, name: str = "tests.add", worker: str = "w@h",
                     at: float = 1.7e9) -> list[dict[str, Any]]:
    return [
        {"type": "task-received", "uuid": task_id, "name": name, "args": "(1, 2)", "kwargs": "{}",
         "hostname": worker, "timestamp": at, "clock": 1},
        {"type": "task-started", "uuid": task_id, "hostname": worker, "timestamp": at + 1, "clock": 2},
        {"type": "task-succeeded", "uuid": task_id, "result": "3", "runtime": 0.5, "hostname": worker,
         "timestamp": at + 2, "clock": 3},
    ]


def encode(items: list[Any]) -> bytes:
    """A message body as kombu writes it (Python's json: NaN and wide integers pass)."""
    return json.dumps(items).encode()


# Serializers a worker may be configured with, none of which the monitor ever decodes.
FOREIGN_CONTENT_TYPES = ("application/x-python-serialize", "application/x-yaml", "application/x-msgpack",
                         "text/plain")


@dataclass(frozen=True)
class EventMessage:
    body: bytes
    content_type: str = "application/json"


@st.composite
def unreadable_messages(draw: st.DrawFn) -> EventMessage:
    """A whole message nobody can read: not JSON, cut short, or in a serializer the monitor never decodes."""
    events = encode([draw(hostile_events())])
    return draw(st.sampled_from([
        EventMessage(draw(st.binary(max_size=64))),
        EventMessage(events[:draw(st.integers(0, max(len(events) - 1, 0)))]),
        EventMessage(events, draw(st.sampled_from(FOREIGN_CONTENT_TYPES))),
    ]))


@dataclass(frozen=True)
class MixedBatch:
    """Event messages as a broker carries them: hostile events with one good task's events in each,
    and now and then a message nobody can read between them."""

    messages: list[EventMessage]
    good_task_ids: list[str]


@st.composite
def mixed_batches(draw: st.DrawFn, max_messages: int = 5) -> MixedBatch:
    """Each readable message gets a good task (received, started, succeeded) spread at random among its
    hostile events; the last message is always readable. Task ids are fresh on every draw, so a batch
    replayed while shrinking is applied anew."""
    messages, good_ids = [], []
    for items in draw(st.lists(st.lists(hostile_events(), min_size=1, max_size=6), min_size=1, max_size=max_messages)):
        if draw(st.integers(0, 3)) == 0:
            messages.append(draw(unreadable_messages()))
        task_id = str(uuid.uuid4())
        mixed = list(items)
        for event in good_task_events(task_id):
            mixed.insert(draw(st.integers(0, len(mixed))), event)
        messages.append(EventMessage(encode(mixed)))
        good_ids.append(task_id)
    return MixedBatch(messages, good_ids)
