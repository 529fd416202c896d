"""A task lost with its worker: its own badge on the tasks page, the state filter, the timeline's reason."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from support.browser import WebCluster
from support.client import celery_client
from support.processes import kill9_with_pool, start_worker, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]


def test_a_lost_task_has_its_badge_its_filter_and_its_reason(page: Page, web_cluster: WebCluster) -> None:
    monitor = web_cluster.monitor
    worker = start_worker(web_cluster.broker, "w-doomed", web_cluster.tmp, "-Q", "doomed", "--heartbeat-interval=1",
                          backend=web_cluster.backend)
    try:
        with celery_client(web_cluster.broker, web_cluster.backend) as client:
            task_id = client.send_task("tests.hold", (300,), queue="doomed").id
        wait_for(lambda: monitor.json(f"/api/task/info/{task_id}")["state"] == "STARTED", 40, message="started")
    finally:
        kill9_with_pool(worker)
    wait_for(lambda: monitor.json(f"/api/task/info/{task_id}")["state"] == "LOST", 20, message="the task LOST")

    page.goto(monitor.url + "/tasks")
    page.locator("#task-filters select[name=state]").select_option("LOST")
    rows = page.locator("#tasks tbody tr")
    expect(rows).to_have_count(1)
    badge = page.locator(f'#tasks tr[data-uuid="{task_id}"] .badge.state-lost')
    expect(badge).to_have_text("LOST")
    # Its own colour: not the plain one of the states without a style of their own.
    plain = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--line').trim()")
    assert badge.evaluate("b => getComputedStyle(b).backgroundColor") not in ("", plain)

    page.goto(f"{monitor.url}/task/{task_id}")
    expect(page.locator("#task-state")).to_have_text("LOST")
    expect(page.locator("#timeline li .badge")).to_have_text(["PENDING", "RECEIVED", "STARTED", "LOST"])
    expect(page.locator("#timeline li").last).to_contain_text("(worker offline)")
