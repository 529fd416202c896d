"""Every documented way in gives a working dashboard, in a real Chromium.

In each: the pages load, the header says the live view is live, a task run after the page opened
appears on it without a reload, and a control button reaches the worker, or, where this identity
may not control, there is no control and a request is refused with a message that says why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from access_fleet import Fleet, launch, new_context
from playwright.sync_api import Browser, expect
from support.auth_stack import PROBE, new_oidc_provider, sign_in
from support.browser import (
    AUTH,
    Console,
    control_reaches_the_worker,
    fetch_from_page,
    see_a_new_task_without_reload,
    set_a_rate_limit,
)
from support.nginx import Nginx
from support.processes import BIN, MonitorProcess, free_port, new_monitor, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.timeout(120)]

VIEWER = ("viewer", "viewer-password-0123")
COOKIE_SECRET = "ways-in-tests-cookie-secret-0123456789"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture
def console() -> Console:
    return Console()


def started(fleet: Fleet, name: str, *args: str, auth: tuple[str, str] | None = None, prefix: str = "",
            open_api: bool = True) -> MonitorProcess:
    """A monitor on the fleet's broker, its worker online in it."""
    tmp = fleet.tmp / name
    tmp.mkdir()
    monitor = new_monitor(fleet.broker, tmp, *args, auth=auth, prefix=prefix)
    if not open_api:
        monitor.args.remove("--unauthenticated_api")
    monitor.start(wait_connected=open_api or auth is not None)
    fleet.await_worker(monitor)
    return monitor


def test_open_monitor_with_unauthenticated_api(chromium: Browser, console: Console, fleet: Fleet) -> None:
    monitor = started(fleet, "open-api")
    try:
        page = new_context(chromium, console).new_page()
        see_a_new_task_without_reload(page, monitor.url, fleet.broker, fleet.backend)
        control_reaches_the_worker(page, monitor.url, fleet.worker.hostname, "11/m")
        assert not console.errors, "\n".join(console.errors)
    finally:
        monitor.stop()


def test_open_monitor_without_unauthenticated_api_shows_everything_and_says_what_controls_need(
        chromium: Browser, console: Console, fleet: Fleet) -> None:
    """As in Flower 2: the pages (and their own data and live feed) are open, the scripted API is not."""
    monitor = started(fleet, "open-pages", open_api=False)
    try:
        page = new_context(chromium, console).new_page()
        see_a_new_task_without_reload(page, monitor.url, fleet.broker, fleet.backend)
        reply = set_a_rate_limit(page, monitor.url, fleet.worker.hostname, "1/s")
        assert reply.status == 401
        flash = page.locator("#flash")
        expect(flash).to_contain_text("Controls need a login on this monitor")
        expect(flash).to_contain_text("--basic_auth")
        expect(flash).to_contain_text("--unauthenticated_api")
        expect(page.locator("#live")).to_have_text("live")
        assert all("401" in error for error in console.errors), console.errors
        scripted = httpx.get(monitor.url + "/api/workers")
        assert scripted.status_code == 401 and "--unauthenticated_api" in scripted.json()["error"]
    finally:
        monitor.stop()


@pytest.fixture(scope="module")
def basic_monitor(fleet: Fleet) -> Iterator[MonitorProcess]:
    monitor = started(fleet, "basic", f"--basic_auth={AUTH[0]}:{AUTH[1]},{VIEWER[0]}:{VIEWER[1]}",
                      f"--read_only_users={VIEWER[0]}", auth=AUTH)
    yield monitor
    monitor.stop()


def test_basic_auth(chromium: Browser, console: Console, fleet: Fleet, basic_monitor: MonitorProcess) -> None:
    context = new_context(chromium, console, http_credentials={"username": AUTH[0], "password": AUTH[1]})
    page = context.new_page()
    see_a_new_task_without_reload(page, basic_monitor.url, fleet.broker, fleet.backend)
    control_reaches_the_worker(page, basic_monitor.url, fleet.worker.hostname, "12/m")
    assert not console.errors, "\n".join(console.errors)


def test_read_only_user_sees_everything_live_and_no_control(chromium: Browser, console: Console, fleet: Fleet,
                                                            basic_monitor: MonitorProcess) -> None:
    context = new_context(chromium, console, http_credentials={"username": VIEWER[0], "password": VIEWER[1]})
    page = context.new_page()
    see_a_new_task_without_reload(page, basic_monitor.url, fleet.broker, fleet.backend)
    expect(page.locator("header .user")).to_have_attribute("title", "Signed in as viewer (read-only): sign out")
    page.goto(f"{basic_monitor.url}/worker/{fleet.worker.hostname}")
    expect(page.locator("#worker-status")).to_have_text("online")
    expect(page.locator("form.control")).to_have_count(0)
    refused = fetch_from_page(page, f"{basic_monitor.url}/api/task/rate-limit/tests.echo?ratelimit=1/s", "POST")
    assert refused["status"] == 403 and "Read-only access" in refused["body"], refused
    assert all("403" in error for error in console.errors), console.errors


def test_openid_connect(chromium: Browser, console: Console, fleet: Fleet) -> None:
    port = free_port()
    provider = new_oidc_provider(f"http://127.0.0.1:{port}/login").start(fleet.tmp / "oidc.log")
    (fleet.tmp / "oidc").mkdir()
    monitor = new_monitor(fleet.broker, fleet.tmp / "oidc", auth=PROBE)
    monitor.port = port  # the one the provider was told to send people back to
    monitor.args += ["--auth_provider=oidc", f"--oauth2_discovery_url={provider.discovery_url}",
                     f"--oauth2_key={provider.client_id}", f"--oauth2_secret={provider.client_secret}",
                     r"--auth=.*@example\.com", f"--cookie_secret={COOKIE_SECRET}"]
    try:
        monitor.start()
        fleet.await_worker(monitor)
        page = new_context(chromium, console).new_page()
        sign_in(page, monitor.url + "/tasks", provider.issuer, "alice@example.com")
        expect(page.locator("header .user")).to_have_text("alice@example.com")
        console.errors.clear()  # the provider's login page has its own complaints (web fonts it cannot reach)
        see_a_new_task_without_reload(page, monitor.url, fleet.broker, fleet.backend)
        control_reaches_the_worker(page, monitor.url, fleet.worker.hostname, "13/m")
        assert not console.errors, "\n".join(console.errors)
    finally:
        monitor.stop()
        provider.stop()


def test_url_prefix(chromium: Browser, console: Console, fleet: Fleet) -> None:
    monitor = started(fleet, "prefix", "--url_prefix=celery", auth=AUTH, prefix="/celery")
    try:
        context = new_context(chromium, console, http_credentials={"username": AUTH[0], "password": AUTH[1]})
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{monitor.port}/")
        assert page.url == f"http://127.0.0.1:{monitor.port}/celery/"
        see_a_new_task_without_reload(page, monitor.url, fleet.broker, fleet.backend)
        control_reaches_the_worker(page, monitor.url, fleet.worker.hostname, "14/m")
        assert not console.errors, "\n".join(console.errors)
    finally:
        monitor.stop()


# A UNIX socket behind nginx, as a single-host deployment writes it.
UNIX_SITE = """
server {{
    listen 127.0.0.1:{port};

    location / {{
        proxy_pass http://unix:{socket}:;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Port $server_port;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_read_timeout 1h;
    }}
}}
"""


def test_unix_socket_behind_nginx(chromium: Browser, console: Console, fleet: Fleet,
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("unix")
    socket = tmp / "monitor.sock"
    log = tmp / "monitor.log"
    process = subprocess.Popen(
        [str(BIN / "celery-monitor"), f"--broker={fleet.broker}", f"--db={tmp / 'monitor.db'}",
         f"--unix_socket={socket}", "--xheaders", f"--basic_auth={AUTH[0]}:{AUTH[1]}"],
        cwd=tmp, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    nginx = Nginx(tmp)
    try:
        wait_for(lambda: Path(socket).exists(), 20, message=f"the monitor's socket (log: {log})")
        nginx.start(UNIX_SITE.format(port=port, socket=socket), url + "/healthcheck")
        proxied = MonitorProcess([], port, log, {}, AUTH)
        proxied.client = httpx.Client(base_url=url, auth=AUTH, timeout=15)
        fleet.await_worker(proxied)
        context = new_context(chromium, console, http_credentials={"username": AUTH[0], "password": AUTH[1]})
        page = context.new_page()
        see_a_new_task_without_reload(page, url, fleet.broker, fleet.backend)
        control_reaches_the_worker(page, url, fleet.worker.hostname, "15/m")
        assert not console.errors, "\n".join(console.errors)
        # The client address the monitor saw is the browser's, forwarded by nginx over the socket.
        assert httpx.get(url + "/api/workers", auth=("admin", "wrong")).status_code == 401
        wait_for(lambda: "failed login from 127.0.0.1: basic (user admin)" in log.read_text(), 5,
                 message="the failed login logged with the client's address")
    finally:
        nginx.stop()
        process.terminate()
        process.wait(10)
