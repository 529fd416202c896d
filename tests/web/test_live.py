"""The tasks table and task page follow the cluster live, without a reload; filters narrow the table."""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.sync_api import Page, expect
from support.browser import AUTH, Console, WebCluster, wait_until_stored
from support.client import celery_client
from support.processes import new_monitor

pytestmark = [pytest.mark.browser, pytest.mark.redis]

PUSH_DEADLINE_MS = 2000


def mark_page(page: Page) -> None:
    """A property that a reload would wipe out."""
    page.evaluate("window.__stillTheSamePage = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"


def wait_until_every_row(page: Page, predicate: str) -> None:
    """Wait for the table to hold rows and for every one to satisfy ``predicate`` (JS, given a row)."""
    page.wait_for_function(
        f"() => {{ const rows = [...document.querySelectorAll('#tasks tbody tr[data-uuid]')];"
        f" return rows.length > 0 && rows.every(row => {predicate}); }}", timeout=5000)


def test_a_new_task_appears_and_changes_state_without_reload(page: Page, web_cluster: WebCluster) -> None:
    page.goto(web_cluster.monitor.url + "/tasks")
    expect(page.locator("#live")).to_have_text("live")
    mark_page(page)
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        result = client.send_task("tests.sleep", (1.5,))
        row = page.locator(f'#tasks tr[data-uuid="{result.id}"]')
        expect(row).to_be_visible(timeout=PUSH_DEADLINE_MS)
        expect(row).to_have_attribute("data-state", "STARTED", timeout=PUSH_DEADLINE_MS)
        result.get(timeout=10)
    finished = time.monotonic()
    expect(row).to_have_attribute("data-state", "SUCCESS", timeout=PUSH_DEADLINE_MS)
    assert time.monotonic() - finished < PUSH_DEADLINE_MS / 1000
    expect(row.locator('[data-column="result"]')).to_have_text("1.5")
    assert_not_reloaded(page)


def test_the_task_page_follows_its_task_and_terminate_reaches_the_worker(page: Page,
                                                                          web_cluster: WebCluster) -> None:
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        result = client.send_task("tests.sleep", (30,))
        page.goto(f"{web_cluster.monitor.url}/task/{result.id}")
        mark_page(page)
        expect(page.locator("#task-state")).to_have_text("STARTED", timeout=10_000)
        page.once("dialog", lambda dialog: dialog.accept())
        with page.expect_request(lambda r: r.method == "POST" and "/api/task/revoke/" in r.url) as posted:
            page.locator("#terminate").click()
        assert posted.value.url.endswith(f"/api/task/revoke/{result.id}?terminate=true")
        assert posted.value.headers["x-requested-with"] == "celery-monitor"
        expect(page.locator("#task-state")).to_have_text("REVOKED", timeout=10_000)
        expect(page.locator("#rerun")).to_be_enabled()
    assert_not_reloaded(page)


def test_filters_and_search_narrow_the_table(page: Page, web_cluster: WebCluster) -> None:
    token = f"needle-{uuid.uuid4().hex[:8]}"
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        wanted = client.send_task("tests.echo", (token, 1))
        others = [client.send_task("tests.add", (i, 1)) for i in range(3)]
        failed = client.send_task("tests.fail", (token,))
        for result in [wanted, *others, failed]:
            result.get(timeout=15, propagate=False)
    wait_until_stored(web_cluster.monitor, wanted.id, failed.id, *(r.id for r in others))
    page.goto(web_cluster.monitor.url + "/tasks")
    rows = page.locator("#tasks tbody tr")
    expect(page.locator(f'#tasks tr[data-uuid="{failed.id}"]')).to_be_visible()
    all_rows = rows.count()

    page.locator('select[name="taskname"]').select_option("tests.add")
    wait_until_every_row(page, "row.querySelector('[data-column=name]').textContent === 'tests.add'")
    assert rows.count() < all_rows

    page.locator('select[name="taskname"]').select_option("")
    page.locator('select[name="state"]').select_option("FAILURE")
    wait_until_every_row(page, "row.dataset.state === 'FAILURE'")
    expect(page.locator(f'#tasks tr[data-uuid="{failed.id}"]')).to_be_visible()

    page.locator('select[name="state"]').select_option("")
    page.locator('input[name="search"]').fill(f"args:{token}")
    expect(rows).to_have_count(2)  # the echo and the failing task carry the token
    page.locator('input[name="search"]').fill(f"args:{token} state:SUCCESS")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-uuid", wanted.id)
    # The filters live in the address, so the narrowed table survives a reload and can be shared.
    page.reload()
    expect(rows).to_have_count(1)
    expect(page.locator('input[name="search"]')).to_have_value(f"args:{token} state:SUCCESS")


def test_columns_are_reordered_by_dragging_and_stay_so(page: Page, web_cluster: WebCluster) -> None:
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        added = client.send_task("tests.add", (1, 1))
        added.get(timeout=10)
    wait_until_stored(web_cluster.monitor, added.id)
    page.goto(web_cluster.monitor.url + "/tasks")
    headers = page.locator("#tasks thead th")
    expect(headers.first).to_have_text("name")
    expect(page.locator("#tasks tbody tr[data-uuid]").first).to_be_visible()  # the page's script is running
    page.locator('#tasks th[data-column="state"]').drag_to(page.locator('#tasks th[data-column="name"]'))
    expect(headers.first).to_have_text("state")
    expect(page.locator("#tasks tbody tr").first.locator("td").first).to_have_attribute("data-column", "state")
    page.reload()
    expect(headers.first).to_have_text("state")


def test_markup_in_task_data_is_shown_as_text(page: Page, web_cluster: WebCluster) -> None:
    script = "<script>window.__injected = 1</script>"
    image = '<img src="x" onerror="window.__injected = 2">'
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        result = client.send_task("tests.echo", (script, image), {"html": "<b>bold</b>"})
        result.get(timeout=15)
    wait_until_stored(web_cluster.monitor, result.id)
    page.goto(web_cluster.monitor.url + "/tasks")
    args = page.locator(f'#tasks tr[data-uuid="{result.id}"] [data-column="args"]')
    expect(args).to_contain_text(script)
    expect(args).to_contain_text(image)
    assert page.locator("#tasks img, #tasks script, #tasks b").count() == 0

    page.goto(f"{web_cluster.monitor.url}/task/{result.id}")
    expect(page.locator('[data-field="kwargs"]')).to_contain_text("<b>bold</b>")
    expect(page.locator('[data-field="result"]')).to_contain_text(script)
    assert page.locator("main img, main script, main b").count() == 0
    assert page.evaluate("window.__injected") is None


def test_the_page_shows_a_lost_link_and_reconnects(page: Page, console: Console, web_cluster: WebCluster) -> None:
    tmp = web_cluster.tmp / "restarted"
    tmp.mkdir(exist_ok=True)
    monitor = new_monitor(web_cluster.broker, tmp, auth=AUTH).start()
    try:
        page.goto(monitor.url + "/tasks")
        live = page.locator("#live")
        expect(live).to_have_attribute("data-state", "live")
        mark_page(page)
        monitor.stop()
        expect(live).to_have_attribute("data-state", "down")
        expect(live).to_contain_text("disconnected")
        monitor.start()
        expect(live).to_have_attribute("data-state", "live", timeout=20_000)
        with celery_client(web_cluster.broker, web_cluster.backend) as client:
            result = client.send_task("tests.add", (4, 4))
            expect(page.locator(f'#tasks tr[data-uuid="{result.id}"]')).to_be_visible(timeout=PUSH_DEADLINE_MS)
        assert_not_reloaded(page)
    finally:
        page.goto("about:blank")  # or the page tries again after the stop, and logs the refusal later
        monitor.stop()
    # While the monitor was down the browser itself logged the refused connections: expected here.
    console.errors[:] = [e for e in console.errors if "ERR_CONNECTION_REFUSED" not in e
                         and "WebSocket connection" not in e]
