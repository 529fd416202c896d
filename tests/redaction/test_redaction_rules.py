"""The redaction rules on task data that is not an ordinary event field: custom event data, inspect
replies, result-backend values and task calls (the end-to-end paths are in test_hidden_on_every_path)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from celery_monitor.applier.task_events import apply_task_event
from celery_monitor.auth import redact_replies
from celery_monitor.auth.redact import MASK, Redactor, contains_mask
from celery_monitor.state.models import TaskRecord

M = repr(MASK)


def card_mask(task: Any) -> Any:
    for field in ("args", "kwargs", "result", "exception", "traceback"):
        value = getattr(task, field)
        if value:
            setattr(task, field, value.replace("4111", "****"))
    return task


def broken(task: Any) -> Any:
    raise RuntimeError("a bug in the user's hook")


def test_custom_event_data_keeps_only_the_redacted_fields() -> None:
    redactor = Redactor(["result.token"], card_mask)
    task = TaskRecord(uuid="u1")
    event = {"type": "task-progress", "uuid": "u1", "result": "{'token': 'tok-secret', 'step': 1}",
             "args": "('4111',)", "percent": 10}
    apply_task_event(task, event)
    redactor.apply(task, event)
    shown = orjson.dumps(task.as_dict()).decode() + orjson.dumps(event).decode()
    assert "tok-secret" not in shown and "4111" not in shown
    assert task.custom["PROGRESS"] == {"result": f"{{'token': {M}, 'step': 1}}", "args": "('****',)", "percent": 10}


def test_decoded_values_keep_their_shape() -> None:
    redactor = Redactor(["args.1", "kwargs.db.password", "result.*.token"])
    fields = {"args": ["user", "pw"], "kwargs": {"db": {"password": "x", "host": "h"}},
              "result": [{"token": "a"}, {"token": "b", "n": 1}]}
    original = orjson.dumps(fields)
    assert redactor.redact(fields) == {"args": ["user", MASK], "kwargs": {"db": {"password": MASK, "host": "h"}},
                                       "result": [{"token": MASK}, {"token": MASK, "n": 1}]}
    assert orjson.dumps(fields) == original, "the caller's values are not changed"


def test_inspect_requests_as_values_reprs_and_unknown_shapes() -> None:
    redactor = Redactor(["args.0", "kwargs.password"], card_mask)
    request = {"id": "t1", "name": "pay", "args": ["pw", "4111"], "kwargs": {"password": "pw", "n": 1}}
    safe = {"id": "t2", "name": "pay", "args": "('pw', 2)", "kwargs": "{'password': 'pw'}"}
    details = {"w1": {"active": [request, "a string where a request should be"], "reserved": [safe],
                      "scheduled": [{"eta": None, "priority": 6, "request": request}, 42],
                      "revoked": ["t9"], "registered": ["pay"]},
               "w2": {"active": {"not": "a list"}}}
    shown = redact_replies.inspect_details(redactor, details)
    assert shown["w1"]["active"] == [{**request, "args": [MASK, "****"], "kwargs": {"password": MASK, "n": 1}}, MASK]
    assert shown["w1"]["reserved"] == [{**safe, "args": f"({M}, 2)", "kwargs": f"{{'password': {M}}}"}]
    assert shown["w1"]["scheduled"][0]["request"]["args"] == [MASK, "****"]
    assert shown["w1"]["scheduled"][1] == MASK
    assert shown["w1"]["revoked"] == ["t9"] and shown["w1"]["registered"] == ["pay"]
    assert shown["w2"]["active"] == MASK
    assert "pw" not in orjson.dumps(shown).decode().replace("password", "")
    assert redact_replies.inspect_details(None, details) is details


def test_backend_results_follow_the_event_fields_rules() -> None:
    redactor = Redactor(["result.token", "traceback"], card_mask)
    value = {"token": "tok", "amount": Decimal("1.5"), "card": "4111"}
    shown = redact_replies.backend_result
    paths_only = Redactor(["result.token"])
    assert shown(paths_only, "SUCCESS", value, None, None) == ({**value, "token": MASK}, None)
    result, _ = shown(redactor, "SUCCESS", value, None, {"uuid": "u", "name": "pay"})
    assert result == "{'token': '[redacted]', 'amount': Decimal('1.5'), 'card': '****'}", \
        "what format_task changed comes back as a value when it is a literal, else as its text"
    assert shown(redactor, "FAILURE", ValueError("card 4111"), "Traceback...", None) == ("ValueError('card ****')", M)
    failing = Redactor(format_task=broken)
    assert shown(failing, "FAILURE", ValueError("x"), "tb", None) == (M, M), "a failing format_task hides everything"
    assert shown(failing, "SUCCESS", [1], None, None) == (MASK, None)


def test_format_task_sees_the_task_it_is_asked_about() -> None:
    def by_name(task: Any) -> Any:
        if task.name == "payments.charge":
            task.result = "'hidden for payments'"
        return task

    redactor = Redactor(format_task=by_name)
    payment = {"uuid": "u", "name": "payments.charge"}
    assert redactor.redact({"result": 7}, (), payment) == {"result": "hidden for payments"}
    assert redactor.redact({"result": 7}, (), {"uuid": "u", "name": "other"}) == {"result": 7}


@pytest.mark.parametrize("params, expected", [
    ({"args": ["a", "pw"], "kwargs": {"password": "pw"}, "queue": "q"},
     {"args": ["a", MASK], "kwargs": {"password": MASK}, "queue": "q"}),
    ({"args": '["a", "pw"]', "kwargs": '{"password": "pw"}'}, {"args": ["a", MASK], "kwargs": {"password": MASK}}),
    ({"args": "[not json", "force": "true"}, {"args": MASK, "force": "true"}),
    ({"force": "true"}, {"force": "true"}),
])
def test_task_calls_in_the_audit_trail(params: dict[str, Any], expected: dict[str, Any]) -> None:
    assert redact_replies.task_call(Redactor(["args.1", "kwargs.password"]), params, "pay") == expected


def test_a_format_task_result_that_is_no_json_literal_stays_text() -> None:
    redactor = Redactor(format_task=lambda task: setattr(task, "result", "{1, 2}") or task)
    assert redactor.redact({"result": [1]}) == {"result": "{1, 2}"}


@pytest.mark.parametrize("value, masked", [
    (["a", MASK], True), ({"k": {"deep": [MASK]}}, True), (("x",), False), ("[redacted] text", False), (None, False),
])
def test_contains_mask(value: Any, masked: bool) -> None:
    assert contains_mask(value) is masked
