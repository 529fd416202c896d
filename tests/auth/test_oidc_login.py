"""Signing in through a real OpenID Connect provider with a real browser."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import itsdangerous
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route
from support.auth_stack import COOKIE_SECRET, PROBE, LoginStack
from support.client import celery_client
from support.processes import wait_for

from celery_monitor.auth.config import SESSION_COOKIE

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    context = chromium.new_context()
    context.set_default_timeout(15_000)
    yield context
    context.close()


def sign_in(page: Page, stack: LoginStack, login: str, start: str = "/tasks") -> Any:
    """Open a monitor page, follow it to the provider, sign in there; the last response."""
    page.goto(stack.monitor.url + start)
    assert page.url.startswith(stack.monitor.url + "/login?next="), page.url
    page.click("#sign-in")
    page.wait_for_url(stack.provider.issuer + "/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    with page.expect_navigation(url=lambda url: url.startswith(stack.monitor.url)) as navigation:
        page.click("button[type=submit]")
    page.wait_for_load_state()
    return navigation.value


def fetch(page: Page, path: str, method: str = "GET", ui_header: bool = True) -> dict[str, Any]:
    """A fetch from the signed-in page, as the web UI makes them."""
    result: dict[str, Any] = page.evaluate(
        """async ([path, method, uiHeader]) => {
            const headers = uiHeader ? {'X-Requested-With': 'celery-monitor'} : {};
            const response = await fetch(path, {method, headers, credentials: 'same-origin',
                                                signal: AbortSignal.timeout(10000)});
            return {status: response.status, body: await response.text()};
        }""", [path, method, ui_header])
    return result


def test_allowed_user_gets_in_and_can_control(context: BrowserContext, login_stack: LoginStack) -> None:
    page = context.new_page()
    sign_in(page, login_stack, "alice@example.com")
    assert page.url.startswith(login_stack.monitor.url + "/tasks")
    me = fetch(page, "/api/me")
    assert me["status"] == 200 and '"user":"alice@example.com"' in me["body"] and '"role":"admin"' in me["body"]
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == "", "scripts cannot read the session"
    # The gate lets a same-origin state change through with the UI's header, and only with it
    # (past the gate, /api/me answers 405: it only reads).
    assert fetch(page, "/api/me", "POST")["status"] == 405
    without_header = fetch(page, "/api/me", "POST", ui_header=False)
    assert without_header["status"] == 403 and "CSRF" in without_header["body"]


def test_read_only_user_sees_but_cannot_control(context: BrowserContext, login_stack: LoginStack) -> None:
    page = context.new_page()
    sign_in(page, login_stack, "viewer@example.com", start="/")
    assert '"role":"read-only"' in fetch(page, "/api/me")["body"]
    assert fetch(page, "/api/workers")["status"] == 200
    refused = fetch(page, "/api/me", "POST")
    assert refused["status"] == 403 and "Read-only" in refused["body"]


@pytest.mark.parametrize("login, reason", [
    ("mallory@evil.example.org", "may not use this monitor"),
    ("alice@example.com.evil.org", "may not use this monitor"),
    ("unverified@example.com", "not verified with the sign-in provider (email_verified is not true)"),
    ("unstated@example.com", "not verified with the sign-in provider (no email_verified claim)"),
])
def test_disallowed_users_get_403(context: BrowserContext, login_stack: LoginStack, login: str, reason: str) -> None:
    page = context.new_page()
    response = sign_in(page, login_stack, login)
    assert response.status == 403
    assert reason in page.inner_text("main")
    if "not verified" in reason:
        assert page.inner_text("h2") == "E-mail address not verified"
        log = (login_stack.tmp / "monitor.log").read_text()
        assert f"(user {login}): e-mail address not verified" in log
    assert not any(c["name"] == SESSION_COOKIE and "user" in c["value"] for c in context.cookies())
    assert fetch(page, "/api/me")["status"] == 401
    page.goto(login_stack.monitor.url + "/tasks")
    assert "/login?next=" in page.url


def held_callback(page: Page, stack: LoginStack, login: str) -> str:
    """Sign in at the provider but keep the browser from following its answer; the answer's URL.

    The provider's last step redirects to the monitor; that response is fetched here and replaced,
    so the monitor has not seen the code or state yet.
    """
    held: list[str] = []

    def hold(route: Route) -> None:
        if route.request.method != "POST":
            route.fallback()
            return
        # The browser does not show redirects to a route handler, so walk them here (the context's
        # request API shares the browser's cookies) and stop at the one that leads to the monitor.
        response = route.fetch(max_redirects=0)
        location = response.headers.get("location", "")
        for _ in range(5):
            if not location or location.startswith(stack.monitor.url):
                break
            target = location if location.startswith("http") else stack.provider.issuer + location
            location = page.request.get(target, max_redirects=0).headers.get("location", "")
        held.append(location)
        route.fulfill(status=200, body="held", content_type="text/plain")

    page.goto(stack.monitor.url + "/tasks")
    page.click("#sign-in")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "x")
    page.route(lambda url: url.startswith(stack.provider.issuer + "/interaction/"), hold)
    page.click("button[type=submit]")
    page.wait_for_function("() => document.body && document.body.innerText.includes('held')")
    page.unroute_all()
    assert held and held[0].startswith(stack.monitor.url + "/login?"), held
    return held[0]


def test_tampered_state_replay_and_foreign_browser_are_refused(chromium: Browser, context: BrowserContext,
                                                               login_stack: LoginStack) -> None:
    page = context.new_page()
    genuine = held_callback(page, login_stack, "alice@example.com")
    assert "code=" in genuine and "state=" in genuine
    state = genuine.split("state=")[1].split("&")[0]
    tampered = page.goto(genuine.replace(f"state={state}", f"state={state[:-3]}xyz"))
    assert tampered is not None and tampered.status == 400
    assert "could not be verified" in page.inner_text("main")

    # The same answer opened in another browser (login CSRF) finds no matching state there.
    other = chromium.new_context()
    try:
        foreign = other.new_page().goto(genuine)
        assert foreign is not None and foreign.status == 400
    finally:
        other.close()

    delivered = page.goto(genuine)
    assert delivered is not None and delivered.status == 200 and page.url.startswith(login_stack.monitor.url + "/tasks")
    replayed = page.goto(genuine)
    assert replayed is not None and replayed.status == 400, "a state is good for one answer only"


def test_tampered_or_forged_cookie_is_refused(context: BrowserContext, login_stack: LoginStack) -> None:
    page = context.new_page()
    sign_in(page, login_stack, "alice@example.com")
    assert fetch(page, "/api/me")["status"] == 200
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    value = cookie["value"]
    payload, _, signature = value.rpartition(".")
    forged_payload = base64.b64encode(json.dumps({"user": "boss@example.com", "provider": "oidc",
                                                  "sid": "x", "csrf": "x"}).encode()).decode()
    forged_elsewhere = itsdangerous.TimestampSigner("not-" + COOKIE_SECRET).sign(forged_payload).decode()
    for bad in (f"{payload}.{signature[:-2]}AA", f"{forged_payload}.{value.split('.', 1)[1]}", forged_elsewhere):
        context.clear_cookies()
        context.add_cookies([{**cookie, "value": bad}])
        assert fetch(page, "/api/me")["status"] == 401
        page.goto(login_stack.monitor.url + "/tasks")
        assert "/login?next=" in page.url
    context.clear_cookies()
    context.add_cookies([cookie])
    assert '"user":"alice@example.com"' in fetch(page, "/api/me")["body"]


def test_sign_out_ends_the_session(context: BrowserContext, login_stack: LoginStack) -> None:
    page = context.new_page()
    sign_in(page, login_stack, "alice@example.com")
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    page.goto(login_stack.monitor.url + "/logout")
    page.click("#sign-out")
    assert "signed out" in page.inner_text("main")
    assert fetch(page, "/api/me")["status"] == 401
    context.add_cookies([cookie])
    assert fetch(page, "/api/me")["status"] == 401, "a copy of the old cookie is refused too"


def test_no_secret_reaches_the_log(context: BrowserContext, login_stack: LoginStack) -> None:
    page = context.new_page()
    sign_in(page, login_stack, "alice@example.com")
    session = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)["value"]
    log = (login_stack.tmp / "monitor.log").read_text()
    assert "alice@example.com signed in" in log
    for secret in (COOKIE_SECRET, login_stack.provider.client_secret, PROBE[1], session, session.split(".")[-1]):
        assert secret not in log
    assert "code=" not in log and "id_token" not in log and "access_token" not in log


def test_the_pages_own_controls_pass_the_gate(context: BrowserContext, login_stack: LoginStack) -> None:
    with celery_client(login_stack.broker, login_stack.broker) as app:
        task_id = app.send_task("tests.add", args=[1, 2], queue="nobody-listens").id
    wait_for(lambda: login_stack.monitor.json(f"/api/task/info/{task_id}"), 15, message="the sent task")
    page = context.new_page()
    sign_in(page, login_stack, "alice@example.com", start=f"/task/{task_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    with page.expect_response(lambda r: "/api/task/revoke/" in r.url) as revoked:
        page.click("#revoke")
    assert revoked.value.status == 200, revoked.value.text()
    assert revoked.value.request.headers.get("x-requested-with") == "celery-monitor"


def test_a_group_of_the_issuer_scopes_its_members_to_their_clusters(context: BrowserContext,
                                                                   login_stack: LoginStack) -> None:
    # --cluster_access=group:watchers=default:read: a member reads the default cluster and controls nothing.
    page = context.new_page()
    sign_in(page, login_stack, "gina+grp-watchers")
    assert fetch(page, "/api/tasks")["status"] == 200
    status = fetch(page, "/api/monitor/status")
    assert status["status"] == 403 and "sees some clusters only (default:read)" in status["body"]
    refused = fetch(page, "/api/task/revoke/no-such-task", method="POST")
    assert refused["status"] == 403, refused
    assert "may control some clusters only" in refused["body"]
    # Someone outside the group keeps the access of the role it has.
    other = context.browser.new_context() if context.browser else None
    assert other is not None
    try:
        page = other.new_page()
        sign_in(page, login_stack, "hugo")
        assert fetch(page, "/api/monitor/status")["status"] == 200
    finally:
        other.close()
