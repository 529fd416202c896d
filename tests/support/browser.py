"""Chromium for the page tests: Debian's binary, headless, and a tab that records console errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect

from support.client import celery_client
from support.processes import MonitorProcess, Worker, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
AUTH = ("admin", "s3cret")


@dataclass
class WebCluster:
    """A worker and a monitor (with a login) on one Redis broker."""

    broker: str
    backend: str
    worker: Worker
    monitor: MonitorProcess
    tmp: Path


@dataclass
class Console:
    """What the page complained about: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def on_message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} @ {message.location}")

    def on_error(self, error: Exception) -> None:
        self.errors.append(f"page error: {error}")


def open_page(browser: Browser, console: Console, auth: tuple[str, str] | None = AUTH,
              color_scheme: str = "light", viewport: dict[str, int] | None = None) -> Page:
    context = browser.new_context(
        http_credentials={"username": auth[0], "password": auth[1]} if auth else None,
        color_scheme=color_scheme,  # type: ignore[arg-type]
        viewport=viewport or {"width": 1360, "height": 820},  # type: ignore[typeddict-item]
    )
    page = context.new_page()
    page.on("console", console.on_message)
    page.on("pageerror", console.on_error)
    page.set_default_timeout(10_000)
    return page


def wait_until_stored(monitor: MonitorProcess, *task_ids: str) -> None:
    """Wait until the history (not only the live view) holds these tasks: a page's first fetch reads it."""
    def stored() -> bool:
        listed = {task["uuid"] for task in monitor.json("/ui/tasks.json?limit=500")["tasks"]}
        return set(task_ids) <= listed

    wait_for(stored, 10, message=f"tasks {task_ids} in the monitor's history")


# -- the walk every way in must pass: live view, a task pushed without reload, a control ----------

def see_a_new_task_without_reload(page: Page, base: str, broker: str, backend: str) -> None:
    """Open the tasks page; once the header says live, a task run now appears and finishes on it."""
    page.goto(base + "/tasks")
    expect(page.locator("#live")).to_have_text("live")
    page.evaluate("window.__stillTheSamePage = true")  # a reload would wipe it out
    with celery_client(broker, backend) as client:
        result = client.send_task("tests.add", (2, 3))
        row = page.locator(f'#tasks tr[data-uuid="{result.id}"]')
        expect(row).to_have_attribute("data-state", "SUCCESS", timeout=10_000)
    assert page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"


def set_a_rate_limit(page: Page, base: str, worker: str, rate: str) -> Response:
    """The worker page's Limits tab: set tests.echo's rate limit with the form's button; its reply."""
    page.goto(f"{base}/worker/{quote(worker)}")
    expect(page.locator("#worker-status")).to_have_text("online")
    page.get_by_role("tab", name="Limits").click()
    form = page.locator('form[data-action="rate-limit"]')
    form.locator('input[name="task"]').fill("tests.echo")
    form.locator('input[name="ratelimit"]').fill(rate)
    with page.expect_response(lambda r: "/api/task/rate-limit/tests.echo" in r.url) as reply:
        form.get_by_role("button", name="Set rate limit").click()
    return reply.value


def control_reaches_the_worker(page: Page, base: str, worker: str, rate: str) -> None:
    """A control button works: the reply is 200 and the worker, asked afresh, has the new limit."""
    reply = set_a_rate_limit(page, base, worker, rate)
    assert reply.status == 200, reply.text()
    expect(page.locator('#limits tr[data-task="tests.echo"] [data-limit="rate_limit"]')).to_have_text(rate)


def fetch_from_page(page: Page, path: str, method: str = "GET") -> dict[str, Any]:
    """A request made by the open page as its own scripts make them (same origin, the UI's header)."""
    result: dict[str, Any] = page.evaluate(
        """async ([path, method]) => {
            const response = await fetch(path, {method, credentials: 'same-origin',
                                                headers: {'X-Requested-With': 'celery-monitor'}});
            return {status: response.status, body: await response.text()};
        }""", [path, method])
    return result
