"""A task whose final event never came, settled from the result backend: the timeline says so."""

from __future__ import annotations

import os
import signal

import pytest
from playwright.sync_api import Page, expect
from support.browser import WebCluster
from support.client import celery_client
from support.processes import kill9_with_pool, start_worker, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]


def test_the_timeline_names_where_a_state_came_from(page: Page, web_cluster: WebCluster) -> None:
    monitor = web_cluster.monitor
    worker = start_worker(web_cluster.broker, "w-hung", web_cluster.tmp, "-Q", "hung", "--heartbeat-interval=1",
                          backend=web_cluster.backend)
    try:
        with celery_client(web_cluster.broker, web_cluster.backend) as client:
            task_id = client.send_task("tests.sleep", (2,), queue="hung").id
        wait_for(lambda: monitor.json(f"/api/task/info/{task_id}")["state"] == "STARTED", 40, message="started")
        # The worker hangs: no heartbeat, no final event; its pool process finishes and stores the result.
        os.kill(worker.process.pid, signal.SIGSTOP)
        wait_for(lambda: monitor.json(f"/api/task/info/{task_id}")["state"] == "SUCCESS", 40, interval=0.2,
                 message="the task LOST, then reconciled")
    finally:
        kill9_with_pool(worker)  # stopped as it is: resumed, it would send the final event after all

    page.goto(f"{monitor.url}/task/{task_id}")
    expect(page.locator("#task-state")).to_have_text("SUCCESS")
    expect(page.locator("#timeline li .badge")).to_have_text(["PENDING", "RECEIVED", "STARTED", "LOST", "SUCCESS"])
    expect(page.locator("#timeline li").nth(3)).to_contain_text("(worker offline)")
    expect(page.locator("#timeline li").last).to_contain_text("(reconciled from the result backend)")
    expect(page.locator("#timeline li").nth(2)).not_to_contain_text("(")  # an event's transition: no reason
    expect(page.locator('[data-field="result"]')).to_have_text("2")
