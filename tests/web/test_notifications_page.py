"""The notifications page: channels with their secrets masked, rules, the delivery log, and a test button for admins."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import Console, WebCluster, open_page
from support.notify_receivers import HttpReceiver
from support.processes import MonitorProcess, new_monitor

pytestmark = [pytest.mark.browser, pytest.mark.redis]

ADMIN = ("admin", "adm1n-pass")
VIEWER = ("viewer", "v1ewer-pass")
KEY = "page-hmac-SECRET-777"


@pytest.fixture(scope="module")
def notifying(web_cluster: WebCluster, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[MonitorProcess, HttpReceiver]]:
    tmp: Path = tmp_path_factory.mktemp("notify-page")
    receiver = HttpReceiver().start()
    conf = tmp / "conf.py"
    conf.write_text("notifications = " + repr({
        "channels": {"team-hook": {"kind": "webhook", "url": f"{receiver.url}/hook/{KEY}", "secret": KEY}},
        "rules": {"failures": {"kind": "task_failed", "tasks": ["billing.*"], "window": 120,
                               "channels": ["team-hook"]}},
    }) + "\n")
    monitor = new_monitor(web_cluster.broker, tmp, f"--conf={conf}", f"--read_only_users={VIEWER[0]}",
                          f"--basic_auth={ADMIN[0]}:{ADMIN[1]},{VIEWER[0]}:{VIEWER[1]}", auth=ADMIN).start()
    yield monitor, receiver
    monitor.stop()
    receiver.stop()


def test_an_admin_sends_a_test_and_sees_it_in_the_log(browser: Browser, console: Console,
                                                      notifying: tuple[MonitorProcess, HttpReceiver]) -> None:
    monitor, receiver = notifying
    page = open_page(browser, console, auth=ADMIN)
    try:
        page.goto(monitor.url + "/notifications")
        channel = page.locator('#channels tr[data-name="team-hook"]')
        expect(channel).to_contain_text("webhook")
        expect(channel).to_contain_text("http://127.0.0.1")
        expect(page.locator('#rules tr[data-name="failures"]')).to_contain_text("tasks billing.*")
        expect(page.locator("#deliveries tbody")).to_contain_text("Nothing sent yet")
        channel.locator("button.send-test").click()
        expect(page.locator("#flash")).to_have_text("Test message delivered on team-hook")
        row = page.locator('#deliveries tr[data-outcome="delivered"]')
        expect(row).to_have_count(1)
        expect(row).to_contain_text("team-hook")
        assert len(receiver.at(f"/hook/{KEY}")) == 1
        assert KEY not in page.content()
    finally:
        page.context.close()
    assert not console.errors, "\n".join(console.errors)


def test_a_read_only_user_sees_the_page_without_controls(browser: Browser, console: Console,
                                                         notifying: tuple[MonitorProcess, HttpReceiver]) -> None:
    monitor, _ = notifying
    page: Page = open_page(browser, console, auth=VIEWER)
    try:
        page.goto(monitor.url + "/notifications")
        expect(page.locator('#channels tr[data-name="team-hook"]')).to_contain_text("webhook")
        expect(page.locator("button.send-test")).to_have_count(0)
        expect(page.locator("#channels thead th")).to_have_count(4)
        expect(page.locator("#rules thead th")).to_have_count(7)
        expect(page.locator("#notify-edit")).to_have_count(0)
        assert KEY not in page.content()
    finally:
        page.context.close()
    assert not console.errors, "\n".join(console.errors)


def test_an_admin_adds_changes_and_deletes_a_rule_from_the_page(browser: Browser, console: Console,
                                                                notifying: tuple[MonitorProcess, HttpReceiver]) -> None:
    monitor, _ = notifying
    page = open_page(browser, console, auth=ADMIN)
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        page.goto(monitor.url + "/notifications")
        # The config file's rule is changed there: no edit or delete for it here.
        expect(page.locator('#rules tr[data-name="failures"] button')).to_have_count(0)

        page.locator("#edit-name").fill("slow-reports")
        page.locator("#edit-body").fill('{"kind": "task_runtime", "channels": ["nowhere"], "threshold": 30}')
        page.locator("#notify-edit button[type=submit]").click()
        expect(page.locator("#flash")).to_contain_text("Could not save slow-reports: 400")
        expect(page.locator("#flash")).to_contain_text("no channel named 'nowhere'")
        page.locator("#edit-body").fill("{not json")
        page.locator("#notify-edit button[type=submit]").click()
        expect(page.locator("#flash")).to_contain_text("Not JSON")

        page.locator("#edit-body").fill('{"kind": "task_runtime", "channels": ["team-hook"], "threshold": 30}')
        page.locator("#notify-edit button[type=submit]").click()
        expect(page.locator("#flash")).to_have_text("Saved rule slow-reports")
        row = page.locator('#rules tr[data-name="slow-reports"]')
        expect(row).to_contain_text("over 30")
        expect(row).to_contain_text("api")
        [saved] = [rule for rule in monitor.json("/api/notifications")["rules"] if rule["name"] == "slow-reports"]
        assert (saved["kind"], saved["threshold"], saved["source"]) == ("task_runtime", 30, "api")

        row.locator("button.edit").click()
        body = page.locator("#edit-body")
        expect(body).to_have_value(re.compile('"threshold": 30'))
        body.fill(body.input_value().replace('"threshold": 30', '"threshold": 45'))
        page.locator("#notify-edit button[type=submit]").click()
        expect(row).to_contain_text("over 45")

        row.locator("button.delete").click()
        expect(page.locator('#rules tr[data-name="slow-reports"]')).to_have_count(0)
        audit = monitor.json("/api/audit", params={"target": "slow-reports"})["entries"]
        # Newest first: the delete, the change, the addition, and the refused attempt (audited too).
        assert [(entry["action"], entry["ok"]) for entry in audit] == [
            ("notify.rule.delete", True), ("notify.rule.put", True), ("notify.rule.put", True),
            ("notify.rule.put", False)]
    finally:
        page.context.close()
    assert not [e for e in console.errors if "400" not in e], "\n".join(console.errors)
