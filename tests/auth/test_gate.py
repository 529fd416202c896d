"""The gate's decisions: credentials, roles, CSRF, Origin, rate limits, headers, /metrics."""

from __future__ import annotations

import json
import logging
from base64 import b64encode
from typing import Any

import itsdangerous
import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from support.auth_stack import basic, gate_app, token_entry

from celery_monitor.auth.config import SESSION_COOKIE, AuthConfig
from celery_monitor.auth.login import safe_next
from celery_monitor.settings import Settings

SECRET = "a-cookie-secret-for-the-tests-0123456789"
SAME_ORIGIN = {"Origin": "http://testserver"}
UI = {"X-Requested-With": "celery-monitor", **SAME_ORIGIN}
OIDC = dict(auth_provider="oidc", oauth2_key="k", oauth2_secret="s", auth=r".*@example\.com",
            oauth2_discovery_url="http://127.0.0.1:9/.well-known/openid-configuration", cookie_secret=SECRET)


def client(**options: Any) -> TestClient:
    return TestClient(gate_app(**options))


def session_cookie(data: dict[str, Any], secret: str = SECRET) -> str:
    payload = b64encode(json.dumps(data).encode())
    return itsdangerous.TimestampSigner(secret).sign(payload).decode()


def signed_in(user: str = "me@example.com", **extra: Any) -> TestClient:
    c = client(**OIDC, **extra)
    c.cookies.set(SESSION_COOKIE, session_cookie({"user": user, "provider": "oidc", "csrf": "tok-123", "sid": "s1"}))
    return c


def test_open_instance_pages_are_open_and_the_api_needs_a_choice() -> None:
    c = client()
    assert c.get("/page").json() == {"user": None, "role": "admin", "auth": "anonymous", "method": "GET"}
    assert c.get("/api/whoami").status_code == 401
    assert client(unauthenticated_api=True).get("/api/whoami").json()["role"] == "admin"
    # The pages' own live feed is open with them; the scripted event sockets are API.
    with c.websocket_connect("/api/ws", headers=SAME_ORIGIN) as ws:
        assert ws.receive_json()["role"] == "admin"
    assert denied(c, "/api/task/events/task-failed/").status_code == 401
    # A page's control button hears what to configure.
    refused = c.post("/api/whoami", headers=UI)
    assert refused.status_code == 401 and "--unauthenticated_api" in refused.json()["error"]
    assert refused.json()["error"].startswith("Controls need a login")
    assert client(unauthenticated_api=True, read_only=True).post("/api/whoami").status_code == 403


def test_basic_users_and_roles() -> None:
    c = client(basic_auth=["admin:pw1", "viewer:pw2"], read_only_users=["viewer"])
    refused = c.get("/api/whoami")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic ")
    assert c.get("/page").status_code == 401
    page_fetch = c.get("/api/whoami", headers={"X-Requested-With": "celery-monitor"})
    assert page_fetch.status_code == 401 and "www-authenticate" not in page_fetch.headers, "no password pop-up"
    assert c.get("/api/whoami", headers=basic("admin", "pw1")).json()["role"] == "admin"
    assert c.post("/api/whoami", headers=basic("admin", "pw1")).status_code == 200
    assert c.get("/api/whoami", headers=basic("viewer", "pw2")).json() == {
        "user": "viewer", "role": "read-only", "auth": "basic", "method": "GET"}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = c.request(method, "/api/whoami", headers=basic("viewer", "pw2"))
        assert response.status_code == 403, method
        assert "Read-only" in response.json()["error"]
    assert c.get("/api/whoami", headers=basic("admin", "pw2")).status_code == 401


def test_read_only_instance_makes_everyone_read_only() -> None:
    c = client(basic_auth=["admin:pw1"], read_only=True)
    assert c.get("/api/whoami", headers=basic("admin", "pw1")).json()["role"] == "read-only"
    assert c.post("/api/whoami", headers=basic("admin", "pw1")).status_code == 403


def test_api_tokens_scopes() -> None:
    c = client(api_tokens=[token_entry("prom", "read-only", "tok-r"), token_entry("ci", "full", "tok-f")])
    read = {"Authorization": "Bearer tok-r"}
    full = {"Authorization": "Bearer tok-f"}
    assert c.get("/api/whoami", headers=read).json() == {
        "user": "token:prom", "role": "read-only", "auth": "token", "method": "GET"}
    assert c.post("/api/whoami", headers=read).status_code == 403
    assert c.post("/api/whoami", headers=full).json()["role"] == "admin"
    # A browser never adds a bearer token by itself, so its origin does not matter.
    assert c.post("/api/whoami", headers={**full, "Origin": "https://evil.example"}).status_code == 200
    assert c.get("/api/whoami", headers={"Authorization": "Bearer tok-x"}).status_code == 401


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "http://testserver.evil.example"},
    {"Origin": "null"},
    {"Origin": "http://testserver:8080"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"},
])
def test_cross_site_state_changes_are_refused(headers: dict[str, str]) -> None:
    auth = basic("admin", "pw")
    c = client(basic_auth=["admin:pw"])
    response = c.post("/api/whoami", headers={**auth, **headers})
    assert response.status_code == 403
    assert "Cross-site" in response.json()["error"]
    assert c.get("/api/whoami", headers={**auth, **headers}).status_code == 200, "reads are not state changes"
    assert client().post("/page", headers=headers).status_code == 403, "an open instance is protected too"


def test_same_origin_and_script_requests_may_change_state() -> None:
    c = client(basic_auth=["admin:pw"])
    auth = basic("admin", "pw")
    assert c.post("/api/whoami", headers={**auth, **SAME_ORIGIN, "Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert c.post("/api/whoami", headers=auth).status_code == 200, "curl sends no Origin"


def test_cookie_sessions_need_the_ui_header_or_the_csrf_token() -> None:
    c = signed_in()
    assert c.get("/api/whoami").json() == {"user": "me@example.com", "role": "admin", "auth": "session",
                                           "method": "GET"}
    refused = c.post("/api/whoami", headers=SAME_ORIGIN)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    assert c.post("/api/whoami").status_code == 403
    assert c.post("/api/whoami", headers=UI).status_code == 200
    assert c.post("/api/whoami", headers={"X-Requested-With": "celery-monitor"}).status_code == 200
    assert c.post("/api/whoami", headers={**UI, "Origin": "https://evil.example"}).status_code == 403
    assert c.post("/api/whoami", headers={"X-CSRF-Token": "tok-123"}).status_code == 200
    assert c.post("/api/whoami", headers={"X-CSRF-Token": "tok-124"}).status_code == 403
    assert c.post("/api/whoami", headers={"X-Requested-With": "XMLHttpRequest"}).status_code == 403


def test_session_roles_and_revoked_users() -> None:
    assert signed_in(read_only_users=["me@example.com"]).post("/api/whoami", headers=UI).status_code == 403
    # The rule is checked on every request: narrowing --auth locks out existing sessions.
    assert signed_in("me@example.com.evil.org").get("/api/whoami").status_code == 401


def test_tampered_or_foreign_session_cookies_are_ignored() -> None:
    c = client(**OIDC)
    good = session_cookie({"user": "me@example.com", "provider": "oidc", "sid": "s1"})
    c.cookies.set(SESSION_COOKIE, good)
    assert c.get("/api/whoami").status_code == 200
    data, _, signature = good.rpartition(".")
    forged = session_cookie({"user": "admin@example.com", "provider": "oidc", "sid": "s2"},
                            secret="guessed-secret-0000000000")
    for cookie in (data + "." + signature[::-1], forged, good.replace(good[5], "A" if good[5] != "A" else "B", 1)):
        c.cookies.set(SESSION_COOKIE, cookie)
        assert c.get("/api/whoami").status_code == 401
    c.cookies.set(SESSION_COOKIE, session_cookie({"user": "me@example.com", "provider": "google", "sid": "s3"}))
    assert c.get("/api/whoami").status_code == 401, "a session from another provider's configuration"


def test_browser_pages_go_to_the_login_page() -> None:
    c = client(**OIDC)
    response = c.get("/page?x=1", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/login?next=%2Fpage%3Fx%3D1"
    assert c.get("/page", headers={"Accept": "application/json"}).status_code == 401
    login = c.get("/login?next=%2Fpage%3Fx%3D1")
    assert login.status_code == 200 and 'href="/login/start?next=/page%3Fx%3D1"' in login.text


@pytest.mark.parametrize("target, expected", [
    ("/tasks?state=FAILURE", "/tasks?state=FAILURE"), ("//evil.example/", "/"), ("https://evil.example", "/"),
    ("/\\evil.example", "/"), ("/ok\r\nSet-Cookie: x=1", "/"), (None, "/"), ("javascript:alert(1)", "/"),
])
def test_return_address_after_login_stays_local(target: str | None, expected: str) -> None:
    config = AuthConfig.from_settings(Settings())
    assert safe_next(config, target) == expected
    prefixed = AuthConfig.from_settings(Settings(url_prefix="monitor"))
    assert safe_next(prefixed, "/other") == "/monitor/"


def closed_with(c: TestClient, path: str, **options: Any) -> tuple[int, str]:
    """Our own page's refused WebSocket is accepted, then closed with a code and a reason it can show."""
    with c.websocket_connect(path, **options) as ws:
        message = ws.receive()
    assert message["type"] == "websocket.close", message
    return message["code"], message.get("reason", "")


def denied(c: TestClient, path: str, **options: Any) -> WebSocketDenialResponse:
    """Scripts and other sites' pages get the handshake refused, with an HTTP status and reason."""
    with pytest.raises(WebSocketDenialResponse) as refused, c.websocket_connect(path, **options):
        pass
    return refused.value


def test_websocket_refusals() -> None:
    c = client(unauthenticated_api=True)
    with c.websocket_connect("/api/ws", headers=SAME_ORIGIN) as ws:
        assert ws.receive_json()["role"] == "admin"
    with c.websocket_connect("/api/ws") as ws:
        assert ws.receive_json()["role"] == "admin"
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = denied(c, "/api/ws", headers=headers)
        assert refused.status_code == 403 and refused.json() == {"error": "WebSocket from another origin refused"}
    # Our own page through a TLS proxy whose headers are unheeded: told why, so it can say so.
    code, reason = closed_with(c, "/api/ws", headers={"Origin": "https://testserver"})
    assert code == 4403 and "--xheaders" in reason and len(reason) <= 120
    authed = client(basic_auth=["admin:pw"])
    assert denied(authed, "/api/ws").status_code == 401
    assert closed_with(authed, "/api/ws", headers=SAME_ORIGIN) == (4401, "Authentication required")
    with authed.websocket_connect("/api/ws", headers=basic("admin", "pw")) as ws:
        assert ws.receive_json()["user"] == "admin"


def test_failed_logins_are_limited_and_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    c = client(basic_auth=["admin:right-password"])
    caplog.set_level(logging.WARNING, logger="celery_monitor.auth")
    for _ in range(10):
        assert c.get("/api/whoami", headers=basic("admin", "guess-password")).status_code == 401
    limited = c.get("/api/whoami", headers=basic("admin", "right-password"))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "failed login from testclient: basic (user admin)" in caplog.text
    assert "guess-password" not in caplog.text and "right-password" not in caplog.text
    assert c.get("/healthcheck").status_code == 200


def test_security_headers_on_pages_api_and_refusals() -> None:
    c = client(basic_auth=["admin:pw"])
    for response in (c.get("/api/whoami"), c.get("/api/whoami", headers=basic("admin", "pw")), c.get("/login"),
                     c.get("/healthcheck"), c.get("/no-such-page", headers=basic("admin", "pw"))):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


def test_metrics_protection_modes() -> None:
    tokens = [token_entry("prom", "read-only", "tok-r")]
    assert client(basic_auth=["a:pw"]).get("/metrics").status_code == 200, "public by default, as in Flower"
    c = client(basic_auth=["a:pw"], api_tokens=tokens, metrics_auth="token")
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers=basic("a", "pw")).status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer tok-r"}).status_code == 200
    c = client(basic_auth=["a:pw"], api_tokens=tokens, metrics_auth="basic")
    assert c.get("/metrics", headers=basic("a", "pw")).status_code == 200
    assert c.get("/metrics", headers={"Authorization": "Bearer tok-r"}).status_code == 401
    c = client(basic_auth=["a:pw"], api_tokens=tokens, metrics_auth="any")
    assert c.get("/metrics", headers=basic("a", "pw")).status_code == 200
    assert c.get("/metrics", headers={"Authorization": "Bearer tok-r"}).status_code == 200


def test_logout_needs_the_form_token() -> None:
    c = signed_in()
    page = c.get("/logout")
    assert 'name="csrf_token" value="tok-123"' in page.text
    assert c.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
    cross_site = c.post("/logout", data={"csrf_token": "tok-123"}, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    kept = c.cookies[SESSION_COOKIE]
    done = c.post("/logout", data={"csrf_token": "tok-123"})
    assert done.status_code == 200 and "signed out" in done.text
    assert done.headers["set-cookie"].startswith(f"{SESSION_COOKIE}=null;") and "1970" in done.headers["set-cookie"]
    # A copy of the cookie taken before signing out no longer works.
    c.cookies.clear()
    c.cookies.set(SESSION_COOKIE, kept)
    assert c.get("/api/whoami").status_code == 401


def test_session_cookie_flags_and_an_unreachable_provider() -> None:
    c = client(**{**OIDC, "oauth2_redirect_uri": "https://monitor.example.com/login"})
    response = c.get("/login/start?next=/tasks", follow_redirects=False)
    assert response.status_code == 502 and "cannot be reached" in response.text
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(SESSION_COOKIE) and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" in cookie, "served over https: the cookie never travels in clear"
    assert "secure" not in client(**OIDC).get("/login/start").headers["set-cookie"].lower()


def test_origin_behind_a_proxy_is_trusted_only_with_xheaders_from_a_trusted_proxy() -> None:
    proxied = {**basic("admin", "pw"), "Origin": "https://monitor.example.com",
               "X-Forwarded-Host": "monitor.example.com", "X-Forwarded-Proto": "https"}
    loopback = ("127.0.0.1", 40000)
    behind_proxy = TestClient(gate_app(basic_auth=["admin:pw"], xheaders=True), client=loopback)
    assert behind_proxy.post("/api/whoami", headers=proxied).status_code == 200
    elsewhere = TestClient(gate_app(basic_auth=["admin:pw"], xheaders=True, trusted_proxies=["10.0.0.0/8"]),
                           client=loopback)
    assert elsewhere.post("/api/whoami", headers=proxied).status_code == 403
    without_xheaders = TestClient(gate_app(basic_auth=["admin:pw"]), client=loopback)
    assert without_xheaders.post("/api/whoami", headers=proxied).json() == {"error": "Cross-site request refused"}
    # A page of our own host on another scheme (a TLS proxy, unheeded): the refusal names the likely fix.
    own_host_over_https = {**basic("admin", "pw"), "Origin": "https://testserver"}
    refused = without_xheaders.post("/api/whoami", headers=own_host_over_https)
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("Cross-site request refused: behind a proxy")
    # The public URL named in --oauth2_redirect_uri is our origin too.
    named = client(basic_auth=["admin:pw"], oauth2_redirect_uri="https://monitor.example.com/login")
    assert named.post("/api/whoami", headers={**basic("admin", "pw"), "Origin": "https://monitor.example.com"}
                      ).status_code == 200
