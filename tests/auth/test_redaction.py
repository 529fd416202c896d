"""--redact paths and format_task, on the text Celery sends (reprs of args, kwargs, results)."""

from __future__ import annotations

from typing import Any

import pytest

from celery_monitor.auth.redact import MASK, Redactor, parse_paths, redact_text
from celery_monitor.state.models import TaskRecord

M = repr(MASK)


@pytest.mark.parametrize("text, paths, expected", [
    ("{'password': 'hunter2', 'user': 'bob'}", [["password"]], f"{{'password': {M}, 'user': 'bob'}}"),
    ("(1, 'card-number', 3)", [["1"]], f"(1, {M}, 3)"),
    ("(1, 2, 3)", [["-1"]], f"(1, 2, {M})"),
    ("(1, 2)", [["5"]], "(1, 2)"),
    ("{'db': {'password': 'x', 'host': 'h'}}", [["db", "password"]], f"{{'db': {{'password': {M}, 'host': 'h'}}}}"),
    ("[{'token': 'a'}, {'token': 'b'}]", [["*", "token"]], f"[{{'token': {M}}}, {{'token': {M}}}]"),
    ("{'password': 'x'}", [[]], M),
    ("{'password': 'x', 'note': '...", [["password"]], M),   # cut short by Celery: hide it all
    ("<object at 0x7f>", [["0"]], M),
])
def test_paths(text: str, paths: list[list[str]], expected: str) -> None:
    assert redact_text(text, paths) == expected


@pytest.mark.parametrize("bad", ["password", "kwargs.", "args..1", "traceback.frame", "name"])
def test_bad_paths(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_paths([bad])


def event(**fields: Any) -> dict[str, Any]:
    return {"type": "task-received", "uuid": "u1", **fields}


def test_record_and_event_are_both_redacted() -> None:
    redactor = Redactor(["kwargs.password", "args.0", "result"])
    task = TaskRecord(uuid="u1", args="('secret', 2)", kwargs="{'password': 'p', 'x': 1}")
    ev = event(args="('secret', 2)", kwargs="{'password': 'p', 'x': 1}")
    redactor.apply(task, ev)
    assert task.args == ev["args"] == f"({M}, 2)"
    assert task.kwargs == ev["kwargs"] == f"{{'password': {M}, 'x': 1}}"
    done = event(type="task-succeeded", result="'the-answer'")
    task.result = "'the-answer'"
    redactor.apply(task, done)
    assert task.result == done["result"] == M


def test_format_task_changes_fields_and_fails_closed() -> None:
    def shorten(task: Any) -> Any:
        task.args = task.args[:5]
        return task

    task = TaskRecord(uuid="u1", args="('abcdefgh',)")
    ev = event(args="('abcdefgh',)")
    Redactor(format_task=shorten).apply(task, ev)
    assert task.args == ev["args"] == "('abc"

    def broken(task: Any) -> Any:
        raise RuntimeError("oops")

    task = TaskRecord(uuid="u1", args="('secret',)", kwargs="{}")
    ev = event(args="('secret',)", kwargs="{}")
    Redactor(format_task=broken).apply(task, ev)
    assert "secret" not in str(task.args) and "secret" not in ev["args"]
