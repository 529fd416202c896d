"""The pure parts of the control plane: request bodies, signals, worker replies, recorded arguments."""

from __future__ import annotations

from datetime import datetime

import pytest

from celery_monitor.control.audit import shorten
from celery_monitor.control.broadcast import reason_of
from celery_monitor.control.calls import parse_call
from celery_monitor.control.errors import ControlError
from celery_monitor.control.task_control import literal, signal_name


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


def test_recorded_arguments_are_parsed_as_literals_only() -> None:
    assert literal("(1, 'a', {'b': [2.5, None]})", "args", "t") == (1, "a", {"b": [2.5, None]})
    assert literal(None, "args", "t") is None
    for text in ("[datetime.datetime(2024, 1, 1)]", "[1, 2, ...", "__import__('os')"):
        with pytest.raises(ControlError) as error:
            literal(text, "args", "t")
        assert error.value.status == 409


def test_audit_entries_stay_small() -> None:
    shortened = shorten({"ids": list(range(50)), "text": "x" * 5000, "obj": object()})
    assert len(shortened["ids"]) == 21 and shortened["ids"][-1] == "... 30 more"
    assert len(shortened["text"]) == 2003
    assert shortened["obj"].startswith("<object")
