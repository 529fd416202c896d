"""The same requests to Flower 2.2 and to the monitor, on one real cluster: same status codes, and
Flower's JSON keys and value types in the monitor's answers (extra keys are fine).

The cases are every endpoint, parameter and error case of Flower's API reference, and the curl
examples of Flower's README as curl sends them. Where the monitor answers otherwise on purpose, the
difference is listed in DELIBERATE with its reason, as in docs/migrating.md, and checked to be
exactly that difference.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from support.processes import wait_for

from compat.conftest import AUTH, SideBySide


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] | None = None
    shape: str = "object"  # object | keyed (an object of objects, e.g. {uuid: task}) | none


# Status codes that differ on purpose: {case: (Flower's, ours, why)} (docs/migrating.md says the same).
DELIBERATE: dict[str, tuple[int, int, str]] = {
    "tasks: search short term": (400, 200, "a term of one or two characters is searched, not refused"),
}

# The task the read cases look at, and a worker that does not exist.
UNKNOWN_WORKER = "nobody@nowhere"


def cases(worker: str, task_id: str) -> list[Case]:
    unknown_task = str(uuid.UUID(int=1))
    return [
        Case("workers", "GET", "/api/workers", shape="keyed"),
        Case("workers: refresh", "GET", "/api/workers", {"refresh": "true"}, shape="keyed"),
        Case("workers: status", "GET", "/api/workers", {"status": "true"}, shape="none"),
        Case("workers: workername", "GET", "/api/workers", {"workername": worker}, shape="keyed"),
        Case("workers: unknown workername", "GET", "/api/workers", {"workername": UNKNOWN_WORKER}),
        Case("shutdown: unknown worker", "POST", f"/api/worker/shutdown/{UNKNOWN_WORKER}"),
        Case("pool restart: unknown worker", "POST", f"/api/worker/pool/restart/{UNKNOWN_WORKER}"),
        Case("pool grow", "POST", f"/api/worker/pool/grow/{worker}", {"n": "1"}),
        Case("pool shrink", "POST", f"/api/worker/pool/shrink/{worker}", {"n": "1"}),
        Case("pool grow: unknown worker", "POST", f"/api/worker/pool/grow/{UNKNOWN_WORKER}"),
        Case("pool shrink: unknown worker", "POST", f"/api/worker/pool/shrink/{UNKNOWN_WORKER}"),
        Case("autoscale: unknown worker", "POST", f"/api/worker/pool/autoscale/{UNKNOWN_WORKER}",
             {"min": "1", "max": "2"}),
        Case("add consumer", "POST", f"/api/worker/queue/add-consumer/{worker}", {"queue": "compat-queue"}),
        Case("cancel consumer", "POST", f"/api/worker/queue/cancel-consumer/{worker}", {"queue": "compat-queue"}),
        Case("add consumer: unknown worker", "POST", f"/api/worker/queue/add-consumer/{UNKNOWN_WORKER}",
             {"queue": "q"}),
        Case("tasks", "GET", "/api/tasks", {"limit": "5"}, shape="keyed"),
        Case("tasks: no limit", "GET", "/api/tasks", shape="keyed"),
        Case("tasks: offset", "GET", "/api/tasks", {"limit": "2", "offset": "1"}, shape="keyed"),
        Case("tasks: sort_by name", "GET", "/api/tasks", {"limit": "5", "sort_by": "name"}, shape="keyed"),
        Case("tasks: sort_by -received", "GET", "/api/tasks", {"limit": "5", "sort_by": "-received"}, shape="keyed"),
        Case("tasks: sort_by started", "GET", "/api/tasks", {"limit": "5", "sort_by": "started"}, shape="keyed"),
        Case("tasks: sort_by state", "GET", "/api/tasks", {"limit": "5", "sort_by": "state"}, shape="keyed"),
        Case("tasks: sort_by unknown", "GET", "/api/tasks", {"sort_by": "bogus"}),
        Case("tasks: workername", "GET", "/api/tasks", {"workername": worker, "limit": "5"}, shape="keyed"),
        Case("tasks: taskname", "GET", "/api/tasks", {"taskname": "tests.add", "limit": "5"}, shape="keyed"),
        Case("tasks: state", "GET", "/api/tasks", {"state": "SUCCESS", "limit": "5"}, shape="keyed"),
        Case("tasks: received range", "GET", "/api/tasks",
             {"received_start": "2020-01-01 00:00", "received_end": "2100-01-01 00:00"}, shape="keyed"),
        Case("tasks: received_start not a date", "GET", "/api/tasks", {"received_start": "yesterday"}),
        Case("tasks: limit not a number", "GET", "/api/tasks", {"limit": "abc"}),
        Case("tasks: search bare term", "GET", "/api/tasks", {"search": task_id[:8]}, shape="keyed"),
        Case("tasks: search OR", "GET", "/api/tasks", {"search": "state:SUCCESS OR state:FAILURE"}, shape="keyed"),
        Case("tasks: search group", "GET", "/api/tasks", {"search": "(name:tests.add result:three) OR args:999"},
             shape="keyed"),
        Case("tasks: search short term", "GET", "/api/tasks", {"search": "ad"}, shape="keyed"),
        Case("tasks: search kwargs pair", "GET", "/api/tasks", {"search": "kwargs:y=2"}, shape="keyed"),
        Case("tasks: search syntax error", "GET", "/api/tasks", {"search": "(unclosed"}),
        Case("tasks: search NOT", "GET", "/api/tasks", {"search": "NOT tests"}),
        Case("task types", "GET", "/api/task/types"),
        Case("queues length", "GET", "/api/queues/length"),
        Case("task info", "GET", f"/api/task/info/{task_id}"),
        Case("task info: unknown", "GET", f"/api/task/info/{unknown_task}"),
        Case("apply", "POST", "/api/task/apply/tests.add", json={"args": [1, 2]}),
        Case("apply: unknown task", "POST", "/api/task/apply/tests.nothing", json={"args": [1, 2]}),
        Case("apply: args not a list", "POST", "/api/task/apply/tests.add", json={"args": 5}),
        Case("apply: body not JSON", "POST", "/api/task/apply/tests.add", json=None, form=None),
        Case("async-apply", "POST", "/api/task/async-apply/tests.add", json={"args": [1, 2]}),
        Case("async-apply: kwargs", "POST", "/api/task/async-apply/tests.add", json={"kwargs": {"x": 1, "y": 2}}),
        Case("async-apply: options", "POST", "/api/task/async-apply/tests.add",
             json={"args": [1, 2], "countdown": 0, "expires": 60, "queue": "celery", "ignore_result": False}),
        Case("async-apply: unknown task", "POST", "/api/task/async-apply/tests.nothing", json={}),
        Case("async-apply: bad eta", "POST", "/api/task/async-apply/tests.add", json={"args": [1, 2], "eta": "soon"}),
        Case("send-task", "POST", "/api/task/send-task/tests.add", json={"args": [1, 2]}),
        Case("result", "GET", f"/api/task/result/{task_id}"),
        Case("result: timeout", "GET", f"/api/task/result/{task_id}", {"timeout": "1"}),
        Case("abort", "POST", f"/api/task/abort/{unknown_task}"),
        Case("time limit", "POST", "/api/task/timeout/tests.sleep",
             form={"soft": "30", "hard": "100", "workername": worker}),
        Case("time limit: unknown worker", "POST", "/api/task/timeout/tests.sleep",
             form={"soft": "30", "hard": "100", "workername": UNKNOWN_WORKER}),
        Case("rate limit", "POST", "/api/task/rate-limit/tests.sleep", form={"ratelimit": "200", "workername": worker}),
        Case("rate limit: unknown worker", "POST", "/api/task/rate-limit/tests.sleep",
             form={"ratelimit": "200", "workername": UNKNOWN_WORKER}),
        Case("revoke", "POST", f"/api/task/revoke/{unknown_task}", {"terminate": "true"}),
        Case("revoke: signal", "POST", f"/api/task/revoke/{unknown_task}", {"terminate": "true", "signal": "SIGKILL"}),
    ]


def send(client: httpx.Client, case: Case) -> httpx.Response:
    if case.name == "apply: body not JSON":
        return client.post(case.path, content=b"not json", headers={"Content-Type": "application/json"})
    return client.request(case.method, case.path, params=case.params, json=case.json, data=case.form)


def type_name(value: Any) -> str:
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__


def shape_problems(theirs: Any, ours: Any, where: str) -> list[str]:
    """Flower's keys missing from ours, and values whose JSON types differ (None is any type)."""
    if theirs is None or ours is None:
        return []
    if type_name(theirs) != type_name(ours):
        return [f"{where}: {type_name(theirs)} in Flower, {type_name(ours)} here"]
    problems: list[str] = []
    if isinstance(theirs, dict):
        for key, value in theirs.items():
            if key not in ours:
                problems.append(f"{where}: key {key!r} missing")
            else:
                problems.extend(shape_problems(value, ours[key], f"{where}.{key}"))
    elif isinstance(theirs, list) and theirs and ours:
        problems.extend(shape_problems(theirs[0], ours[0], f"{where}[0]"))
    return problems


def compare(theirs: httpx.Response, ours: httpx.Response, case: Case) -> list[str]:
    problems = []
    if theirs.status_code != ours.status_code:
        expected = DELIBERATE.get(case.name)
        if expected is None or expected[:2] != (theirs.status_code, ours.status_code):
            return [f"status {theirs.status_code} in Flower ({theirs.text[:120]!r}), "
                    f"{ours.status_code} here ({ours.text[:120]!r})"]
        return []
    if ours.status_code >= 400:
        assert "error" in ours.json(), f"{case.name}: an error without a reason: {ours.text}"
        return []
    if case.shape == "none" or "json" not in theirs.headers.get("content-type", ""):
        return []
    mine, flowers = ours.json(), theirs.json()
    if case.shape == "keyed":
        shared = set(mine) & set(flowers)
        assert not flowers or shared, f"{case.name}: no entry in common ({list(flowers)[:3]} / {list(mine)[:3]})"
        for key in sorted(shared)[:5]:
            problems += shape_problems(flowers[key], mine[key], f"[{key[:12]}]")
        return problems
    return shape_problems(flowers, mine, "$")


@pytest.fixture(scope="module")
def finished_task(side_by_side: SideBySide) -> str:
    """A task both have seen finish (sent through the monitor, so both saw its events)."""
    response = side_by_side.monitor.client.post("/api/task/async-apply/tests.add", json={"args": [1, 2]})
    assert response.status_code == 200, response.text
    task_id = response.json()["task-id"]
    for server in (side_by_side.monitor.client, side_by_side.flower.client):
        wait_for(lambda server=server: server.get(f"/api/task/info/{task_id}").json().get("state") == "SUCCESS",
                 30, message=f"task {task_id} finished in {server.base_url}")
    return str(task_id)


def test_same_answers_as_flower(side_by_side: SideBySide, finished_task: str) -> None:
    problems = {}
    for case in cases(side_by_side.worker.hostname, finished_task):
        theirs = send(side_by_side.flower.client, case)
        ours = send(side_by_side.monitor.client, case)
        found = compare(theirs, ours, case)
        if found:
            problems[case.name] = found
    assert not problems, "\n".join(f"{name}: {found}" for name, found in problems.items())


def test_lineage_keys_of_flower(side_by_side: SideBySide, finished_task: str) -> None:
    info = side_by_side.monitor.json(f"/api/task/info/{finished_task}")
    listed = side_by_side.monitor.json("/api/tasks", params={"limit": "50"})[finished_task]
    for task in (info, listed):
        assert task["root"] == task["root_id"] and task["parent"] == task["parent_id"]


def test_no_credentials_no_answer_in_either(side_by_side: SideBySide) -> None:
    for base in (side_by_side.flower.url, side_by_side.monitor.url):
        assert httpx.get(f"{base}/api/workers").status_code == 401
        assert httpx.get(f"{base}/api/tasks", auth=("compat", "wrong")).status_code == 401


def curl(base: str, *args: str) -> tuple[int, str]:
    """curl as Flower's README runs it (with the credentials), returning the status and body."""
    out = subprocess.run(["curl", "-s", "-u", f"{AUTH[0]}:{AUTH[1]}", "-w", "\n%{http_code}", *args],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    body, _, status = out.rpartition("\n")
    return int(status), body


def test_readme_curl_examples(side_by_side: SideBySide, finished_task: str) -> None:
    worker = side_by_side.worker.hostname
    examples = [
        ["-X", "POST", "-d", "n=1", "{base}/api/worker/pool/grow/" + worker],
        ["-X", "POST", "-d", '{"args":[1,2]}', "{base}/api/task/async-apply/tests.add"],
        ["-X", "POST", "-d", "terminate=True", "{base}/api/task/revoke/" + finished_task],
    ]
    for example in examples:
        answers = []
        for base in (side_by_side.flower.url, side_by_side.monitor.url):
            answers.append(curl(base, *(arg.replace("{base}", base) for arg in example)))
        (their_status, their_body), (our_status, our_body) = answers
        assert their_status == our_status == 200, f"{example}: Flower {answers[0]}, here {answers[1]}"
        theirs = httpx.Response(200, content=their_body, headers={"content-type": "application/json"})
        ours = httpx.Response(200, content=our_body, headers={"content-type": "application/json"})
        assert not compare(theirs, ours, Case(example[-1], "POST", "")), (example, answers)
    # The README's async-apply really ran tests.add(1, 2) here.
    task_id = httpx.Response(200, content=answers and curl(side_by_side.monitor.url, "-X", "POST", "-d",
                                                            '{"args":[1,2]}',
                                                            f"{side_by_side.monitor.url}/api/task/async-apply/tests.add")[1]
                             ).json()["task-id"]
    info = wait_for(lambda: (t := side_by_side.monitor.json(f"/api/task/info/{task_id}"))["state"] == "SUCCESS" and t,
                    30, message="the README's task to finish")
    assert info["args"] in ("[1, 2]", "(1, 2)") and info["result"] == "3"
