"""Waiting for results never takes every control thread: past a few waits, a caller gets 503 at once."""

from __future__ import annotations

import contextlib

import pytest
from celery import Celery

from celery_monitor.control.errors import ControlError
from celery_monitor.control.plane import THREADS
from celery_monitor.control.task_control import RESULT_WAITERS, TaskControl


def test_waits_for_results_leave_control_threads_free() -> None:
    assert RESULT_WAITERS < THREADS
    control = TaskControl(Celery(set_as_current=False), broadcaster=None,  # type: ignore[arg-type]
                          knows_task=lambda name, cluster: True, find_task=lambda task_id: None, online_count=lambda: 1)
    with contextlib.ExitStack() as waiting:
        for _ in range(RESULT_WAITERS):
            waiting.enter_context(control.waiting_slot())
        with pytest.raises(ControlError) as refused, control.waiting_slot():
            pass
        assert refused.value.status == 503 and "wait for task results" in refused.value.reason
    with control.waiting_slot():  # the slots came back
        pass
