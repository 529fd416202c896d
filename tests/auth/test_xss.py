"""Markup in task data and worker names is shown as text on every page, never run.

Payloads reach the monitor the way real data does: a real worker runs tasks with them as
arguments and results, a client sends a task whose name is one, and Celery's own event dispatcher
announces a worker whose host name is one. Chromium then opens every page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page
from support.auth_stack import PROBE
from support.client import celery_client
from support.processes import MonitorProcess, RedisServer, Worker, new_monitor, start_worker, wait_for

pytestmark = pytest.mark.timeout(120)

MARK = "XSSMARK"
PAYLOADS = [
    f'<script>alert("{MARK}-1")</script>',
    f'<img src=x onerror=alert("{MARK}-2")>',
    f'"><svg onload=alert("{MARK}-3")>',
    f"'><iframe src=javascript:alert('{MARK}-4')></iframe>",
    f'</script><script>alert("{MARK}-5")</script>',
    f'javascript:alert("{MARK}-6")',
    f'{{{{constructor.constructor("alert(`{MARK}-7`)")()}}}}',
    f'<a href="javascript:alert(\'{MARK}-8\')" id="xss-link">x</a>',
]
TASK_NAME = f'<img src=x onerror=alert("{MARK}-name")>.task'
WORKER_NAME = f'<svg onload=alert("{MARK}-worker")>@xss-host'

WATCH = """
window.__xss = [];
window.alert = (message) => window.__xss.push('alert:' + message);
document.addEventListener('securitypolicyviolation', (e) => {
  if (e.effectiveDirective.startsWith('script-src')) window.__xss.push('csp:' + e.effectiveDirective);
});
"""
INJECTED = ("img[src='x'], [onerror], [onload], iframe[src^='javascript'], a[href^='javascript'], "
            "#xss-link, svg[onload]")


@dataclass
class XssCluster:
    monitor: MonitorProcess
    worker: Worker
    task_ids: dict[str, str]


def announce_worker(broker: str, hostname: str) -> None:
    """A heartbeat through Celery's own event dispatcher, as a worker with that name sends it."""
    with celery_client(broker, broker) as app, app.connection_for_write() as connection:
        dispatcher = app.events.Dispatcher(connection, hostname=hostname, enabled=True)
        dispatcher.send("worker-online", freq=60.0, active=0, processed=0, loadavg=[0.0, 0.0, 0.0],
                        sw_ident="py-celery", sw_ver="5.4", sw_sys="Linux")
        dispatcher.close()


@pytest.fixture(scope="module")
def xss_cluster(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[XssCluster]:
    tmp: Path = tmp_path_factory.mktemp("xss")
    broker = f"redis://127.0.0.1:{redis_server.port}/10"
    backend = f"redis://127.0.0.1:{redis_server.port}/11"
    monitor = new_monitor(broker, tmp, f"--result_backend={backend}", "--tasks_columns=all", auth=PROBE).start()
    worker = start_worker(broker, "w-xss", tmp, backend=backend)
    ids: dict[str, str] = {}
    with celery_client(broker, backend) as app:
        ids["echo"] = app.send_task("tests.echo", args=PAYLOADS, kwargs={"note": PAYLOADS[1], PAYLOADS[2]: "key"}).id
        ids["fail"] = app.send_task("tests.fail", args=[PAYLOADS[0] + PAYLOADS[1]]).id
        ids["name"] = app.send_task(TASK_NAME, args=[PAYLOADS[3]], queue="nobody-listens").id
    announce_worker(broker, WORKER_NAME)
    wait_for(lambda: monitor.json(f"/api/task/info/{ids['echo']}").get("state") == "SUCCESS", 30,
             message="the echo task to succeed in the monitor")
    wait_for(lambda: monitor.json(f"/api/task/info/{ids['fail']}").get("state") == "FAILURE", 30,
             message="the failing task to fail in the monitor")
    wait_for(lambda: monitor.json(f"/api/task/info/{ids['name']}").get("name") == TASK_NAME, 30,
             message="the oddly named task in the monitor")
    wait_for(lambda: WORKER_NAME in monitor.json("/api/workers"), 30, message="the oddly named worker")
    yield XssCluster(monitor, worker, ids)
    worker.stop()
    monitor.stop()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(http_credentials={"username": PROBE[0], "password": PROBE[1]})
    context.add_init_script(WATCH)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()
    assert not dialogs, dialogs


def assert_inert(page: Page, path: str, must_show: str | None) -> None:
    response = page.goto(path)
    assert response is not None and response.status < 500, f"{path}: {response and response.status}"
    page.wait_for_load_state("networkidle")
    if must_show is not None:
        # The data is on the page as text: the page rendered it, and escaped it.
        page.wait_for_function("text => document.body.innerText.includes(text)", arg=must_show)
    assert page.evaluate("window.__xss") == [], path
    injected = page.evaluate(f"Array.from(document.querySelectorAll({INJECTED!r})).map(e => e.outerHTML)")
    assert injected == [], f"{path}: markup from task data became elements: {injected}"


def test_task_pages_show_markup_as_text(page: Page, xss_cluster: XssCluster) -> None:
    base = xss_cluster.monitor.url
    assert_inert(page, base + "/tasks", MARK)
    assert_inert(page, base + "/tasks?search=" + quote(PAYLOADS[1]), None)
    for kind, task_id in xss_cluster.task_ids.items():
        assert_inert(page, f"{base}/task/{task_id}", MARK if kind != "name" else TASK_NAME)


def test_worker_pages_show_markup_as_text(page: Page, xss_cluster: XssCluster) -> None:
    base = xss_cluster.monitor.url
    assert_inert(page, base + "/", WORKER_NAME)
    assert_inert(page, base + "/workers", WORKER_NAME)
    assert_inert(page, f"{base}/worker/{quote(WORKER_NAME, safe='')}", WORKER_NAME)
    assert_inert(page, base + "/broker", None)
    assert_inert(page, base + "/graphs", None)


def test_urls_with_markup_are_inert(page: Page, xss_cluster: XssCluster) -> None:
    base = xss_cluster.monitor.url
    assert_inert(page, f"{base}/task/{quote(PAYLOADS[1], safe='')}", None)
    assert_inert(page, f"{base}/worker/{quote(PAYLOADS[0], safe='')}", None)
    assert_inert(page, f"{base}/{quote(PAYLOADS[2], safe='')}", None)
    assert_inert(page, f"{base}/login?next={quote(PAYLOADS[2], safe='')}", None)
    assert_inert(page, f"{base}/logout?x={quote(PAYLOADS[0], safe='')}", None)
