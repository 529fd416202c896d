"""The schedules page in Chromium: entries in words with their status, controls that reach RedBeat and
send a run, no controls for a read-only user, and task data shown as text, never as markup."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from celery.schedules import crontab, schedule
from playwright.sync_api import Browser, Dialog, Page, expect
from redbeat import RedBeatSchedulerEntry
from support.browser import AUTH, Console, open_page
from support.processes import MonitorProcess, RedisServer, Worker, free_port, new_monitor, start_worker, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]

VIEWER = ("viewer", "l00k")
HOSTILE = "<img src=x onerror=alert(1)>"


@dataclass
class ScheduleSite:
    app: Celery
    worker: Worker
    monitor: MonitorProcess


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScheduleSite]:
    tmp: Path = tmp_path_factory.mktemp("schedules-page")
    redis = RedisServer(free_port(), tmp).start()
    app = Celery("page-writer", broker=redis.url, set_as_current=False)
    app.conf.redbeat_redis_url = redis.url
    # No beat runs here: these entries never run on their own, so the one due every second is missed.
    RedBeatSchedulerEntry(f"nightly {HOSTILE}", "tests.echo", crontab(minute="0", hour="3"),
                          args=[f"<script>alert('args')</script>{HOSTILE}"], kwargs={"password": "hunter2"},
                          app=app).save()
    RedBeatSchedulerEntry("every-second", "tests.add", schedule(timedelta(seconds=1)), args=[20, 22], app=app).save()
    worker = start_worker(redis.url, "sched-page-w", tmp)
    users = f"--basic_auth={AUTH[0]}:{AUTH[1]},{VIEWER[0]}:{VIEWER[1]}"
    monitor = new_monitor(redis.url, tmp, f"--redbeat_url={redis.url}", "--redact=kwargs.password",
                          "--schedule_tolerance=1", f"--read_only_users={VIEWER[0]}", users, auth=AUTH).start()
    yield ScheduleSite(app, worker, monitor)
    worker.stop()
    monitor.stop()
    redis.stop()


def row(page: Page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#schedules tr[data-key="{key}"]')


def no_alerts(page: Page) -> list[str]:
    """Alerts the page raises (an injected script would); confirmations are the page's own and accepted."""
    alerts: list[str] = []

    def answer(dialog: Dialog) -> None:
        if dialog.type == "confirm":
            dialog.accept()
        else:
            alerts.append(dialog.message)
            dialog.dismiss()

    page.on("dialog", answer)
    return alerts


def test_entries_are_shown_in_words_with_markup_as_text_and_a_missed_entry_flagged(
        page: Page, site: ScheduleSite) -> None:
    alerts = no_alerts(page)
    page.goto(f"{site.monitor.url}/schedules")
    nightly = row(page, f"redbeat:nightly {HOSTILE}")
    expect(nightly.locator('[data-column="name"]')).to_contain_text(f"nightly {HOSTILE}")
    expect(nightly.locator('[data-column="schedule"]')).to_have_text("at 03:00")
    expect(nightly.locator('[data-column="arguments"]')).to_contain_text("<script>alert('args')</script>")
    expect(nightly.locator('[data-column="arguments"]')).to_contain_text("[redacted]")
    assert "hunter2" not in page.content()
    assert page.locator("#schedules img, #schedules script").count() == 0, "task data became markup"
    second = row(page, "redbeat:every-second")
    expect(second.locator('[data-column="schedule"]')).to_have_text("every second")
    # Nothing runs it: flagged once its due time plus the 1 s tolerance has passed (the page reloads every 3 s).
    expect(second.locator('[data-column="status"]')).to_contain_text("missed", timeout=15_000)
    expect(page.locator('nav a[aria-current="page"]')).to_have_text("Schedules")
    assert alerts == []


def test_an_admin_disables_enables_and_runs_an_entry_from_the_page(page: Page, site: ScheduleSite) -> None:
    no_alerts(page)
    page.goto(f"{site.monitor.url}/schedules")
    second = row(page, "redbeat:every-second")
    with page.expect_response(lambda r: "/api/schedule/disable/" in r.url) as reply:
        second.get_by_role("button", name="Disable").click()
    assert reply.value.status == 200, reply.value.text()
    expect(second).to_have_attribute("data-enabled", "false")
    expect(second.locator('[data-column="status"]')).to_have_text("disabled")
    assert RedBeatSchedulerEntry.from_key("redbeat:every-second", app=site.app).enabled is False
    second.get_by_role("button", name="Enable").click()
    expect(second).to_have_attribute("data-enabled", "true")
    assert RedBeatSchedulerEntry.from_key("redbeat:every-second", app=site.app).enabled is True

    with page.expect_response(lambda r: "/api/schedule/run/" in r.url) as reply:
        second.get_by_role("button", name="Run now").click()
    assert reply.value.status == 200, reply.value.text()
    task_id = reply.value.json()["task-id"]
    wait_for(lambda: site.monitor.json(f"/api/task/info/{task_id}")["state"] == "SUCCESS", 20,
             message="the run sent from the page to succeed")
    # The run shows as the entry's last run, linked to its task.
    expect(second.locator(f'[data-column="last"] a[href$="/task/{task_id}"]')).to_be_visible(timeout=10_000)
    actions = [entry["action"] for entry in site.monitor.json("/api/audit")["entries"][:3]]
    assert actions == ["schedule.run", "schedule.enable", "schedule.disable"]


def test_a_read_only_user_sees_the_entries_and_no_controls(browser: Browser, site: ScheduleSite) -> None:
    console = Console()
    page = open_page(browser, console, auth=VIEWER)
    try:
        page.goto(f"{site.monitor.url}/schedules")
        expect(row(page, "redbeat:every-second")).to_be_visible()
        expect(page.locator("#schedules thead th")).to_have_count(7)
        assert page.locator("#schedules button").count() == 0
        assert page.get_by_role("button", name="Run now").count() == 0
    finally:
        page.context.close()
    assert not console.errors, console.errors
