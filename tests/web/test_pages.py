"""Every page loads in a real browser, shows real data, and leaves no console errors."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import Console, WebCluster, open_page, wait_until_stored
from support.client import celery_client
from support.processes import wait_for

from celery_monitor.store.query import SORT_KEYS

pytestmark = [pytest.mark.browser, pytest.mark.redis]


@pytest.fixture(scope="module")
def finished_tasks(web_cluster: WebCluster) -> list[str]:
    """A few finished tasks, so the pages and graphs have something to show."""
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        results = [client.send_task("tests.add", (i, i)) for i in range(4)]
        results.append(client.send_task("tests.fail", ("boom",)))
        results.append(client.send_task("tests.sleep", (0.2,)))
        for result in results:
            result.get(timeout=20, propagate=False)
    ids = [r.id for r in results]
    wait_for(lambda: all(web_cluster.monitor.json(f"/api/task/info/{i}")["state"] in ("SUCCESS", "FAILURE")
                         for i in ids), 15, message="the tasks finished in the monitor")
    wait_until_stored(web_cluster.monitor, *ids)
    return ids


def test_workers_page_lists_the_worker_online(page: Page, web_cluster: WebCluster, finished_tasks: list[str],
                                               screenshots: Path) -> None:
    page.goto(web_cluster.monitor.url + "/")
    row = page.locator(f'#workers tr[data-worker="{web_cluster.worker.hostname}"]')
    expect(row).to_contain_text("online")
    expect(row.locator('[data-key="succeeded"]')).not_to_have_text("0")
    expect(page.locator("#live")).to_have_text("live")
    page.screenshot(path=screenshots / "workers.png")


def test_tasks_page_shows_the_configured_columns(page: Page, web_cluster: WebCluster, finished_tasks: list[str],
                                                 screenshots: Path) -> None:
    page.goto(web_cluster.monitor.url + "/tasks")
    headers = page.locator("#tasks thead th")
    expect(headers).to_have_text(["name", "uuid", "state", "args", "result", "received", "runtime", "worker"])
    expect(page.locator(f'#tasks tr[data-uuid="{finished_tasks[-2]}"]')).to_contain_text("FAILURE")
    page.screenshot(path=screenshots / "tasks.png")


def test_tasks_page_sorts_by_the_keys_the_api_sorts_by(page: Page, web_cluster: WebCluster,
                                                       finished_tasks: list[str]) -> None:
    page.goto(web_cluster.monitor.url + "/tasks")
    shown = page.locator("#tasks thead th").all_text_contents()
    expect(page.locator("#tasks thead th.sortable")).to_have_text([c for c in shown if c in SORT_KEYS])
    page.locator('#tasks thead th[data-column="runtime"]').click()
    expect(page.locator('#tasks thead th[data-column="runtime"]')).to_have_attribute("aria-sort", "descending")
    expect(page).to_have_url(re.compile(r"sort_by=-runtime"))
    expect(page.locator(f'#tasks tr[data-uuid="{finished_tasks[0]}"]')).to_be_visible()
    page.locator('#tasks thead th[data-column="args"]').click()
    expect(page).to_have_url(re.compile(r"sort_by=-runtime"))


def test_task_page_shows_fields_and_timeline(page: Page, web_cluster: WebCluster, finished_tasks: list[str],
                                             screenshots: Path) -> None:
    failed = finished_tasks[-2]
    page.goto(f"{web_cluster.monitor.url}/task/{failed}")
    expect(page.locator("#task-state")).to_have_text("FAILURE")
    expect(page.locator('[data-field="exception"]')).to_contain_text("boom")
    expect(page.locator("#timeline li .badge")).to_have_text(["PENDING", "RECEIVED", "STARTED", "FAILURE"])
    expect(page.locator("#revoke")).to_be_disabled()
    expect(page.locator("#rerun")).to_be_enabled()
    page.screenshot(path=screenshots / "task.png", full_page=True)


def test_worker_page_shows_inspect_tabs(page: Page, web_cluster: WebCluster, screenshots: Path) -> None:
    page.goto(f"{web_cluster.monitor.url}/worker/{quote(web_cluster.worker.hostname)}")
    expect(page.locator("#worker-status")).to_have_text("online")
    expect(page.locator('#pool-info [data-field="max-concurrency"]')).not_to_be_empty()
    page.screenshot(path=screenshots / "worker.png", full_page=True)
    page.get_by_role("tab", name="Tasks").click()
    expect(page.locator('[data-list="registered"]')).to_contain_text("tests.add")
    page.get_by_role("tab", name="Queues").click()
    expect(page.locator('#queues tr[data-queue="celery"]')).to_be_visible()


def test_broker_page_lists_the_queue(page: Page, web_cluster: WebCluster, screenshots: Path) -> None:
    wait_for(lambda: web_cluster.monitor.json("/api/queues/length")["active_queues"], 15, message="a queue polled")
    page.goto(web_cluster.monitor.url + "/broker")
    expect(page.locator('#broker-queues tr[data-queue="celery"]')).to_be_visible()
    expect(page.locator("#live")).to_have_text("live")
    page.screenshot(path=screenshots / "broker.png", full_page=True)


def test_graphs_page_draws_graphs(page: Page, web_cluster: WebCluster, finished_tasks: list[str],
                                  screenshots: Path) -> None:
    # The timeline samples every couple of seconds; wait for points that cover the finished tasks.
    wait_for(lambda: len(web_cluster.monitor.json("/ui/graphs.json")["points"]) >= 2, 15, message="samples")
    page.goto(web_cluster.monitor.url + "/graphs")
    expect(page.get_by_role("link", name="Graphs", exact=True)).to_have_attribute("aria-current", "page")
    for chart in ("throughput", "failures", "queues", "workers"):
        expect(page.locator(f"#chart-{chart} canvas")).to_have_count(1)
    # A series named after a state takes the state's colour: the page knows the states from the server.
    success = page.locator("#chart-throughput .u-legend tr", has_text="SUCCESS").locator(".u-marker")
    expect(success).to_have_css("border-color", "rgb(59, 125, 79)")
    page.screenshot(path=screenshots / "graphs.png", full_page=True)


def test_the_graphs_old_address_redirects(page: Page, web_cluster: WebCluster) -> None:
    # "Monitor" names the product; a bookmark of the graphs' first address still finds them.
    response = httpx.get(web_cluster.monitor.url + "/monitor?from=bookmark", auth=web_cluster.monitor.auth)
    assert response.status_code == 301 and response.headers["location"] == "/graphs?from=bookmark"
    page.goto(web_cluster.monitor.url + "/monitor")
    expect(page).to_have_url(web_cluster.monitor.url + "/graphs")
    expect(page.locator("h1")).to_have_text("Graphs")


def test_dark_theme_on_a_phone(browser: Browser, console: Console, web_cluster: WebCluster,
                               finished_tasks: list[str], screenshots: Path) -> None:
    page = open_page(browser, console, color_scheme="dark", viewport={"width": 390, "height": 844})
    try:
        page.goto(web_cluster.monitor.url + "/tasks")
        expect(page.locator("#tasks tbody tr").first).to_have_attribute("data-uuid", re.compile(r".+"))
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 22, 28)", background
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= 390, f"the page scrolls sideways on a phone: {page_width}px"
        page.screenshot(path=screenshots / "tasks-dark-phone.png")
        page.locator("#theme").click()
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
    finally:
        page.context.close()
    assert not console.errors, console.errors


def test_pages_and_their_data_need_the_login(web_cluster: WebCluster) -> None:
    for path in ("/tasks", "/ui/tasks.json", "/live"):
        assert httpx.get(web_cluster.monitor.url + path).status_code == 401, path
    assert httpx.get(web_cluster.monitor.url + "/static/dist/app.js").status_code == 200
