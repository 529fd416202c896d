"""The access tests' shared parts: one real worker, Chromium per module, fresh browser profiles."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright
from support.browser import CHROMIUM, CHROMIUM_ARGS, Console
from support.processes import MonitorProcess, Worker, wait_for


@dataclass
class Fleet:
    broker: str
    backend: str
    worker: Worker
    tmp: Path

    def await_worker(self, monitor: MonitorProcess, path: str = "/ui/workers.json") -> None:
        """Wait until the monitor shows the worker online (its first heartbeat reached this monitor)."""
        def online() -> bool:
            rows = monitor.json(path)["workers"]
            return any(row["hostname"] == self.worker.hostname and row["status"] for row in rows)

        wait_for(online, 30, message=f"{self.worker.hostname} online in the monitor on {monitor.url}")


def launch(*extra_args: str) -> Iterator[Browser]:
    """Chromium, module by module: a running Playwright keeps an event loop marked as running in this
    thread, which would break asyncio.run() in every test collected after it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=[*CHROMIUM_ARGS, *extra_args])
        yield browser
        browser.close()


def new_context(browser: Browser, console: Console, **options: object) -> BrowserContext:
    """A fresh profile (own cookies) whose pages report console errors into ``console``."""
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    context.on("console", console.on_message)
    context.on("weberror", lambda error: console.on_error(error.error))
    return context
