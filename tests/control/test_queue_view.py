"""The queue view through the API: what a queue holds, redacted by the monitor's rules, for every
identity that may look, with bad parameters refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from celery import Celery
from support.processes import MonitorProcess, RedisServer, free_port, new_monitor

ADMIN = ("admin", "adm1n-pass")
VIEWER = ("viewer", "v1ewer-pass")
SECRET = "hunter2-in-a-queue"


@pytest.fixture(scope="module")
def redacting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MonitorProcess, str]]:
    tmp = tmp_path_factory.mktemp("queue-view")
    server = RedisServer(free_port(), tmp).start()
    broker = f"redis://127.0.0.1:{server.port}/0"
    monitor = new_monitor(broker, tmp, "--redact=args.1,kwargs.password", f"--read_only_users={VIEWER[0]}",
                          f"--basic_auth={ADMIN[0]}:{ADMIN[1]},{VIEWER[0]}:{VIEWER[1]}", auth=ADMIN)
    try:
        yield monitor.start(), broker
    finally:
        monitor.stop()
        server.stop()


def test_queued_arguments_are_redacted_for_everyone(redacting: tuple[MonitorProcess, str]) -> None:
    monitor, broker = redacting
    sender = Celery("sender", broker=broker, set_as_current=False)
    try:
        sent = sender.send_task("billing.charge", ["acct-7", SECRET], kwargs={"password": SECRET, "note": "kept"},
                                queue="billing").id
    finally:
        sender.close()
    for who in (ADMIN, VIEWER):
        response = httpx.get(f"{monitor.url}/api/queues/billing/tasks", auth=who)
        assert response.status_code == 200, response.text
        assert SECRET not in response.text
        task = response.json()["tasks"][0]
        assert (task["uuid"], task["name"]) == (sent, "billing.charge")
        assert task["args"] == "['acct-7', '[redacted]']"
        assert task["kwargs"] == "{'password': '[redacted]', 'note': 'kept'}"


@pytest.mark.parametrize(("path", "status"), [
    ("/api/queues/billing/tasks?limit=0", 400), ("/api/queues/billing/tasks?limit=501", 400),
    ("/api/queues/billing/tasks?offset=-1", 400), ("/api/queues/billing/tasks?limit=x", 400),
    ("/api/queues/" + "q" * 300 + "/tasks", 400), ("/api/queues/never-declared/tasks", 200),
])
def test_queue_view_parameters(redacting: tuple[MonitorProcess, str], path: str, status: int) -> None:
    monitor, _ = redacting
    response = monitor.get(path)
    assert response.status_code == status, response.text
    if status == 400:
        assert "error" in response.json()
    else:
        assert (response.json()["total"], response.json()["tasks"]) == (0, [])


def test_the_queue_view_needs_a_login(redacting: tuple[MonitorProcess, str]) -> None:
    monitor, _ = redacting
    assert httpx.get(f"{monitor.url}/api/queues/billing/tasks").status_code == 401
