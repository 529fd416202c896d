"""What a standby keeps of a Redis stream: the last seconds, within a size, handed over in order,
and what comes after forwarded to the hand-off."""

from __future__ import annotations

import time

from celery_monitor.receiver.handoff import Handoff, RawMessage
from celery_monitor.receiver.standby_buffer import StandbyBuffer


def batch(*bodies: bytes) -> list[RawMessage]:
    return [RawMessage(body, "application/json") for body in bodies]


def test_the_last_seconds_within_a_size_are_handed_over_in_order_and_the_rest_follows() -> None:
    buffer = StandbyBuffer(keep_seconds=30.0, keep_bytes=10)
    now = time.time()
    buffer.put(now - 60, batch(b"old"), 3)  # aged out by the next put
    buffer.put(now - 1, batch(b"a", b"b"), 2)
    buffer.put(now - 0.5, batch(b"c"), 1)
    assert buffer.forgotten == 1 and buffer.kept_bytes == 3
    handoff = Handoff()
    assert buffer.hand_over(handoff) == 3
    buffer.put(now, batch(b"d"), 1)
    taken = handoff.take(0.1)
    assert [m.body for _, messages in taken for m in messages] == [b"a", b"b", b"c", b"d"]
    assert buffer.kept_bytes == 0


def test_past_its_size_the_oldest_go_first() -> None:
    buffer = StandbyBuffer(keep_seconds=30.0, keep_bytes=4)
    now = time.time()
    for body in (b"1", b"2", b"3", b"4", b"5", b"6"):
        buffer.put(now, batch(body), 1)
    handoff = Handoff()
    assert buffer.hand_over(handoff) == 4 and buffer.forgotten == 2
    assert [m.body for _, messages in handoff.take(0.1) for m in messages] == [b"3", b"4", b"5", b"6"]
