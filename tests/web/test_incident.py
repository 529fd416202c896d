"""In an incident, in Chromium: the audit trail live, a re-run that refuses arguments it does not
have exactly, and revoking a backlog that Celery's defaults keep out of the event stream.

A cluster of its own (a private Redis; for the backlog also a private RabbitMQ virtual host): a
worker that consumes only ``noext`` and keeps no arguments in the result backend (Celery's default
``result_extended=False``), nobody on the default queue ``celery``, and a monitor with an admin
and a read-only user.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from celery import Celery
from playwright.sync_api import Browser, Page, expect
from support.browser import AUTH, Console, fetch_from_page, open_page, set_a_rate_limit
from support.client import celery_client
from support.processes import MonitorProcess, RedisServer, Worker, free_port, new_monitor, start_worker, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]

VIEWER = ("viewer", "l00k")
LONG = 2000  # characters: Celery's argsrepr keeps 1,024
MANAGEMENT = "http://127.0.0.1:15672/api"


@dataclass
class IncidentCluster:
    broker: str
    backend: str
    monitor: MonitorProcess
    worker: Worker
    tmp: Path

    def state(self, task_id: str) -> str | None:
        response = self.monitor.get(f"/api/task/info/{task_id}")
        return response.json()["state"] if response.status_code == 200 else None


@contextmanager
def private_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of its own, made through the management API (rabbitmqctl takes seconds)."""
    vhost = f"cmon-incident-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=MANAGEMENT, auth=("guest", "guest"), timeout=30) as api:
        api.put(f"/vhosts/{vhost}").raise_for_status()
        api.put(f"/permissions/{vhost}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}
                ).raise_for_status()
        try:
            yield vhost
        finally:
            api.delete(f"/vhosts/{vhost}")


@contextmanager
def incident_cluster(tmp: Path, kind: str) -> Iterator[IncidentCluster]:
    with ExitStack() as cleanup:
        redis_server = RedisServer(free_port(), tmp).start()
        cleanup.callback(redis_server.stop)
        backend = f"redis://127.0.0.1:{redis_server.port}/1"
        if kind == "rabbitmq":
            broker = f"amqp://guest:guest@127.0.0.1:5672/{cleanup.enter_context(private_vhost())}"
        else:
            broker = f"redis://127.0.0.1:{redis_server.port}/0"
        worker = start_worker(broker, f"w-noext-{kind}", tmp, "-Q", "noext", backend=backend,
                              env={"TEST_RESULT_EXTENDED": "0"})
        cleanup.callback(worker.stop)
        monitor = new_monitor(broker, tmp, f"--result_backend={backend}", f"--read_only_users={VIEWER[0]}",
                              f"--basic_auth={AUTH[0]}:{AUTH[1]},{VIEWER[0]}:{VIEWER[1]}", auth=AUTH)
        cleanup.callback(monitor.stop)
        # Stopping: the worker's warm shutdown starts first and overlaps the monitor's.
        cleanup.callback(lambda: worker.process.send_signal(signal.SIGTERM))
        monitor.start(timeout=60)
        wait_for(lambda: monitor.json("/api/workers?status=true").get(worker.hostname), 30,
                 message=f"worker {worker.hostname} online in the monitor")
        yield IncidentCluster(broker, backend, monitor, worker, tmp)


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IncidentCluster]:
    with incident_cluster(tmp_path_factory.mktemp("incident"), "redis") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def incident_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IncidentCluster]:
    with incident_cluster(tmp_path_factory.mktemp("incident-rabbitmq"), "rabbitmq") as cluster:
        yield cluster


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def backlog_cluster(request: pytest.FixtureRequest) -> IncidentCluster:
    """Where the queue is read differs: Redis lists, RabbitMQ messages fetched and handed back."""
    return request.getfixturevalue("incident" if request.param == "redis" else "incident_rabbitmq")  # type: ignore[no-any-return]


def test_the_audit_page_shows_actions_live_and_filters_them(browser: Browser, console: Console, page: Page,
                                                             incident: IncidentCluster, screenshots: Path) -> None:
    base = incident.monitor.url
    viewer = open_page(browser, console, auth=VIEWER)
    try:
        viewer.goto(base + "/audit")  # a read-only identity sees the trail
        expect(viewer.locator("#live")).to_have_text("live")
        viewer.evaluate("window.__stillTheSamePage = true")

        # An action taken on another page, by another user, appears without a reload.
        assert set_a_rate_limit(page, base, incident.worker.hostname, "7/m").status == 200
        limited = viewer.locator('#audit tbody tr[data-action="task.rate_limit"]')
        expect(limited).to_have_count(1)
        expect(limited.locator('[data-column="user"]')).to_have_text(AUTH[0])
        expect(limited.locator('[data-column="target"] a[data-filter="target"]')).to_have_text("tests.echo")
        missing = httpx.post(f"{base}/api/worker/shutdown/nobody@nowhere", auth=AUTH,
                             headers={"X-Requested-With": "celery-monitor"})
        assert missing.status_code == 404
        shutdown = viewer.locator('#audit tbody tr[data-action="worker.shutdown"]')
        expect(shutdown).to_have_count(1)
        expect(shutdown.locator('[data-column="status"]')).to_have_text("404")
        assert viewer.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"
        viewer.screenshot(path=screenshots / "audit.png", full_page=True)

        rows = viewer.locator("#audit tbody tr")
        filters = viewer.locator("#audit-filters")
        filters.locator('select[name="action"]').select_option("task.rate_limit")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-action", "task.rate_limit")
        filters.locator('select[name="action"]').select_option("")
        filters.locator('select[name="user"]').select_option(AUTH[0])
        expect(rows).to_have_count(2)
        filters.locator('input[name="target"]').fill("nobody@nowhere")
        filters.get_by_role("button", name="Apply").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-action", "worker.shutdown")
        assert "target=nobody%40nowhere" in viewer.url, "the filter lives in the address"
        filters.locator('input[name="target"]').fill("")
        filters.locator('input[name="since"]').fill("2099-01-01T00:00:00")
        filters.get_by_role("button", name="Apply").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_text("No audit entries match")
        filters.locator('input[name="since"]').fill("2000-01-01T00:00:00")
        filters.locator('input[name="until"]').fill("2000-01-02T00:00:00")
        filters.get_by_role("button", name="Apply").click()
        expect(rows.first).to_have_text("No audit entries match")
        filters.locator('input[name="until"]').fill("2099-01-01T00:00:00")
        filters.get_by_role("button", name="Apply").click()
        expect(rows).to_have_count(2)
    finally:
        viewer.context.close()


def test_rerun_refuses_arguments_it_does_not_have_exactly(page: Page, console: Console,
                                                         incident: IncidentCluster) -> None:
    marker = uuid.uuid4().hex
    with celery_client(incident.broker, incident.backend) as client:
        failed = client.send_task("tests.fail", [marker + "x" * LONG], queue="noext").id
        wait_for(lambda: incident.state(failed) == "FAILURE", 20, message="the task failed")

        page.goto(f"{incident.monitor.url}/task/{failed}")
        expect(page.locator("#task-state")).to_have_text("FAILURE")
        reason = page.locator("#rerun-reason")
        expect(reason).to_be_visible()
        expect(reason).to_contain_text("no exact copy of its arguments")
        expect(reason).to_contain_text("result_extended")
        expect(reason).to_contain_text("cut short")
        expect(page.locator("#rerun")).to_be_disabled()
        assert "result_extended" in (page.locator("#rerun").get_attribute("title") or "")

        refused = fetch_from_page(page, f"/api/task/rerun/{failed}", "POST")
        assert refused["status"] == 409 and "result_extended" in refused["body"], refused
        assert all("409" in error for error in console.errors), console.errors
        console.errors.clear()  # the refusal asked for on purpose

        # A task sent after the refusal runs on the same worker: had a re-run gone out, it would be known by now.
        sentinel = client.send_task("tests.add", [1, 2], queue="noext").id
        wait_for(lambda: incident.state(sentinel) == "SUCCESS", 20, message="the sentinel run")
    assert list(incident.monitor.json(f"/api/tasks?search={marker}")) == [failed], "no task was sent"


def test_bulk_revoke_of_a_backlog_queued_with_celery_defaults(page: Page, backlog_cluster: IncidentCluster) -> None:
    incident = backlog_cluster
    marker = uuid.uuid4().hex
    sender = Celery("defaults", broker=incident.broker, backend=incident.backend, set_as_current=False)
    sender.conf.broker_connection_retry_on_startup = True
    try:  # task_send_sent_event is off: the monitor hears nothing of these
        bad = [sender.send_task("tests.echo", [marker, i]).id for i in range(5)]
        good = sender.send_task("tests.add", [3, 4]).id
    finally:
        sender.close()
    assert incident.monitor.json(f"/api/tasks?search={marker}") == {}

    page.goto(f"{incident.monitor.url}/broker")
    page.locator('#broker-queues tr[data-queue="celery"] button[data-show="celery"]').click()
    expect(page.locator("#queue-total")).to_have_text("6 message(s)")
    expect(page.locator("#queue-tasks tbody tr")).to_have_count(6)
    expect(page.locator(f'#queue-tasks tr[data-uuid="{good}"]')).to_be_visible()
    if incident.broker.startswith("amqp"):
        expect(page.locator("#queue-note")).to_contain_text("redelivered")

    form = page.locator("#queue-revoke")
    form.locator('input[name="taskname"]').fill("tests.echo")
    form.get_by_role("button", name="Count").click()
    expect(page.locator("#queue-revoke-result")).to_contain_text("5 task(s) would be revoked")
    run = page.locator("#queue-revoke-run")
    expect(run).to_have_text("Revoke 5")
    with page.expect_response(lambda r: "/api/queues/celery/tasks" in r.url) as reread:
        page.locator("#queue-refresh").click()
    assert reread.value.json()["total"] == 6, "counting took nothing from the queue"
    page.once("dialog", lambda dialog: dialog.accept())
    run.click()
    expect(page.locator("#queue-revoke-result")).to_contain_text("Revoked 5 task(s) on 1 worker(s)")

    # A worker starts on the queue, with Celery's defaults (it learns revoked ids from the one online).
    late = start_worker(incident.broker, f"w-late-{uuid.uuid4().hex[:4]}", incident.tmp, backend=incident.backend,
                        mingle=True)
    try:
        wait_for(lambda: incident.state(good) == "SUCCESS", 30, message="the task not revoked run")
        wait_for(lambda: all(incident.state(t) == "REVOKED" for t in bad), 20, message="all five discarded")
        assert incident.monitor.json("/api/queues/celery/tasks")["total"] == 0
    finally:
        late.stop()
