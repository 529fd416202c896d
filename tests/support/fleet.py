"""A monitor with its own workers, for tests that change the workers' state (control actions)."""

from __future__ import annotations

import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.client import celery_client
from support.processes import MonitorProcess, Worker, new_monitor, start_worker, wait_for

USER = ("operator", "s3cret")


@dataclass
class Fleet:
    kind: str
    broker: str
    backend: str
    monitor: MonitorProcess
    plain: Worker
    auto: Worker
    victim: Worker
    second_queue: str
    auto_queue: str
    tmp: Path

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.monitor.client.post(path, **kwargs)

    def inspect(self, worker: str, method: str, *args: Any) -> Any:
        """Ask the worker itself (not the monitor), answering as soon as it replies."""
        with celery_client(self.broker, self.backend) as app:
            replies = getattr(app.control.inspect([worker], timeout=5, limit=1), method)(*args) or {}
        assert worker in replies, f"{worker} did not answer {method}"
        return replies[worker]

    def online(self, worker: Worker) -> None:
        """Wait until the monitor lists the worker and the worker answers control commands."""
        wait_for(lambda: self.monitor.json("/api/workers?status=true").get(worker.hostname), 40,
                 message=f"{worker.hostname} online in the monitor")
        wait_for(lambda: self.inspect(worker.hostname, "ping"), 20, message=f"{worker.hostname} answering")

    def task(self, task_id: str) -> dict[str, Any] | None:
        response = self.monitor.get(f"/api/task/info/{task_id}")
        return response.json() if response.status_code == 200 else None

    def task_state(self, task_id: str) -> str | None:
        task = self.task(task_id)
        return task["state"] if task else None

    def stop(self) -> None:
        workers = (self.plain, self.auto, self.victim)
        for worker in workers:  # all at once: warm shutdowns overlap
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.stop()
        self.monitor.stop()


def start_fleet(kind: str, broker: str, backend: str, tmp: Path) -> Fleet:
    """Three workers (``plain``: ``-c 2`` with pool restarts and a second queue; ``auto``: autoscaling
    on its own queue; ``victim``: to be shut down) and a monitor with a login and a result backend."""
    second, auto_queue = f"ctl-second-{kind}", f"ctl-auto-{kind}"
    # Workers first: they take longer to start than the monitor, and start while it does.
    plain = start_worker(broker, f"ctl-plain-{kind}", tmp, "-Q", f"celery,{second}", backend=backend,
                         env={"TEST_POOL_RESTARTS": "1"})
    auto = start_worker(broker, f"ctl-auto-{kind}", tmp, "-Q", auto_queue, "--autoscale=3,1", backend=backend)
    victim = start_worker(broker, f"ctl-victim-{kind}", tmp, "-Q", f"ctl-victim-{kind}", backend=backend)
    monitor = new_monitor(broker, tmp, f"--result_backend={backend}", auth=USER)
    fleet = Fleet(kind, broker, backend, monitor, plain, auto, victim, second, auto_queue, tmp)
    try:
        monitor.start(timeout=90)
        for worker in (plain, auto, victim):
            fleet.online(worker)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def add_vhost() -> str:
    """A private RabbitMQ virtual host (guest has every permission on it)."""
    vhost = f"cmon-control-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return vhost


def delete_vhost(vhost: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
