"""Hidden stays hidden on every path task data leaves the monitor by, for read-only users and tokens.

Each path is read as a read-only user (Basic) and with a read-only API token; the secrets of the
tasks' args, kwargs, results, exceptions and tracebacks never appear in the answer's bytes, while
what the rules keep (a note, the card's last digits, the task ids) does, so a path that answered
nothing would fail too. The admin sees the same hidden values: redaction is of the data, not per
viewer.
"""

from __future__ import annotations

import pytest
from support.hidden_stack import ARG_SECRET, CARD, IDENTITIES, KW_SECRET, SECRETS, Stack

pytestmark = pytest.mark.timeout(120)
SHOWN_CARD = "****-1111"


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def read(stack: Stack, who: str, path: str) -> str:
    response = stack.get(who, path)
    assert response.status_code == 200, f"{path} as {who}: {response.status_code} {response.text}"
    return response.text


@pytest.mark.parametrize("who", IDENTITIES)
def test_results_from_the_backend(stack: Stack, who: str) -> None:
    succeeded = stack.get(who, f"/api/task/result/{stack.echo_id}").json()
    assert succeeded["state"] == "SUCCESS"
    assert succeeded["result"] == {"args": ["user", "[redacted]"],
                                   "kwargs": {"password": "[redacted]", "card": SHOWN_CARD, "note": "kept"}}
    failed = stack.get(who, f"/api/task/result/{stack.fail_id}").json()
    assert failed["state"] == "FAILURE"
    assert failed["result"] == f"ValueError('declined {SHOWN_CARD}')"
    assert f"ValueError: declined {SHOWN_CARD}" in failed["traceback"]
    for task_id in (stack.echo_id, stack.fail_id):
        assert not leaked(read(stack, who, f"/api/task/result/{task_id}?timeout=1"))


@pytest.mark.parametrize("who", IDENTITIES)
def test_inspect_replies_on_worker_pages_and_api(stack: Stack, who: str) -> None:
    name = stack.worker.hostname
    for path in ("/api/workers", f"/api/workers?workername={name}", f"/api/workers?workername={name}&refresh=true",
                 f"/ui/worker/{name}.json", f"/ui/worker/{name}.json?refresh=1"):
        text = read(stack, who, path)
        assert all(task_id in text for task_id in (*stack.hold_ids, stack.scheduled_id)), path
        assert "kept" in text and SHOWN_CARD in text, path
        assert not leaked(text), path
    details = stack.get(who, f"/ui/worker/{name}.json").json()["inspect"]
    running = details["active"][0]
    assert running["args"] == [300, "[redacted]"]
    assert running["kwargs"] == {"password": "[redacted]", "card": SHOWN_CARD, "note": "kept"}
    assert details["scheduled"][0]["request"]["args"] == ["user", "[redacted]"]


@pytest.mark.parametrize("who", IDENTITIES)
def test_websocket_feeds(stack: Stack, who: str) -> None:
    for (identity, path), feed in stack.feeds.items():
        if identity != who:
            continue
        assert feed.messages, path
        assert "[redacted]" in feed.text or path.endswith("task-failed/"), path
        assert not leaked(feed.text), path
    failures = stack.feeds[(who, "/api/task/events/task-failed/")].text
    assert SHOWN_CARD in failures


@pytest.mark.parametrize("who", IDENTITIES)
def test_failure_groups(stack: Stack, who: str) -> None:
    """The group's sample traceback and its tasks: format_task's masking of the card holds there too."""
    group = "name=tests.fail&exception=ValueError"
    for path in ("/api/failures", f"/api/failures/tasks?{group}", "/ui/failures.json",
                 f"/ui/failures/tasks.json?{group}"):
        text = read(stack, who, path)
        assert stack.fail_id in text and SHOWN_CARD in text, path
        assert not leaked(text), path


@pytest.mark.parametrize("who", IDENTITIES)
def test_history_reads(stack: Stack, who: str) -> None:
    for path in ("/api/tasks", f"/api/task/info/{stack.echo_id}", f"/api/task/info/{stack.fail_id}",
                 "/ui/tasks.json", f"/ui/task/{stack.echo_id}.json", f"/ui/task/{stack.fail_id}.json",
                 f"/api/workflow/{stack.echo_id}", f"/api/workflow/{stack.fail_id}"):
        text = read(stack, who, path)
        assert stack.echo_id in text or stack.fail_id in text, path
        assert not leaked(text), path


@pytest.mark.parametrize("who", IDENTITIES)
def test_search_is_no_oracle_for_hidden_values(stack: Stack, who: str) -> None:
    def found(search: str) -> set[str]:
        return set(stack.get(who, "/api/tasks", params={"search": search}).json())

    assert stack.echo_id in found("kwargs:note=kept"), "the search itself works"
    assert stack.echo_id in found(f"kwargs:card={SHOWN_CARD}")
    for search in (f"args:{ARG_SECRET}", ARG_SECRET, f"kwargs:password={KW_SECRET}", KW_SECRET,
                   f"result:{KW_SECRET}", f"result:{ARG_SECRET}", CARD, f"kwargs:card={CARD}"):
        assert found(search) == set(), search
        assert stack.get(who, "/ui/tasks.json", params={"search": search}).json()["total"] == 0, search


@pytest.mark.parametrize("who", IDENTITIES)
def test_audit_trail_of_apply_and_send_task(stack: Stack, who: str) -> None:
    text = read(stack, who, "/api/audit?limit=100")
    entries = stack.get(who, "/api/audit?limit=100").json()["entries"]
    actions = {entry["action"] for entry in entries}
    assert {"task.apply", "task.send_task"} <= actions
    assert stack.echo_id in text and "kept" in text
    assert not leaked(text)


def test_the_admin_sees_the_same_hidden_values(stack: Stack) -> None:
    assert stack.apply_answer["result"]["kwargs"] == {"password": "[redacted]", "card": SHOWN_CARD, "note": "kept"}
    for path in (f"/api/task/result/{stack.echo_id}", f"/api/task/result/{stack.fail_id}", "/api/audit",
                 f"/ui/worker/{stack.worker.hostname}.json", f"/api/task/info/{stack.echo_id}"):
        text = read(stack, "admin", path)
        assert "[redacted]" in text or SHOWN_CARD in text, path
        assert not leaked(text), path


def test_re_running_redacted_arguments_is_refused(stack: Stack) -> None:
    refused = stack.post("admin", f"/api/task/rerun/{stack.echo_id}?force=true")
    assert refused.status_code == 409
    assert "redacted" in refused.json()["error"]


def test_nothing_secret_in_the_history_file_or_the_log(stack: Stack) -> None:
    stored = b"".join(path.read_bytes() for path in stack.tmp.glob("monitor.db*"))
    assert stack.echo_id.encode() in stored
    assert not [s for s in SECRETS if s.encode() in stored]
    log = (stack.tmp / "monitor.log").read_text()
    assert not leaked(log)
