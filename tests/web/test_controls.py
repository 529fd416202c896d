"""The worker page's controls reach the real worker through the control API."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect
from support.browser import WebCluster
from support.processes import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]


def pool_size(cluster: WebCluster) -> int:
    name = cluster.worker.hostname
    details = cluster.monitor.json(f"/api/workers?refresh=true&workername={quote(name)}")[name]
    return len(details["stats"]["pool"]["processes"])


def test_pool_grow_reaches_the_worker(page: Page, web_cluster: WebCluster) -> None:
    before = wait_for(lambda: pool_size(web_cluster), 10, message="the worker inspected")
    page.goto(f"{web_cluster.monitor.url}/worker/{quote(web_cluster.worker.hostname)}")
    processes = page.locator('#pool-info [data-field="processes"]')
    expect(processes).not_to_be_empty()
    assert len(json.loads(processes.inner_text())) == before

    form = page.locator('form[data-action="pool-grow"]')
    form.locator('input[name="n"]').fill("1")
    with page.expect_response(lambda r: r.request.method == "POST" and "/api/worker/pool/grow/" in r.url) as reply:
        form.get_by_role("button", name="Grow").click()
    assert reply.value.url.endswith(f"/api/worker/pool/grow/{quote(web_cluster.worker.hostname, safe='')}?n=1")
    assert reply.value.request.headers["x-requested-with"] == "celery-monitor"
    assert reply.value.status == 200, reply.value.text()
    expect(page.locator("#flash")).to_be_visible()

    wait_for(lambda: pool_size(web_cluster) == before + 1, 10, message="the worker's pool to grow")
    page.locator("#refresh").click()
    wait_for(lambda: len(json.loads(processes.inner_text())) == before + 1, 10,
             message="the worker page to show the grown pool")


def test_a_rate_limit_set_on_the_limits_tab_reaches_the_worker(page: Page, web_cluster: WebCluster) -> None:
    page.goto(f"{web_cluster.monitor.url}/worker/{quote(web_cluster.worker.hostname)}")
    expect(page.locator("#worker-status")).to_have_text("online")
    page.get_by_role("tab", name="Limits").click()
    rate = page.locator('#limits tr[data-task="tests.echo"] [data-limit="rate_limit"]')
    expect(rate).to_have_text("—")
    form = page.locator('form[data-action="rate-limit"]')
    form.locator('input[name="task"]').fill("tests.echo")
    form.locator('input[name="ratelimit"]').fill("100/m")
    with page.expect_response(lambda r: "/api/task/rate-limit/tests.echo" in r.url) as reply:
        form.get_by_role("button", name="Set rate limit").click()
    assert reply.value.status == 200, reply.value.text()
    expect(rate).to_have_text("100/m")  # read back from the worker by a fresh inspect
