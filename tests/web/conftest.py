"""A real cluster for the browser tests: one Redis-backed worker, monitors in front of it, Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from support.browser import AUTH, CHROMIUM, CHROMIUM_ARGS, Console, WebCluster, open_page
from support.processes import OwnBrokers, new_monitor, start_worker, wait_for

COLUMNS = "name,uuid,state,args,result,received,runtime,worker"


@pytest.fixture(scope="session")
def web_cluster(own_brokers: OwnBrokers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebCluster]:
    tmp = tmp_path_factory.mktemp("web")
    broker = own_brokers.broker_url("redis", "web")
    backend = own_brokers.backend_url("web")
    monitor = new_monitor(broker, tmp, f"--result_backend={backend}", f"--tasks_columns={COLUMNS}", auth=AUTH).start()
    worker = start_worker(broker, "w-web", tmp, backend=backend)
    wait_for(lambda: monitor.json("/api/workers?status=true").get(worker.hostname), 30,
             message=f"worker {worker.hostname} online in the monitor")
    yield WebCluster(broker, backend, worker, monitor, tmp)
    worker.stop()
    monitor.stop()


# Module-scoped on purpose: a running Playwright keeps an event loop marked as running in this
# thread, which would break asyncio.run() in every test collected after it.
@pytest.fixture(scope="module")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh browser tab (own cookies and storage) that must end the test without console errors."""
    tab = open_page(browser, console)
    yield tab
    tab.context.close()
    assert not console.errors, "\n".join(console.errors)


SCREENSHOTS_ENV = "CELERY_MONITOR_SCREENSHOTS"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/screenshots when asked for (to refresh the README's images), else a temp folder."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
