"""The stack of the redaction tests: a monitor with --redact and format_task, a real worker, and
tasks whose data holds secrets.

An admin runs the tasks through the monitor's own API (so the audit trail records the calls); a
read-only user and a read-only API token listen on the WebSockets meanwhile. Three long tasks keep
the worker busy, so its inspect replies hold requests that are active and reserved, and one more
waits for its countdown (scheduled).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from support.auth_stack import token_entry
from support.client import celery_client
from support.processes import MonitorProcess, RedisServer, Worker, free_port, new_monitor, start_worker, wait_for

ADMIN = ("admin", "admin-pass-0123")
VIEWER = ("viewer", "viewer-pass-0123")
RO_TOKEN = "read-only-token-0123456789"
ARG_SECRET = "arg-hunter2"
KW_SECRET = "kw-pw-s3cret"
CARD = "4111-1111"
SECRETS = (ARG_SECRET, KW_SECRET, CARD)
KWARGS = {"password": KW_SECRET, "card": CARD, "note": "kept"}
REDACT = "--redact=args.1,kwargs.password,result.args.1,result.kwargs.password"
CONFIG = '''
def format_task(task):
    # Card numbers keep only their last digits, in every field they may reach.
    for field in ("args", "kwargs", "result", "exception", "traceback"):
        value = getattr(task, field)
        if value:
            setattr(task, field, value.replace("4111-1111", "****-1111"))
    return task
'''
HOLD_SECONDS = 300
IDENTITIES = ("viewer", "token")
FEEDS = ("/api/task/events/task-received/", "/api/task/events/task-succeeded/",
         "/api/task/events/task-failed/", "/api/ws?topics=tasks")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


HEADERS = {
    "admin": {"Authorization": basic(*ADMIN)},
    "viewer": {"Authorization": basic(*VIEWER)},
    "token": {"Authorization": f"Bearer {RO_TOKEN}"},
}


@dataclass
class Feed:
    """One WebSocket, read in a thread: every message it brought."""

    url: str
    headers: dict[str, str]
    messages: list[str] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Feed:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        with connect(self.url, additional_headers=self.headers, open_timeout=10) as socket:
            self.connected.set()
            while not self.stop.is_set():
                try:
                    self.messages.append(str(socket.recv(timeout=0.2)))
                except TimeoutError:
                    continue

    @property
    def text(self) -> str:
        return "".join(self.messages)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)


@dataclass
class Stack:
    monitor: MonitorProcess
    worker: Worker
    tmp: Path
    feeds: dict[tuple[str, str], Feed]
    echo_id: str = ""  # succeeded, run by the admin with apply (its answer: apply_answer)
    fail_id: str = ""  # failed, its exception and traceback quote the card number
    hold_ids: list[str] = field(default_factory=list)  # running or reserved on the worker
    scheduled_id: str = ""  # waiting for its countdown on the worker
    apply_answer: dict[str, Any] = field(default_factory=dict)

    def get(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.monitor.client.get(path, headers=HEADERS[who], auth=None, **kwargs)

    def post(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.monitor.client.post(path, headers=HEADERS[who], auth=None, **kwargs)


def run_the_tasks(stack: Stack) -> None:
    """As the admin, through the monitor: one task succeeds, one fails, four stay on the worker."""
    applied = stack.post("admin", "/api/task/apply/tests.echo?timeout=30",
                         json={"args": ["user", ARG_SECRET], "kwargs": KWARGS})
    assert applied.status_code == 200, applied.text
    stack.apply_answer = applied.json()
    stack.echo_id = stack.apply_answer["task-id"]
    sent = stack.post("admin", "/api/task/send-task/tests.fail", json={"args": [f"declined {CARD}"]})
    assert sent.status_code == 200, sent.text
    stack.fail_id = sent.json()["task-id"]
    wait_for(lambda: stack.get("admin", f"/api/task/result/{stack.fail_id}").json()["state"] == "FAILURE", 30,
             message="the failing task's result in the backend")
    # Failure groups read the history alone (no overlay of what is not written yet): wait for it there.
    wait_for(lambda: stack.fail_id in stack.get("admin", "/api/failures/tasks",
                                                params={"name": "tests.fail", "exception": "ValueError"}).text,
             30, message="the failure in the history's failure groups")
    for _ in range(3):
        held = stack.post("admin", "/api/task/send-task/tests.hold",
                          json={"args": [HOLD_SECONDS, ARG_SECRET], "kwargs": KWARGS})
        assert held.status_code == 200, held.text
        stack.hold_ids.append(held.json()["task-id"])
    later = stack.post("admin", "/api/task/send-task/tests.echo",
                       json={"args": ["user", ARG_SECRET], "kwargs": KWARGS, "countdown": 600})
    assert later.status_code == 200, later.text
    stack.scheduled_id = later.json()["task-id"]

    def busy() -> bool:
        name = stack.worker.hostname
        entry = stack.monitor.json(f"/api/workers?workername={name}&refresh=true")[name]
        return (len(entry.get("active") or []) == 2 and len(entry.get("reserved") or []) == 1
                and len(entry.get("scheduled") or []) == 1)

    wait_for(busy, 30, interval=0.5, message="two active, one reserved and one scheduled task on the worker")


def _feeds_saw_the_tasks(stack: Stack) -> None:
    everything = [stack.echo_id, stack.fail_id, *stack.hold_ids]
    expected = {"task-received/": everything, "topics=tasks": everything,
                "task-succeeded/": [stack.echo_id], "task-failed/": [stack.fail_id]}
    for feed in stack.feeds.values():
        ids = next(wanted for suffix, wanted in expected.items() if feed.url.endswith(suffix))
        wait_for(lambda feed=feed, ids=ids: all(i in feed.text for i in ids), 15,  # type: ignore[misc]
                 message=f"the tasks on {feed.url}")


@contextmanager
def running_stack(tmp: Path) -> Iterator[Stack]:
    """A private Redis, the monitor (users admin and viewer, a read-only token), a worker, the
    WebSockets of the read-only identities open, and the tasks run."""
    redis = RedisServer(free_port(), tmp).start()
    broker = f"redis://127.0.0.1:{redis.port}/0"
    (tmp / "monitorconfig.py").write_text(CONFIG)
    monitor = new_monitor(
        broker, tmp, f"--result_backend={broker}", REDACT, f"--conf={tmp / 'monitorconfig.py'}",
        f"--read_only_users={VIEWER[0]}", "--api_tokens=" + token_entry("ro", "read-only", RO_TOKEN), auth=ADMIN)
    users = f"--basic_auth={ADMIN[0]}:{ADMIN[1]},{VIEWER[0]}:{VIEWER[1]}"
    monitor.args = [users if arg.startswith("--basic_auth=") else arg for arg in monitor.args]
    monitor.start()
    worker = start_worker(broker, "w-hidden", tmp, backend=broker)
    ws_base = monitor.url.replace("http://", "ws://")
    feeds = {(who, path): Feed(ws_base + path, HEADERS[who]).start() for who in IDENTITIES for path in FEEDS}
    stack = Stack(monitor, worker, tmp, feeds)
    try:
        for feed in feeds.values():
            assert feed.connected.wait(10), f"{feed.url} did not connect"
        wait_for(lambda: "tests.echo" in str(monitor.json(f"/api/workers?workername={worker.hostname}")),
                 30, message="the worker online and inspected (its registered tasks)")
        run_the_tasks(stack)
        _feeds_saw_the_tasks(stack)
        yield stack
    finally:
        for feed in feeds.values():
            feed.close()
        if stack.hold_ids:
            with celery_client(broker, broker) as app:
                app.control.revoke(stack.hold_ids, terminate=True, signal="SIGKILL")
        worker.stop()
        monitor.stop()
        redis.stop()
