"""The failures page in Chromium: groups with counts and trends, a group's traceback and tasks
(linking to their pages), a group re-run after a dry-run count and a confirmation; markup in an
exception's type and message shown as text, never run; no buttons for a read-only monitor."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect
from support.browser import WebCluster
from support.client import celery_client
from support.processes import MonitorProcess, new_monitor, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]

MARK = "XSSMARK"
HOSTILE_MESSAGE = f'<img src=x onerror=alert("{MARK}-message")><script>alert("{MARK}-script")</script>'
# An exception type is cut at its first "(" (ValueError('x') -> ValueError): this one has none.
HOSTILE_KIND = f"Xss{uuid.uuid4().hex[:6]}<svg onload=alert`{MARK}-type`>"
WATCH = """
window.__xss = [];
window.alert = (message) => window.__xss.push('alert:' + message);
"""
INJECTED = "img[src='x'], [onerror], [onload], svg, script:not([src])"


def group_count(monitor: MonitorProcess, name: str, kind: str) -> int:
    page = monitor.json("/api/failures/tasks", params={"name": name, "exception": kind})
    return int(page["total"])


def watch(page: Page) -> list[str]:
    """Confirmations are accepted (and kept); any other dialog is script from task data."""
    page.context.add_init_script(WATCH)
    seen: list[str] = []

    def answer(dialog: Dialog) -> None:
        seen.append(f"{dialog.type}:{dialog.message}")
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    return seen


def assert_inert(page: Page) -> None:
    assert page.evaluate("window.__xss") == []
    injected = page.evaluate(f"Array.from(document.querySelectorAll({INJECTED!r}))"
                             ".filter(e => e.closest('main')).map(e => e.outerHTML)")
    assert injected == [], f"markup from task data became elements: {injected}"


def test_failure_groups_page_shows_hostile_text_and_reruns_a_group(page: Page, web_cluster: WebCluster) -> None:
    monitor = web_cluster.monitor
    dialogs = watch(page)
    with celery_client(web_cluster.broker, web_cluster.backend) as app:
        hostile = [app.send_task("tests.fail_as", (HOSTILE_KIND, f"{HOSTILE_MESSAGE} #{i}")).id for i in range(2)]
    wait_for(lambda: group_count(monitor, "tests.fail_as", HOSTILE_KIND) == 2, 30, message="the hostile group")

    page.goto(monitor.url + "/failures")
    row = page.locator("#failure-groups tbody tr").filter(has_text=HOSTILE_KIND)
    expect(row).to_have_count(1)
    expect(row.locator('[data-column="exception"]')).to_have_text(HOSTILE_KIND)
    expect(row.locator('[data-column="count"]')).to_have_text("2")
    expect(row.locator('[data-column="status"] .badge')).to_have_text("new")
    expect(row.locator(".trend span")).to_have_count(12)
    assert_inert(page)

    row.click()
    expect(page.locator("#group-exception")).to_have_text(HOSTILE_KIND)
    expect(page.locator("#group-total")).to_have_text("2")
    expect(page.locator("#group-sample")).to_contain_text(HOSTILE_MESSAGE)
    links = page.locator("#group-tasks tbody tr a")
    expect(links).to_have_count(2)
    assert {href.rsplit("/", 1)[-1] for href in links.evaluate_all("as => as.map(a => a.href)")} == set(hostile)
    assert_inert(page)
    # The address names the group: a reload (or a shared link) opens it again.
    page.reload()
    expect(page.locator("#group-total")).to_have_text("2")
    expect(page.locator("#group-tasks tbody tr")).to_have_count(2)
    assert_inert(page)

    # Re-run the group: a dry-run count, a confirmation naming it, then the re-runs (audited).
    page.evaluate("window.__stillTheSamePage = true")  # a reload would wipe it out
    page.locator("#group-rerun").click()
    expect(page.locator("#group-action-result")).to_contain_text("Re-ran 2 of 2 task(s)")
    assert [d for d in dialogs if d.startswith("confirm:")] == [
        f"confirm:Re-run 2 task(s) of tests.fail_as · {HOSTILE_KIND}?"]
    assert not [d for d in dialogs if not d.startswith("confirm:")], dialogs
    wait_for(lambda: group_count(monitor, "tests.fail_as", HOSTILE_KIND) == 4, 30, message="the re-runs failed")
    # Pushed live: the re-runs' failures join the group on the open page, without a reload.
    expect(row.locator('[data-column="count"]')).to_have_text("4")
    expect(page.locator("#group-total")).to_have_text("4")
    expect(page.locator("#group-tasks tbody tr")).to_have_count(4)
    assert page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"
    entries = monitor.json("/api/audit", params={"action": "failures.rerun"})["entries"]
    assert [entry["result"].get("dry_run") for entry in entries[:2]] == [False, True]

    # A task's link opens its page.
    target = links.first.get_attribute("href")
    assert target is not None and target.startswith("/task/")  # the group's latest: a re-run now
    links.first.click()
    expect(page).to_have_url(monitor.url + target.removeprefix(monitor.prefix))
    expect(page.locator("#task-state")).to_have_text("FAILURE")
    assert_inert(page)

    # The audit trail links the group action back to its group.
    page.goto(f"{monitor.url}/audit?action=failures.rerun")
    page.locator('#audit tr[data-action="failures.rerun"] a[title="Open its page"]').first.click()
    expect(page.locator("#group-exception")).to_have_text(HOSTILE_KIND)
    expect(page.locator("#group-total")).to_have_text("4")
    assert_inert(page)


def test_a_read_only_monitor_shows_failures_without_buttons(browser: Browser, web_cluster: WebCluster,
                                                            tmp_path: Path) -> None:
    monitor = new_monitor(web_cluster.broker, tmp_path, "--read_only").start(timeout=60)
    try:
        kind = f"ReadOnly{uuid.uuid4().hex[:6]}"
        with celery_client(web_cluster.broker, web_cluster.backend) as app:
            app.send_task("tests.fail_as", (kind, "seen, not acted on"))
        wait_for(lambda: group_count(monitor, "tests.fail_as", kind) == 1, 30, message="the group")
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{monitor.url}/failures")
            page.locator("#failure-groups tbody tr").filter(has_text=kind).click()
            expect(page.locator("#group-sample")).to_contain_text("seen, not acted on")
            expect(page.locator("#group-actions")).to_have_count(0)
            expect(page.locator("button", has_text="Re-run")).to_have_count(0)
        finally:
            context.close()
    finally:
        monitor.stop()
