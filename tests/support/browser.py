"""Chromium for the page tests: Debian's binary, headless, and a tab that records console errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page

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
