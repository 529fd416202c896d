"""The workflow page in Chromium: a chord drawn live, reached from a task's page; revoking what is left;
no control for read-only users; task data redacted and shown as text, however hostile."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import chain, chord, group
from playwright.sync_api import Browser, Page, expect
from support.browser import AUTH, Console, WebCluster, open_page
from support.client import celery_client
from support.processes import MonitorProcess, new_monitor, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]

SECRET = "hunter2-secret"
VIEWER = ("viewer", "v1ewer-pw")


@pytest.fixture(scope="module")
def read_only_monitor(web_cluster: WebCluster) -> Iterator[MonitorProcess]:
    """A second monitor of the same cluster, with a read-only user, redacting each task's second argument."""
    tmp = web_cluster.tmp / "workflow-read-only"
    tmp.mkdir(exist_ok=True)
    monitor = new_monitor(web_cluster.broker, tmp, "--redact=args.1", f"--read_only_users={VIEWER[0]}",
                          f"--basic_auth={AUTH[0]}:{AUTH[1]},{VIEWER[0]}:{VIEWER[1]}", auth=AUTH).start()
    yield monitor
    monitor.stop()


def send_chord(web_cluster: WebCluster, seconds: float, size: int, secret: str = "x") -> str:
    """add(1, 1) then a chord of ``size`` holds and an echo: the root task's id."""
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        header = group(client.signature("tests.hold", args=(seconds, f"{secret}-{i}"), immutable=True)
                       for i in range(size))
        result = chain(client.signature("tests.add", args=(1, 1), immutable=True),
                       chord(header, client.signature("tests.echo"))).delay()
        root_id: str = result.parent.parent.id
    del client, result, header  # results and their client hold each other: collect them while
    gc.collect()  # their Redis answers, or each complains later that it cannot unsubscribe
    return root_id


def test_a_chord_is_drawn_live_and_reached_from_its_tasks(page: Page, web_cluster: WebCluster,
                                                          screenshots: Path) -> None:
    monitor = web_cluster.monitor
    root_id = send_chord(web_cluster, 2.0, 4)
    page.goto(f"{monitor.url}/workflow/{root_id}")
    page.evaluate("window.__samePage = true")
    nodes = page.locator("#workflow-graph g.wf-node")
    # Pushed live: the header runs, then the callback appears, without reloading the page.
    expect(page.locator('#workflow-graph g.wf-node[data-state="STARTED"]').first).to_be_visible(timeout=20_000)
    expect(nodes).to_have_count(6, timeout=30_000)
    expect(page.locator('#workflow-graph g.wf-node[data-state="SUCCESS"]')).to_have_count(6, timeout=30_000)
    assert page.evaluate("window.__samePage") is True
    expect(page.locator("#workflow-graph path.wf-joined")).to_have_count(3)
    expect(page.locator("#workflow-graph path.wf-spawned")).to_have_count(5)
    expect(page.locator(f'#workflow-graph g.wf-node[data-id="{root_id}"]')).to_have_attribute("data-layer", "0")
    expect(page.locator("#workflow-summary")).to_contain_text("6 task(s): 6 SUCCESS")
    expect(page.locator("#workflow-graph g.wf-node.wf-slowest")).to_have_count(3)
    page.screenshot(path=screenshots / "workflow.png")
    callback = page.locator('#workflow-graph g.wf-node[data-layer="2"]')
    callback_id = callback.get_attribute("data-id")
    page.goto(f"{monitor.url}/task/{callback_id}")
    link = page.locator("#workflow-link")
    expect(link).to_be_visible()
    link.click()
    expect(page).to_have_url(f"{monitor.url}/workflow/{root_id}")
    expect(nodes).to_have_count(6)


def test_revoke_the_workflow_for_admins_only_and_redacted_args(page: Page, web_cluster: WebCluster, browser: Browser,
                                                               console: Console,
                                                               read_only_monitor: MonitorProcess) -> None:
    monitor = web_cluster.monitor
    root_id = send_chord(web_cluster, 60, 4, secret=SECRET)
    try:
        page.goto(f"{monitor.url}/workflow/{root_id}")
        expect(page.locator("#workflow-graph g.wf-node")).to_have_count(5, timeout=30_000)
        # As many run as the worker's pool takes (other tests may have grown it); the rest wait.
        expect(page.locator('#workflow-graph g.wf-node[data-state="STARTED"]').first).to_be_visible(timeout=30_000)
        button = page.locator("#revoke-workflow")
        expect(button).to_be_enabled()
        page.once("dialog", lambda dialog: dialog.accept())
        button.click()
        expect(page.locator("#flash")).to_contain_text("Revoked 4 task(s) of the workflow")
        expect(page.locator('#workflow-graph g.wf-node[data-state="REVOKED"]')).to_have_count(4, timeout=30_000)
        expect(button).to_be_disabled()
    finally:  # never leave minute-long tasks in the shared worker's pool
        monitor.client.post(f"/api/workflow/{root_id}/revoke", params={"terminate": "true"})

    # A read-only user: the same workflow, no control, and the redacted argument never reaches the page.
    wait_for(lambda: len(read_only_monitor.json(f"/api/workflow/{root_id}")["nodes"]) == 5, 20,
             message="the workflow in the second monitor")
    viewer = open_page(browser, console, auth=VIEWER)
    try:
        viewer.goto(f"{read_only_monitor.url}/workflow/{root_id}")
        expect(viewer.locator("#workflow-graph g.wf-node")).to_have_count(5)
        expect(viewer.locator("#revoke-workflow, #workflow-terminate")).to_have_count(0)
        expect(viewer.locator("#workflow-tasks")).to_contain_text("[redacted]")
        assert SECRET not in viewer.content()
    finally:
        viewer.context.close()
    assert SECRET not in str(read_only_monitor.json(f"/api/workflow/{root_id}"))
    refused = read_only_monitor.client.post(f"/api/workflow/{root_id}/revoke", auth=VIEWER)
    assert refused.status_code == 403 and "Read-only access" in refused.json()["error"]


def test_hostile_task_names_and_args_are_shown_as_text(page: Page, web_cluster: WebCluster) -> None:
    monitor = web_cluster.monitor
    name = '<img src="x" onerror="window.__injected = 1">'
    script = "<script>window.__injected = 2</script>"
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        root = client.send_task("tests.echo", (script,))
        root.get(timeout=15)
        # A task of a hostile name, sent as a step of that workflow (no worker knows it: it stays sent).
        client.send_task(name, (script, '"><svg onload="window.__injected = 3">'), root_id=root.id,
                         parent_id=root.id)
        root_id = root.id
    del client, root  # results and their client hold each other: collect them while
    gc.collect()  # their Redis answers, or each complains later that it cannot unsubscribe
    wait_for(lambda: len(monitor.json(f"/api/workflow/{root_id}")["nodes"]) == 2, 20,
             message="the hostile task in the workflow")
    page.goto(f"{monitor.url}/workflow/{root_id}")
    expect(page.locator("#workflow-graph g.wf-node")).to_have_count(2)
    expect(page.locator("#workflow-graph text.wf-name").nth(1)).to_have_text(name[:27] + "…")
    expect(page.locator("#workflow-tasks")).to_contain_text(name)
    expect(page.locator("#workflow-tasks")).to_contain_text(script)
    assert page.locator("main img, main script, #workflow-graph svg svg, #workflow-tasks svg").count() == 0
    assert page.evaluate("window.__injected") is None
