"""The tasks page on a history with more search matches than the total counts: it says "10,000+",
and Next and Previous step through the pages by cursor, showing what offset paging shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from support.processes import new_monitor

from celery_monitor.store.query import COUNT_CAP
from celery_monitor.store.target import open_store

pytestmark = [pytest.mark.browser, pytest.mark.redis]
DASH = "\u2013"  # between the first and last row of the page info (an en dash)


def test_the_tasks_page_says_more_than_it_counts_and_pages_by_cursor(page: Page, redis_server: Any,
                                                                      tmp_path: Path) -> None:
    db = str(tmp_path / "history.db")
    store = open_store(db)
    store.write([{"uuid": f"m{i:05d}", "name": "shop.charge", "state": "SUCCESS", "received": float(1e9 + i),
                  "kwargs": f"{{'customer': {i}}}"} for i in range(COUNT_CAP + 30)], [], {})
    store.close()
    monitor = new_monitor(redis_server.url.replace("/0", "/14"), tmp_path, f"--db={db}",
                          f"--max_tasks={COUNT_CAP * 2}").start()
    try:
        page.goto(f"{monitor.url}/tasks?search=customer&limit=50")
        expect(page.locator("#task-total")).to_have_text("10,000+")
        expect(page.locator("#page-info")).to_have_text(f"1{DASH}50 of 10,000+")
        first_row = page.locator("#tasks tbody tr").first
        expect(first_row).to_have_attribute("data-uuid", "m10029")
        page.click("#next")
        expect(page.locator("#page-info")).to_have_text(f"51{DASH}100 of 10,000+")
        page.click("#next")
        expect(page.locator("#page-info")).to_have_text(f"101{DASH}150 of 10,000+")
        expect(first_row).to_have_attribute("data-uuid", "m09929")
        assert "after=" in page.url
        page.click("#prev")
        expect(page.locator("#page-info")).to_have_text(f"51{DASH}100 of 10,000+")
        expect(first_row).to_have_attribute("data-uuid", "m09979")
        expect(page.locator("#tasks tbody tr").last).to_have_attribute("data-uuid", "m09930")
        page.click("#prev")
        expect(page.locator("#page-info")).to_have_text(f"1{DASH}50 of 10,000+")
        expect(page.locator("#prev")).to_be_disabled()
        # A narrower search is counted exactly, and its last page has no Next.
        page.fill("#task-filters [name=search]", "1002")
        expect(page.locator("#task-total")).to_have_text("11")
        expect(page.locator("#next")).to_be_disabled()
    finally:
        page.goto("about:blank")  # the page's live socket ends before the monitor it talks to
        monitor.stop()
