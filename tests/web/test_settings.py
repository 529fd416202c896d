"""--read_only hides every control, --auto_refresh=False stops pushes, --natural_time=False shows dates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect
from support.browser import AUTH, WebCluster, wait_until_stored
from support.client import celery_client
from support.processes import MonitorProcess, new_monitor, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]


@pytest.fixture(scope="module")
def quiet_monitor(web_cluster: WebCluster) -> Iterator[MonitorProcess]:
    monitor = new_monitor(web_cluster.broker, web_cluster.tmp / "quiet", "--read_only", "--auto_refresh=False",
                          "--natural_time=False", auth=AUTH)
    (web_cluster.tmp / "quiet").mkdir(exist_ok=True)
    monitor.start()
    wait_for(lambda: monitor.json("/api/workers?status=true").get(web_cluster.worker.hostname), 30,
             message="the worker online in the second monitor")
    yield monitor
    monitor.stop()


def test_read_only_pages_have_no_controls(page: Page, web_cluster: WebCluster, quiet_monitor: MonitorProcess) -> None:
    page.goto(f"{quiet_monitor.url}/worker/{quote(web_cluster.worker.hostname)}")
    expect(page.locator("#worker-status")).to_have_text("online")
    expect(page.locator("form.control")).to_have_count(0)
    page.get_by_role("tab", name="Queues").click()
    expect(page.locator('#queues tr[data-queue="celery"]')).to_be_visible()
    expect(page.locator("#queues button")).to_have_count(0)
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        result = client.send_task("tests.add", (1, 2))
        result.get(timeout=10)
    wait_for(lambda: quiet_monitor.json(f"/api/task/info/{result.id}")["state"] == "SUCCESS", 10,
             message="the task finished in the second monitor")
    page.goto(f"{quiet_monitor.url}/task/{result.id}")
    expect(page.locator("#task-state")).to_have_text("SUCCESS")
    expect(page.locator("#revoke, #terminate, #rerun")).to_have_count(0)


def test_without_auto_refresh_nothing_is_pushed(page: Page, web_cluster: WebCluster,
                                                quiet_monitor: MonitorProcess) -> None:
    page.goto(f"{quiet_monitor.url}/tasks")
    expect(page.locator("#live")).to_have_text("live updates off")
    # The indicator is set before the first fetch ends: a task run before it ends would be fetched, not pushed.
    expect(page.locator("#page-info")).to_contain_text(" of ")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        result = client.send_task("tests.add", (2, 3))
        result.get(timeout=10)
    wait_for(lambda: quiet_monitor.json(f"/api/task/info/{result.id}")["state"] == "SUCCESS", 10,
             message="the task finished in the second monitor")
    wait_until_stored(quiet_monitor, result.id)
    expect(page.locator(f'#tasks tr[data-uuid="{result.id}"]')).to_have_count(0)
    assert sockets == []
    page.reload()
    expect(page.locator(f'#tasks tr[data-uuid="{result.id}"]')).to_be_visible()


def test_absolute_times(page: Page, quiet_monitor: MonitorProcess) -> None:
    page.goto(f"{quiet_monitor.url}/tasks")
    received = page.locator('#tasks tbody tr td[data-column="received"]').first
    expect(received).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$"))
