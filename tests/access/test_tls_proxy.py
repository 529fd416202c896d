"""Behind nginx terminating TLS, as an Ingress controller does: `Host $host`, `X-Forwarded-Proto $scheme`.

The monitors run with `--xheaders` and the default `--trusted_proxies` (loopback, where nginx is).
Through the proxy, on the default port 443 and on another port, with and without a URL prefix: the
live view connects (wss), a task appears without a reload, a control button works, Basic and OpenID
Connect sign-ins work (the provider sends people back to the https URL the monitor worked out from
the forwarded headers), every cookie is Secure, and the failures, workflow, graphs, schedules and
notifications pages load and take their buttons' requests. A client that is not a trusted proxy gains
nothing by sending the same headers.

Port 443 needs no privileges here: Chromium maps https://monitor.test (port 443) onto nginx's port,
so the browser sends exactly what it would send to a real server on 443.
"""

from __future__ import annotations

import gc
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from access_fleet import Fleet, launch, new_context
from celery import chain
from playwright.sync_api import Browser, BrowserContext, expect
from support.auth_stack import PROBE, OidcProvider, new_oidc_provider, sign_in
from support.browser import AUTH, Console, control_reaches_the_worker, see_a_new_task_without_reload
from support.client import celery_client
from support.nginx import LOCATION, PORT_HEADER, SERVER, Nginx, self_signed
from support.processes import MonitorProcess, free_port, new_monitor, wait_for

from celery_monitor.auth.config import SESSION_COOKIE

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.timeout(120)]

HOST = "monitor.test"
PREFIX = "/celery"
COOKIE_SECRET = "tls-proxy-tests-cookie-secret-0123456789"


@dataclass
class Site:
    """nginx in front of two monitors: Basic at the root, OpenID Connect under the prefix."""

    default_port_url: str  # https://monitor.test, port 443 as the browser sees it
    other_port_url: str  # https://127.0.0.1:<port>
    nginx_port_for_443: int
    basic: MonitorProcess
    oidc: MonitorProcess
    provider: OidcProvider
    nginx: Nginx

    def base(self, which: str) -> str:
        return self.default_port_url if which == "443" else self.other_port_url


@pytest.fixture(scope="module")
def site(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("tls-proxy")
    port_for_443, other_port = free_port(), free_port()
    default_url, other_url = f"https://{HOST}", f"https://127.0.0.1:{other_port}"
    provider = new_oidc_provider(f"{default_url}{PREFIX}/login,{other_url}{PREFIX}/login").start(tmp / "oidc.log")
    (tmp / "basic").mkdir()
    (tmp / "oidc").mkdir()
    basic = new_monitor(fleet.broker, tmp / "basic", "--xheaders", auth=AUTH)
    # The result backend holds a failed task's exact arguments: a failure group's re-run sends them.
    oidc = new_monitor(fleet.broker, tmp / "oidc", "--xheaders", f"--url_prefix={PREFIX}", "--auth_provider=oidc",
                       f"--result_backend={fleet.backend}",
                       f"--oauth2_discovery_url={provider.discovery_url}", f"--oauth2_key={provider.client_id}",
                       f"--oauth2_secret={provider.client_secret}", r"--auth=.*@example\.com",
                       f"--cookie_secret={COOKIE_SECRET}", auth=PROBE, prefix=PREFIX)
    nginx = Nginx(tmp)
    try:
        for monitor in (basic, oidc):
            monitor.start()
        cert, key = self_signed(tmp, HOST, "127.0.0.1")
        servers = []
        for port, extra in ((port_for_443, ""), (other_port, PORT_HEADER)):
            locations = (LOCATION.format(path="/", upstream=basic.port, extra=extra)
                         + LOCATION.format(path=f"{PREFIX}/", upstream=oidc.port, extra=extra))
            servers.append(SERVER.format(port=port, cert=cert, key=key, locations=locations))
        nginx.start("".join(servers), f"{other_url}/healthcheck", verify=False)
        for monitor in (basic, oidc):
            fleet.await_worker(monitor)
        yield Site(default_url, other_url, port_for_443, basic, oidc, provider, nginx)
    finally:
        nginx.stop()
        basic.stop()
        oidc.stop()
        provider.stop()


@pytest.fixture(scope="module")
def chromium(site: Site) -> Iterator[Browser]:
    yield from launch(f"--host-rules=MAP {HOST}:443 127.0.0.1:{site.nginx_port_for_443}")


@pytest.fixture
def console() -> Console:
    return Console()


def assert_every_cookie_secure(context: BrowserContext, path: str = "/") -> None:
    """Every cookie under ``path`` (the provider, also on 127.0.0.1, has its own under other paths)."""
    cookies = [cookie for cookie in context.cookies() if cookie["path"].startswith(path)]
    assert all(cookie["secure"] for cookie in cookies), cookies


@pytest.mark.parametrize("port", ["443", "non-default"])
def test_basic_login_live_view_and_a_control_over_tls(chromium: Browser, console: Console, fleet: Fleet,
                                                      site: Site, port: str) -> None:
    base = site.base(port)
    context = new_context(chromium, console, ignore_https_errors=True,
                          http_credentials={"username": AUTH[0], "password": AUTH[1]})
    page = context.new_page()
    response = page.goto(base + "/workers")
    assert response is not None and response.status == 200
    # The monitor knows the browser is on https: it asks for HSTS itself.
    assert response.headers["strict-transport-security"].startswith("max-age=")
    see_a_new_task_without_reload(page, base, fleet.broker, fleet.backend)
    control_reaches_the_worker(page, base, fleet.worker.hostname, "21/m" if port == "443" else "22/m")
    assert_every_cookie_secure(context)
    assert not console.errors, "\n".join(console.errors)


@pytest.mark.parametrize("port", ["443", "non-default"])
def test_openid_connect_sign_in_under_a_prefix_over_tls(chromium: Browser, console: Console, fleet: Fleet,
                                                        site: Site, port: str) -> None:
    base = site.base(port) + PREFIX
    context = new_context(chromium, console, ignore_https_errors=True)
    page = context.new_page()
    # The provider only knows the https URLs: a callback URL worked out as http, or without the
    # browser's port, would be refused there.
    sign_in(page, base + "/tasks", site.provider.issuer, "alice@example.com")
    session = next(cookie for cookie in context.cookies() if cookie["name"] == SESSION_COOKIE)
    assert session["secure"] and session["httpOnly"] and session["path"] == PREFIX
    assert_every_cookie_secure(context, PREFIX)
    console.errors.clear()  # the provider's login page has its own complaints (web fonts it cannot reach)
    see_a_new_task_without_reload(page, base, fleet.broker, fleet.backend)
    control_reaches_the_worker(page, base, fleet.worker.hostname, "23/m" if port == "443" else "24/m")
    assert not console.errors, "\n".join(console.errors)


def test_the_incident_pages_and_their_buttons_over_tls_under_a_prefix(chromium: Browser, console: Console,
                                                                    fleet: Fleet, site: Site) -> None:
    """The pages added after the first wave (failure groups, workflows, graphs, periodic tasks,
    notifications) load their scripts and data, go live and take their buttons' requests through the
    proxy, under the prefix, signed in with OpenID Connect (cookies, not Basic)."""
    base = site.base("443") + PREFIX
    context = new_context(chromium, console, ignore_https_errors=True)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations before a control
    sign_in(page, base + "/graphs", site.provider.issuer, "alice@example.com")
    console.errors.clear()  # the provider's login page has its own complaints (web fonts it cannot reach)
    # The graphs: the saved points, then the ones pushed every two seconds.
    expect(page.locator("#points-info")).to_have_text(re.compile(r"^\d+ samples$"), timeout=10_000)

    kind = f"TlsProbe{uuid.uuid4().hex[:6]}"
    with celery_client(fleet.broker, fleet.backend) as client:
        client.send_task("tests.fail_as", (kind, "failed behind the proxy"))
        last = chain(client.signature("tests.add", args=(1, 1), immutable=True),
                     client.signature("tests.hold", args=(60,), immutable=True)).delay()
        root_id = last.parent.id
    del client, last
    gc.collect()  # the result and its client hold each other: let go of their Redis connection now
    wait_for(lambda: site.oidc.json("/api/failures/tasks", params={"name": "tests.fail_as", "exception": kind})
             ["total"] == 1, 30, message="the failure group in the monitor")

    page.goto(base + "/failures")
    page.locator("#failure-groups tbody tr").filter(has_text=kind).click()
    expect(page.locator("#group-total")).to_have_text("1")
    page.locator("#group-rerun").click()
    expect(page.locator("#group-action-result")).to_contain_text("Re-ran 1 of 1 task(s)")

    try:
        page.goto(f"{base}/workflow/{root_id}")
        expect(page.locator('#workflow-graph g.wf-node[data-state="STARTED"]')).to_have_count(1, timeout=30_000)
        page.locator("#workflow-terminate").check()  # it runs: stop it too
        page.locator("#revoke-workflow").click()
        expect(page.locator("#flash")).to_contain_text("Revoked 1 task(s) of the workflow")
        expect(page.locator('#workflow-graph g.wf-node[data-state="REVOKED"]')).to_have_count(1, timeout=30_000)
    finally:  # never leave a minute-long task in the shared worker's pool
        site.oidc.client.post(f"/api/workflow/{root_id}/revoke", params={"terminate": "true"})

    page.goto(base + "/schedules")
    expect(page.locator("#schedules-tolerance")).to_have_text(re.compile(r"^\d+(\.\d+)? s$"))
    page.goto(base + "/notifications")
    expect(page.locator("#deliveries-total")).to_have_text(re.compile(r"^\d+$"))
    assert_every_cookie_secure(context, PREFIX)
    assert not console.errors, "\n".join(console.errors)


def client_from(address: str, base: str) -> httpx.Client:
    """A client connecting from another loopback address: not a trusted proxy (only 127.0.0.1 is)."""
    transport = httpx.HTTPTransport(local_address=address, verify=False)
    return httpx.Client(transport=transport, base_url=base, timeout=10)


def spoofing(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{n}", "X-Real-Ip": f"198.51.100.{n}",
            "Forwarded": f"for=198.51.100.{n};proto=https"}


def test_a_client_that_is_not_a_trusted_proxy_gains_nothing_from_forwarding_headers(site: Site) -> None:
    direct = site.basic.url
    # Straight to the monitor: rotating X-Forwarded-For does not reset the failed-login budget.
    with client_from("127.0.0.2", direct) as client:
        for n in range(10):
            assert client.get("/api/workers", auth=(AUTH[0], f"guess-{n}"), headers=spoofing(n)).status_code == 401
        assert client.get("/api/workers", auth=AUTH, headers=spoofing(99)).status_code == 429
    # Nor does a claimed https origin make a foreign page's request look like our own.
    with client_from("127.0.0.5", direct) as client:
        claimed = {"Origin": f"https://127.0.0.1:{site.basic.port}", "X-Forwarded-Proto": "https",
                   "X-Forwarded-Host": f"127.0.0.1:{site.basic.port}"}
        refused = client.post("/api/me", auth=AUTH, headers=claimed)
        assert refused.status_code == 403 and refused.json()["error"].startswith("Cross-site request refused")
    # Through the proxy, the client is the address nginx met, whatever the client added to the left.
    with client_from("127.0.0.3", site.other_port_url) as client:
        for n in range(10):
            assert client.get("/api/workers", auth=(AUTH[0], f"guess-{n}"), headers=spoofing(n)).status_code == 401
        assert client.get("/api/workers", auth=AUTH, headers=spoofing(99)).status_code == 429
    # ... and the proxy's own address is not what is limited: another user behind it gets in.
    with client_from("127.0.0.4", site.other_port_url) as client:
        assert client.get("/api/workers", auth=AUTH).status_code == 200
    log = site.basic.log.read_text()
    assert "failed login from 127.0.0.2: basic" in log and "failed login from 127.0.0.3: basic" in log
    assert "failed login from 198.51.100." not in log
    assert "ignoring X-Forwarded-*/Forwarded headers from 127.0.0.2: not in --trusted_proxies" in log
