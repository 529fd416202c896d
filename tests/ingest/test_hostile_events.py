"""Events nobody meant to send cost only themselves: the good events beside them are applied, every
endpoint and page keeps answering, and all of it still holds after a restart on the history they left."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.harness import WORKER, Harness, assert_every_endpoint_answers, assert_good_tasks_applied
from support.hostile_events import encode, good_task_events, hostile_events
from support.postgres import STORES, history_location

messages = st.lists(st.lists(hostile_events(), min_size=1, max_size=6), min_size=1, max_size=5)


@pytest.mark.parametrize("store", STORES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages=messages, data=st.data())
def test_hostile_events_cost_only_themselves_before_and_after_a_restart(store: str, messages: list[list[Any]],
                                                                        data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as scratch, history_location(store, Path(scratch)) as db:
        tmp = Path(scratch)
        harness = Harness(tmp, db=db)
        good_ids: list[str] = []
        try:
            for items in messages:
                # Good events sit in the same message as the hostile ones, before and after them.
                task_id = str(uuid.uuid4())
                good_ids.append(task_id)
                good = good_task_events(task_id, worker=WORKER)
                mixed = list(items)
                for event in good:
                    mixed.insert(data.draw(st.integers(0, len(mixed))), event)
                harness.feed_raw(encode(mixed))
            harness.flush()
            assert_good_tasks_applied(harness, good_ids)
            assert_every_endpoint_answers(harness, good_ids)
        finally:
            harness.close()

        restarted = Harness(tmp, db=db)
        try:
            restarted.monitor.restore()
            assert_good_tasks_applied(restarted, good_ids)
            assert_every_endpoint_answers(restarted, good_ids)
            after = str(uuid.uuid4())
            restarted.feed_raw(encode(good_task_events(after, worker=WORKER)))
            assert_good_tasks_applied(restarted, [after])
        finally:
            restarted.close()
