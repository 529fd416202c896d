"""The pure parts of the control plane: request bodies, signals, worker replies, recorded arguments,
which queued tasks a filter selects."""

from __future__ import annotations

from datetime import datetime

import pytest
from celery import Celery

from celery_monitor.broker.envelopes import QueuedTask
from celery_monitor.control import queued
from celery_monitor.control.audit import shorten
from celery_monitor.control.broadcast import reason_of
from celery_monitor.control.calls import parse_call
from celery_monitor.control.errors import ControlError
from celery_monitor.control.rerun import RerunSources, looks_cut
from celery_monitor.control.task_control import signal_name
from celery_monitor.store.query import TaskQuery
from celery_monitor.store.search import parse_search


def test_json_body_keeps_types_and_flat_options() -> None:
    call = parse_call({"args": [1, "a"], "kwargs": {"k": [1]}, "countdown": 5, "queue": "q", "priority": 3})
    assert (call.args, call.kwargs) == ([1, "a"], {"k": [1]})
    assert call.options == {"countdown": 5.0, "queue": "q", "priority": 3}


def test_nested_options_and_dates() -> None:
    call = parse_call({"options": {"eta": "2030-01-02 03:04:05.000006", "expires": "2030-01-03T00:00:00"}})
    assert call.options["eta"] == datetime(2030, 1, 2, 3, 4, 5, 6)
    assert call.options["expires"] == datetime(2030, 1, 3)
    assert parse_call({"expires": 60}).options == {"expires": 60.0}


def test_form_body_decodes_json_fields_and_numbers() -> None:
    call = parse_call({"args": "[1, 2]", "kwargs": '{"x": 1}', "countdown": "1.5", "headers": '{"h": 1}'}, form=True)
    assert (call.args, call.kwargs) == ([1, 2], {"x": 1})
    assert call.options == {"countdown": 1.5, "headers": {"h": 1}}


@pytest.mark.parametrize("body", [
    {"args": {"a": 1}}, {"kwargs": [1]}, {"countdown": -1}, {"countdown": True}, {"priority": 300},
    {"priority": 1.5}, {"queue": ""}, {"eta": 5}, {"bogus": 1}, {"options": [1]}, {"headers": "x"},
])
def test_bad_bodies_are_400(body: dict[str, object]) -> None:
    with pytest.raises(ControlError) as error:
        parse_call(body)
    assert error.value.status == 400


@pytest.mark.parametrize(("raw", "name"), [("SIGTERM", "SIGTERM"), ("term", "SIGTERM"), ("9", "SIGKILL"),
                                           ("sigusr1", "SIGUSR1")])
def test_signal_names(raw: str, name: str) -> None:
    assert signal_name(raw) == name


@pytest.mark.parametrize("raw", ["SIGFOO", "", "999", "-1"])
def test_bad_signals_are_400(raw: str) -> None:
    with pytest.raises(ControlError) as error:
        signal_name(raw)
    assert error.value.status == 400


def test_worker_reply_reasons() -> None:
    assert reason_of({"ok": "fine"}) is None
    assert reason_of({"error": "ValueError('Pool restarts not enabled')"}) == "Pool restarts not enabled"
    assert reason_of({"error": "unknown task"}) == "unknown task"
    assert reason_of("garbage") == "unexpected reply 'garbage'"


def test_cut_arguments_are_recognised() -> None:
    from celery.utils.saferepr import saferepr

    assert looks_cut(saferepr(("x" * 2000, 1), 1024)), "Celery's own cut: '...' inside the quotes"
    assert looks_cut(saferepr({"k": "y" * 3000}, 1024))
    assert looks_cut("('abc…[cut: 12 more characters]',)"), "the event boundary's marker"
    assert not looks_cut("('a...b',)") and not looks_cut(None)


@pytest.mark.parametrize(("task", "reason"), [
    ({"uuid": "t", "state": "FAILURE"}, "its name is not known yet"),
    ({"uuid": "t", "name": "n", "state": "SUCCESS"}, "pass force=true"),
    ({"uuid": "t", "name": "n", "state": "FAILURE", "args": "['[redacted]', 2]"}, "redacted"),
    ({"uuid": "t", "name": "n", "state": "FAILURE", "kwargs": "'[redacted]'"}, "redacted"),
])
def test_rerun_refusals_before_any_source(task: dict[str, str], reason: str) -> None:
    with pytest.raises(ControlError) as error:
        RerunSources(None, None, list).check_allowed(task, force=False)  # type: ignore[arg-type]
    assert error.value.status == 409
    assert reason in error.value.reason


def queued_task() -> QueuedTask:
    return QueuedTask(uuid="3f1c", name="billing.charge", args="('acct-7', 100)", kwargs="{'retry': True}", eta=None,
                      expires=None, retries=0, priority=None, position=0, size=10)


@pytest.mark.parametrize(("query", "selected"), [
    (TaskQuery(names=["billing.charge"]), True),
    (TaskQuery(names=["BILLING.CHARGE"]), True),
    (TaskQuery(names=["other"]), False),
    (TaskQuery(states=["PENDING", "RECEIVED"]), True),
    (TaskQuery(states=["FAILURE"]), False),
    (TaskQuery(workers=["w@h"]), False),
    (TaskQuery(received_start=0.0), False),
    (TaskQuery(search=parse_search("acct-7")), True),
    (TaskQuery(search=parse_search("args:acct-8")), False),
    (TaskQuery(search=parse_search("kwargs:retry=True")), True),
    (TaskQuery(search=parse_search("result:x")), False),
    (TaskQuery(search=parse_search("state:pending name:billing")), True),
])
def test_which_queued_tasks_a_filter_selects(query: TaskQuery, selected: bool) -> None:
    assert queued.matches(queued_task(), query) is selected


def test_audit_entries_stay_small() -> None:
    shortened = shorten({"ids": list(range(50)), "text": "x" * 5000, "obj": object()})
    assert len(shortened["ids"]) == 21 and shortened["ids"][-1] == "... 30 more"
    assert len(shortened["text"]) == 2003
    assert shortened["obj"].startswith("<object")


class MessagesAsked:
    """A broker's queues, as far as a re-run's search reaches them: which it looked in."""

    def __init__(self) -> None:
        self.looked_in: list[str] = []

    def find(self, queue: str, task_id: str) -> None:
        self.looked_in.append(queue)


@pytest.mark.parametrize(("cluster", "looked_in"), [("gamma", ["gamma-queue"]), (None, ["first-queue"])])
def test_a_rerun_without_a_known_queue_looks_in_its_own_clusters_queues(
        cluster: str | None, looked_in: list[str]) -> None:
    measured = {"gamma": ["gamma-queue"], None: ["first-queue"]}
    messages = MessagesAsked()
    sources = RerunSources(Celery(set_as_current=False), messages,  # type: ignore[arg-type]
                           lambda cluster=None: measured[cluster],
                           cluster_messages={"gamma": messages})  # type: ignore[dict-item]
    task = {"uuid": "t", "name": "n", "state": "PENDING", "cluster": cluster}
    with pytest.raises(ControlError) as error:
        sources.exact_call(task)
    assert messages.looked_in == looked_in
    assert f"not waiting in {looked_in[0]}" in error.value.reason
