"""A monitor run from a source tree whose pages were never built says so instead of showing a dead form."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect
from release_kit import AUTH, REPO, user_environment
from support.browser import Console, open_page
from support.processes import RedisServer, free_port, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]


@pytest.fixture(scope="module")
def unbuilt(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """`python -m celery_monitor` with the package taken from a copy of celery_monitor/ that has no static/dist."""
    root = tmp_path_factory.mktemp("unbuilt")
    shutil.copytree(REPO / "celery_monitor", root / "src" / "celery_monitor",
                    ignore=shutil.ignore_patterns("dist", "node_modules", "__pycache__"))
    env = {**user_environment(), "PYTHONPATH": str(root / "src")}
    where = subprocess.run([sys.executable, "-c", "import celery_monitor; print(celery_monitor.__file__)"],
                           cwd=root, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(root / "src" / "celery_monitor" / "__init__.py"), where
    port = free_port()
    log = root / "monitor.log"
    process = subprocess.Popen([sys.executable, "-m", "celery_monitor", f"--broker={redis_server.url}",
                                f"--basic_auth={AUTH[0]}:{AUTH[1]}", f"--port={port}", "--address=127.0.0.1",
                                f"--db={root / 'monitor.db'}"], cwd=root, env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=AUTH, timeout=10)
    try:
        wait_for(lambda: process.poll() is None and client.get("/healthcheck").status_code == 200, 30,
                 message=f"the monitor from the unbuilt tree (log: {log})")
        yield client
    finally:
        process.terminate()
        process.wait(15)
        client.close()


@pytest.mark.parametrize("path", ["/", "/workers", "/tasks", "/task/some-id", "/graphs"])
def test_every_page_is_a_notice_naming_the_fix(unbuilt: httpx.Client, path: str) -> None:
    response = unbuilt.get(path)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert "the web pages are not built" in text and "dist/app.js, dist/app.css" in text
    assert "npm ci &amp;&amp; npm run build" in text and "pip install ." in text and "Node.js" in text
    assert "<script" not in text and 'rel="stylesheet"' not in text  # nothing that would answer 404


def test_the_missing_bundle_answers_plain_text_and_the_rest_still_works(unbuilt: httpx.Client) -> None:
    for asset in ("/static/dist/app.js", "/static/dist/app.css"):
        response = unbuilt.get(asset)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/plain")
        assert "no built web pages" in response.text
    assert unbuilt.get("/static/favicon.svg").status_code == 200
    assert unbuilt.get("/api/workers").status_code == 200
    assert unbuilt.get("/metrics").status_code == 200


def test_the_notice_is_what_a_browser_shows(unbuilt: httpx.Client, browser: Browser) -> None:
    tab = open_page(browser, Console(), auth=AUTH)
    try:
        tab.goto(f"{unbuilt.base_url}/tasks")
        notice = tab.get_by_role("alert")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("the web pages are not built")
        expect(notice.locator("code").filter(has_text="npm ci")).to_be_visible()
    finally:
        tab.context.close()

