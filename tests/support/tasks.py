"""The Celery app the integration tests run on real workers (broker from TEST_BROKER_URL)."""

from __future__ import annotations

import json
import os
import time

from celery import Celery
from celery.contrib.abortable import AbortableTask

app = Celery("tests", broker=os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15"),
             backend=os.environ.get("TEST_RESULT_BACKEND", "redis://127.0.0.1:6379/14"))
app.conf.update(
    worker_send_task_events=True,
    task_send_sent_event=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # Celery's default is off; TEST_RESULT_EXTENDED=0 gives a worker that keeps no args in the backend.
    result_extended=os.environ.get("TEST_RESULT_EXTENDED", "1") == "1",
    # A short visibility timeout makes Redis redeliver what a killed worker held (acks_late) in seconds.
    broker_transport_options=json.loads(os.environ.get("TEST_BROKER_TRANSPORT_OPTIONS", "{}")),
)


@app.task(name="tests.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="tests.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(name="tests.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="tests.echo")
def echo(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


@app.task(name="tests.hold")
def hold(seconds: float, *args: object, **kwargs: object) -> float:
    """Stays running for ``seconds``, whatever else it is given (inspect replies show its arguments)."""
    time.sleep(seconds)
    return seconds


@app.task(name="tests.hold_late", acks_late=True)
def hold_late(seconds: float) -> float:
    """Acknowledged once it finishes: a worker killed meanwhile leaves the message to redeliver."""
    time.sleep(seconds)
    return seconds


@app.task(name="tests.flaky", bind=True, max_retries=2, default_retry_delay=0.1)
def flaky(self, fail_times: int) -> str:  # type: ignore[no-untyped-def]
    if self.request.retries < fail_times:
        raise self.retry(exc=RuntimeError(f"attempt {self.request.retries}"), countdown=0.1)
    return f"ok after {self.request.retries} retries"


@app.task(name="tests.progress", bind=True)
def progress(self, steps: int) -> int:  # type: ignore[no-untyped-def]
    for step in range(steps):
        self.send_event("task-progress", current=step + 1, total=steps)
    return steps


# Control tests: pool restarts only when the worker is started with TEST_POOL_RESTARTS=1.
app.conf.worker_pool_restarts = os.environ.get("TEST_POOL_RESTARTS") == "1"


@app.task(name="tests.abortable", bind=True, base=AbortableTask)
def abortable(self, seconds: float) -> str:  # type: ignore[no-untyped-def]
    """Runs until aborted (answers "aborted") or until ``seconds`` pass (answers "finished")."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if self.is_aborted():
            return "aborted"
        time.sleep(0.05)
    return "finished"


# Failure groups: a failure of a chosen exception type. A kind that is not a built-in exception's
# name becomes a class of that name, so a test can have a group of its own.
BUILTIN_FAILURES: dict[str, type[Exception]] = {"ValueError": ValueError, "KeyError": KeyError,
                                                "ConnectionError": ConnectionError}


@app.task(name="tests.fail_as")
def fail_as(kind: str, message: str) -> None:
    raise (BUILTIN_FAILURES.get(kind) or type(kind, (Exception,), {}))(message)
