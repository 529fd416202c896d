"""Task truth on a real cluster: real prefork workers on Redis and on RabbitMQ, a real Redis result
backend, the monitor as its own process.

- The monitor is killed (-9) while tasks finish and restarted: their final states, results and
  tracebacks come from the result backend within 30 s, marked reconciled.
- A task sent again under the id of a finished one keeps its new run: the newer events win.
- A task LOST (its worker stopped answering) that the backend saw succeed is reconciled.
- A monitor started while tasks run finds them: STARTED on their worker, the reserved ones
  RECEIVED, the scheduled ones RECEIVED with their ETA, arguments redacted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import states as celery_states
from support.client import celery_client
from support.fleet import add_vhost, delete_vhost
from support.processes import (
    MonitorProcess,
    RedisServer,
    Worker,
    free_port,
    kill9_with_pool,
    new_monitor,
    start_worker,
    wait_for,
)

from celery_monitor.states import INSPECTED, RECONCILED

RECONCILED_WITHIN = 30.0  # what the issue promises after a restart


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("rabbitmq", marks=[pytest.mark.redis, pytest.mark.rabbitmq])])
def brokers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(broker URL, result backend URL): a private redis-server holds the results (and the Redis
    broker's queues), a private virtual host the RabbitMQ broker's."""
    server = RedisServer(free_port(), tmp_path).start()
    vhost = add_vhost() if request.param == "rabbitmq" else None
    broker = server.url if vhost is None else f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    try:
        yield broker, server.url.replace("/0", "/1")
    finally:
        server.stop()
        if vhost is not None:
            delete_vhost(vhost)


def task(monitor: MonitorProcess, task_id: str) -> dict[str, Any] | None:
    response = monitor.get(f"/api/task/info/{task_id}")
    return response.json() if response.status_code == 200 else None


def state(monitor: MonitorProcess, task_id: str) -> str | None:
    found = task(monitor, task_id)
    return found["state"] if found else None


def committed(monitor: MonitorProcess) -> bool:
    """Everything the monitor applied is in its history (what a kill -9 keeps)."""
    return bool(monitor.json("/api/monitor/status")["store"]["pending_tasks"] == 0)


def finished_in_backend(broker: str, backend: str, *task_ids: str) -> bool:
    with celery_client(broker, backend) as app:
        return all(app.AsyncResult(task_id).state in celery_states.READY_STATES for task_id in task_ids)


def reasons(found: dict[str, Any]) -> list[tuple[str, str]]:
    return [(state, why) for state, _, why in found["transitions"]]


def stop(*workers: Worker | None) -> None:
    for worker in workers:
        if worker is not None and worker.process.poll() is None:
            kill9_with_pool(worker)  # a stopped one too (SIGKILL needs no resume)


def test_a_restarted_monitor_gets_what_finished_meanwhile_from_the_backend(
        brokers: tuple[str, str], history_db: str, tmp_path: Path) -> None:
    broker, backend = brokers
    monitor = new_monitor(broker, tmp_path, f"--result_backend={backend}", f"--db={history_db}").start()
    worker = start_worker(broker, "rc", tmp_path, backend=backend)
    try:
        with celery_client(broker, backend) as app:
            sleepers = [app.send_task("tests.sleep", args=(3,)).id for _ in range(2)]
            failing = app.send_task("tests.fail", args=("boom",), countdown=4).id  # held for its ETA meanwhile
        wait_for(lambda: all(state(monitor, t) == "STARTED" for t in sleepers), 40, message="the sleepers started")
        wait_for(lambda: state(monitor, failing) == "RECEIVED", 10, message="the failing task received")
        wait_for(lambda: committed(monitor), 10, message="the history written")
        monitor.kill9()

        wait_for(lambda: finished_in_backend(broker, backend, *sleepers, failing), 30,
                 message="the tasks finished, the monitor away")
        restarted_at = time.monotonic()
        monitor.start()
        wait_for(lambda: all(state(monitor, t) in ("SUCCESS", "FAILURE") for t in [*sleepers, failing]),
                 RECONCILED_WITHIN + 5, interval=0.2, message="the final states from the backend")
        assert time.monotonic() - restarted_at <= RECONCILED_WITHIN

        # With a PostgreSQL history on RabbitMQ the monitor reads a durable queue of its own (shared by
        # replicas): the events published while it was away waited there, and the real final events
        # arrive before the backend is asked. Everywhere else they were lost, and the backend tells.
        durable = broker.startswith("amqp") and history_db.startswith("postgresql")
        source = worker.hostname if durable else RECONCILED
        for task_id in sleepers:
            found = task(monitor, task_id)
            assert found is not None
            assert (found["state"], found["result"], found["worker"]) == ("SUCCESS", "3", worker.hostname)
            assert reasons(found)[-3:] == [("RECEIVED", worker.hostname), ("STARTED", worker.hostname),
                                           ("SUCCESS", source)]
        failed = task(monitor, failing)
        assert failed is not None
        assert (failed["state"], failed["exception"]) == ("FAILURE", "ValueError('boom')")
        assert "ValueError: boom" in failed["traceback"]
        assert reasons(failed)[-1] == ("FAILURE", source)
        assert monitor.metric("celery_monitor_tasks_reconciled_total", state="SUCCESS") == (0 if durable else 2)
        assert monitor.metric("celery_monitor_tasks_reconciled_total", state="FAILURE") == (0 if durable else 1)
        assert set(monitor.json("/api/tasks?state=SUCCESS")) == set(sleepers)
    finally:
        stop(worker)
        monitor.stop()


# The rule under test is the applier's, whatever the broker: on Redis only (the restart test covers both).
@pytest.mark.parametrize("brokers", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
def test_a_task_sent_again_under_a_finished_id_keeps_its_newer_events(
        brokers: tuple[str, str], tmp_path: Path) -> None:
    broker, backend = brokers
    monitor = new_monitor(broker, tmp_path, f"--result_backend={backend}").start()
    worker = start_worker(broker, "rn", tmp_path, backend=backend)
    again = "sent-again-0001"
    try:
        with celery_client(broker, backend) as app:
            earlier = app.send_task("tests.sleep", args=(2,)).id
            wait_for(lambda: state(monitor, earlier) == "STARTED", 40, message="the earlier task started")
            wait_for(lambda: committed(monitor), 10, message="the history written")
            monitor.kill9()
            app.send_task("tests.add", args=(1, 2), task_id=again).get(timeout=30)  # the monitor away
            wait_for(lambda: finished_in_backend(broker, backend, earlier), 30, message="the earlier task done")

            monitor.start()
            wait_for(lambda: state(monitor, earlier) == "SUCCESS", RECONCILED_WITHIN, interval=0.2,
                     message="the earlier task reconciled")
            # The same id runs again, the monitor watching: its events are newer than the result stored.
            app.send_task("tests.hold", args=(300,), task_id=again)
            wait_for(lambda: state(monitor, again) == "STARTED", 40, message="the second run started")
            # One more task finishes while the monitor is away: both are asked about in the same batch.
            witness = app.send_task("tests.sleep", args=(2,)).id
            wait_for(lambda: state(monitor, witness) == "STARTED", 40, message="the witness started")
            wait_for(lambda: committed(monitor), 10, message="the history written")
            monitor.kill9()
            wait_for(lambda: finished_in_backend(broker, backend, witness), 30, message="the witness done")
        monitor.start()  # its start-up pass finds both unfinished, and the backend's older SUCCESS for one
        wait_for(lambda: state(monitor, witness) == "SUCCESS", RECONCILED_WITHIN, interval=0.2,
                 message="the witness reconciled")
        status = monitor.json("/api/monitor/status")["reconciler"]
        assert status["found"] == 2 and status["last_error"] is None
        found = task(monitor, again)
        assert found is not None and found["state"] == "STARTED"
        assert all(why != RECONCILED for _, why in reasons(found))
    finally:
        stop(worker)
        monitor.stop()


def test_a_lost_task_whose_result_the_backend_holds_is_reconciled(brokers: tuple[str, str], tmp_path: Path) -> None:
    broker, backend = brokers
    monitor = new_monitor(broker, tmp_path, f"--result_backend={backend}").start()
    worker = start_worker(broker, "rl", tmp_path, "--heartbeat-interval=1", backend=backend)
    try:
        # The start-up pass first: run after the result is stored, it would settle the task before
        # the worker is judged offline, and the LOST this test is about would never be seen.
        wait_for(lambda: monitor.json("/api/monitor/status")["reconciler"]["last_pass_at"] is not None, 30,
                 message="the reconciler's start-up pass")
        with celery_client(broker, backend) as app:
            task_id = app.send_task("tests.sleep", args=(2,)).id
        wait_for(lambda: state(monitor, task_id) == "STARTED", 40, message="the task started")
        # The worker's main process stops (a partition, a hung node): no heartbeat, no final event;
        # its pool process finishes the task and stores the result.
        os.kill(worker.process.pid, signal.SIGSTOP)
        wait_for(lambda: state(monitor, task_id) in ("LOST", "SUCCESS"), 2 + 10 + 5, interval=0.2,
                 message="the task LOST")
        wait_for(lambda: finished_in_backend(broker, backend, task_id), 20, message="the result stored")
        wait_for(lambda: state(monitor, task_id) == "SUCCESS", 20, interval=0.2, message="the task reconciled")
        found = task(monitor, task_id)
        assert found is not None and found["result"] == "2"
        assert reasons(found)[-2:] == [("LOST", "worker offline"), ("SUCCESS", RECONCILED)]
        lost = 'celery_monitor_tasks_lost_total{cluster="default",name="tests.sleep"} 1.0'
        assert lost in monitor.get("/metrics").text.splitlines()
        assert monitor.metric("celery_monitor_tasks_reconciled_total", state="SUCCESS") == 1
    finally:
        stop(worker)
        monitor.stop()


def test_a_monitor_started_while_tasks_run_shows_them(brokers: tuple[str, str], tmp_path: Path) -> None:
    broker, backend = brokers
    worker = start_worker(broker, "ls", tmp_path, backend=backend)  # -c 2: two run, the rest wait
    monitor: MonitorProcess | None = None
    try:
        with celery_client(broker, backend) as app:
            wait_for(lambda: app.control.inspect([worker.hostname], timeout=1).ping(), 40,
                     message="the worker answering")
            active = [app.send_task("tests.hold", args=(300, "secret")).id for _ in range(2)]
            wait_for(lambda: len(app.control.inspect([worker.hostname], timeout=1).active()[worker.hostname]) == 2,
                     40, message="two tasks running")
            reserved = [app.send_task("tests.hold", args=(300, "secret")).id for _ in range(2)]
            scheduled = app.send_task("tests.hold", args=(300, "secret"), countdown=600).id
            inspect = app.control.inspect([worker.hostname], timeout=1)
            wait_for(lambda: len(inspect.reserved()[worker.hostname]) == 2
                     and len(inspect.scheduled()[worker.hostname]) == 1, 40, message="three tasks held")

        started_at = time.monotonic()
        monitor = new_monitor(broker, tmp_path, f"--result_backend={backend}", "--redact=args.1").start()
        everyone = [*active, *reserved, scheduled]
        wait_for(lambda: all(state(monitor, t) for t in everyone), 30, interval=0.2, message="the tasks listed")
        assert time.monotonic() - started_at <= 30
        for task_id, expected in [*((t, "STARTED") for t in active), *((t, "RECEIVED") for t in reserved),
                                  (scheduled, "RECEIVED")]:
            found = task(monitor, task_id)
            assert found is not None
            assert (found["state"], found["worker"], found["name"]) == (expected, worker.hostname, "tests.hold")
            assert found["args"] == "(300, '[redacted]')"
            assert reasons(found) == [(expected, INSPECTED)]
        held = task(monitor, scheduled)
        assert held is not None and held["eta"]
        for task_id in active:
            found = task(monitor, task_id)
            assert found is not None and found["started"] is not None
        assert set(monitor.json(f"/api/tasks?state=STARTED&workername={worker.hostname}")) == set(active)
        assert "secret" not in monitor.get("/api/tasks").text
    finally:
        stop(worker)
        if monitor is not None:
            monitor.stop()


def test_a_worker_back_online_shows_what_it_still_runs(brokers: tuple[str, str], tmp_path: Path) -> None:
    broker, backend = brokers
    monitor = new_monitor(broker, tmp_path, f"--result_backend={backend}").start()
    worker = start_worker(broker, "rb", tmp_path, "--heartbeat-interval=1", backend=backend)
    try:
        with celery_client(broker, backend) as app:
            task_id = app.send_task("tests.hold", args=(300,)).id
        wait_for(lambda: state(monitor, task_id) == "STARTED", 40, message="the task started")
        os.kill(worker.process.pid, signal.SIGSTOP)  # the worker hangs: offline, its task LOST
        wait_for(lambda: state(monitor, task_id) == "LOST", 2 + 10 + 5, interval=0.2, message="the task LOST")
        os.kill(worker.process.pid, signal.SIGCONT)  # back, the same process: it comes online again
        wait_for(lambda: state(monitor, task_id) == "STARTED", 30, interval=0.2,
                 message="the task running again, as the worker's inspect reply says")
        found = task(monitor, task_id)
        assert found is not None and found["worker"] == worker.hostname
        assert reasons(found)[-2:] == [("LOST", "worker offline"), ("STARTED", INSPECTED)]
    finally:
        stop(worker)
        monitor.stop()
