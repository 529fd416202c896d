"""Forwarding headers (--xheaders): believed from trusted proxies only, parsed strictly, never a 500."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import Message, Scope
from starlette.websockets import WebSocket
from support.auth_stack import basic, gate_app

from celery_monitor.auth.config import SESSION_COOKIE
from celery_monitor.auth.proxy import ForwardedHeaders, TrustedProxies

LOOPBACK = ("127.0.0.1", 50000)
STRANGER = ("203.0.113.9", 50000)
TLS_PROXY = {"Host": "monitor.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}


def seen(request: Request) -> dict[str, Any]:
    return {"scheme": request.url.scheme, "host": request.headers.get("host"), "url": str(request.url),
            "client": request.client.host if request.client else None, "server": list(request.scope["server"])}


async def echo(request: Request) -> Response:
    return JSONResponse(seen(request))


async def echo_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"scheme": websocket.url.scheme, "host": websocket.headers.get("host"),
                               "client": websocket.client.host if websocket.client else None})
    await websocket.close()


def app(*trusted: str) -> Starlette:
    """Echo routes behind the middleware alone: what they report is what every later part would see."""
    proxies = TrustedProxies.parse(trusted or ("127.0.0.1", "::1"))
    routes = [Route("/", echo), WebSocketRoute("/ws", echo_ws), Mount("/celery", routes=[Route("/", echo)])]
    return Starlette(routes=routes, middleware=[Middleware(ForwardedHeaders, trusted=proxies)])


def view(headers: dict[str, Any], peer: tuple[str, int] = LOOPBACK, *trusted: str) -> dict[str, Any]:
    response = TestClient(app(*trusted), client=peer).get("/", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_tls_proxy_on_loopback_gives_the_browsers_scheme_host_and_address() -> None:
    assert view(TLS_PROXY) == {"scheme": "https", "host": "monitor.example.com", "url": "https://monitor.example.com/",
                               "client": "198.51.100.7", "server": ["monitor.example.com", 443]}


def test_a_client_that_is_not_a_trusted_proxy_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="celery_monitor.auth")
    spoofed = {**TLS_PROXY, "Host": "testserver", "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "8443",
               "Forwarded": "for=192.0.2.1;proto=https;host=evil.example", "X-Real-Ip": "192.0.2.2"}
    assert view(spoofed, STRANGER) == {"scheme": "http", "host": "testserver", "url": "http://testserver/",
                                       "client": "203.0.113.9", "server": ["testserver", 80]}
    assert view(spoofed, LOOPBACK, "10.0.0.0/8")["client"] == "127.0.0.1", "loopback is trusted only when listed"
    assert "ignoring X-Forwarded-*/Forwarded headers from 203.0.113.9" in caplog.text
    # A non-IP peer (a test client's name) is never a trusted proxy either.
    assert TestClient(app("*"), client=("testclient", 1)).get("/", headers=TLS_PROXY).json()["scheme"] == "https", (
        "* trusts every peer")
    assert TestClient(app(), client=("testclient", 1)).get("/", headers=TLS_PROXY).json()["scheme"] == "http"


@pytest.mark.parametrize("forwarded_for, trusted, client", [
    ("198.51.100.7, 10.0.0.5, 10.0.0.6", ("127.0.0.1", "10.0.0.0/8"), "198.51.100.7"),
    # Whatever the client wrote to the left of what our proxies appended is not believed.
    ("1.1.1.1, 198.51.100.7, 10.0.0.5", ("127.0.0.1", "10.0.0.0/8"), "198.51.100.7"),
    ("1.1.1.1, 198.51.100.7, 10.0.0.5", ("127.0.0.1",), "10.0.0.5"),
    ("10.0.0.4, 10.0.0.5", ("127.0.0.1", "10.0.0.0/8"), "10.0.0.4"),  # every hop a proxy: the farthest
    ("198.51.100.7:41000, [2001:db8::7]:443", ("127.0.0.1", "2001:db8::/32"), "198.51.100.7"),
    ("::ffff:198.51.100.7", ("127.0.0.1",), "198.51.100.7"),
])
def test_several_hops_the_client_is_the_rightmost_address_not_a_trusted_proxy(
        forwarded_for: str, trusted: tuple[str, ...], client: str) -> None:
    assert view({"X-Forwarded-For": forwarded_for}, LOOPBACK, *trusted)["client"] == client


def test_several_hops_take_the_scheme_and_host_the_outermost_trusted_proxy_recorded() -> None:
    headers = {"X-Forwarded-For": "1.1.1.1, 198.51.100.7, 10.0.0.5", "X-Forwarded-Proto": "http, https, http",
               "X-Forwarded-Host": "spoofed.example, monitor.example.com, monitor.internal"}
    assert view(headers, LOOPBACK, "127.0.0.1", "10.0.0.0/8")["url"] == "https://monitor.example.com/"
    # One proxy set the scheme, each appended an address: the single value serves every hop.
    single = {"X-Forwarded-For": "198.51.100.7, 10.0.0.5", "X-Forwarded-Proto": "https"}
    assert view(single, LOOPBACK, "127.0.0.1", "10.0.0.0/8")["scheme"] == "https"


@pytest.mark.parametrize("forwarded, expected", [
    ('for="[2001:db8:cafe::17]:4711";proto=https;host="monitor.example.com:8443"',
     {"client": "2001:db8:cafe::17", "url": "https://monitor.example.com:8443/",
      "server": ["monitor.example.com", 8443]}),
    ("For=198.51.100.7;Proto=HTTPS;Host=monitor.example.com, for=10.0.0.5;proto=http;host=monitor.internal",
     {"client": "198.51.100.7", "url": "https://monitor.example.com/"}),
    ('for=192.0.2.1;proto=http, for="198.51.100.7";proto=https;host="[2001:db8::1]"',
     {"client": "198.51.100.7", "url": "https://[2001:db8::1]/", "server": ["2001:db8::1", 443]}),
    # An obfuscated or unknown node ends the walk at the proxy that wrote it.
    ("for=_hidden;proto=https, for=10.0.0.5", {"client": "10.0.0.5", "scheme": "https"}),
    ("for=unknown;proto=https", {"client": "127.0.0.1", "scheme": "https"}),
])
def test_the_standard_forwarded_header(forwarded: str, expected: dict[str, Any]) -> None:
    got = view({"Forwarded": forwarded}, LOOPBACK, "127.0.0.1", "10.0.0.0/8")
    assert {key: got[key] for key in expected} == expected


def test_a_clients_own_forwarded_header_does_not_pass_for_the_proxys() -> None:
    # nginx writes X-Forwarded-For and passes the client's Forwarded on untouched: the former counts.
    headers = {"Forwarded": "for=192.0.2.1;proto=https;host=evil.example", "X-Forwarded-For": "198.51.100.7"}
    assert view(headers) == {"scheme": "http", "host": "testserver", "url": "http://testserver/",
                             "client": "198.51.100.7", "server": ["testserver", 80]}


def test_host_without_port_and_x_forwarded_port() -> None:
    # nginx's "Host $host" drops the port; X-Forwarded-Port $server_port brings it back.
    assert view({**TLS_PROXY, "X-Forwarded-Port": "8443"})["url"] == "https://monitor.example.com:8443/"
    assert view({**TLS_PROXY, "X-Forwarded-Port": "443"})["host"] == "monitor.example.com"
    # The Host sent upstream may name the upstream's port: the forwarded port replaces it.
    assert view({"Host": "127.0.0.1:5555", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}
                )["url"] == "https://127.0.0.1/"
    # A forwarded Host naming its own port keeps it.
    assert view({"X-Forwarded-Host": "monitor.example.com:9443", "X-Forwarded-Port": "443",
                 "X-Forwarded-Proto": "https"})["host"] == "monitor.example.com:9443"


def test_flowers_tornado_headers_x_real_ip_and_x_scheme() -> None:
    got = view({"X-Real-Ip": "198.51.100.7", "X-Scheme": "https", "Host": "monitor.example.com"})
    assert got["client"] == "198.51.100.7" and got["url"] == "https://monitor.example.com/"


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-Proto": "javascript"}, {"X-Forwarded-Proto": ""}, {"X-Forwarded-Host": "evil.example/path"},
    {"X-Forwarded-Host": "evil.example:99999"}, {"X-Forwarded-Host": "a b"}, {"X-Forwarded-Host": "[zz::1]"},
    {"X-Forwarded-For": "not-an-ip"}, {"X-Forwarded-For": ",,,"}, {"X-Forwarded-For": "[::1"},
    {"X-Forwarded-For": "1.2.3.4:port"}, {"X-Forwarded-Port": "99999"}, {"X-Forwarded-Port": "-1"},
    {"X-Forwarded-Port": "https"}, {"Forwarded": 'for="unterminated'}, {"Forwarded": "for=1.2.3.4;for=5.6.7.8"},
    {"Forwarded": "=;,=="}, {"Forwarded": "for=1.2.3.4,"}, {"Forwarded": "proto=gopher;host=x/y"},
    {"Forwarded": "for=\"\\\"\"", "X-Forwarded-Proto": "ftp"},
    {"X-Forwarded-Host": "\u00e9vil.example".encode("latin-1")},
    {"X-Forwarded-For": b"\xff\xfe", "Forwarded": b"for=\xff"},
])
def test_garbage_is_ignored_not_a_500(headers: dict[str, Any]) -> None:
    got = view(headers)
    assert got["scheme"] == "http" and got["host"] == "testserver" and got["client"] == "127.0.0.1"


def test_websockets_get_wss() -> None:
    with TestClient(app(), client=LOOPBACK).websocket_connect("/ws", headers=TLS_PROXY) as ws:
        assert ws.receive_json() == {"scheme": "wss", "host": "monitor.example.com", "client": "198.51.100.7"}
    with TestClient(app(), client=STRANGER).websocket_connect("/ws", headers=TLS_PROXY) as ws:
        assert ws.receive_json()["scheme"] == "ws"


def test_redirects_use_the_browsers_scheme_and_host() -> None:
    response = TestClient(app(), client=LOOPBACK, follow_redirects=False).get("/celery", headers=TLS_PROXY)
    assert response.status_code == 307 and response.headers["location"] == "https://monitor.example.com/celery/"


def run_raw(scope_client: Any, trusted: tuple[str, ...]) -> Scope:
    """Call the middleware with a bare scope, as uvicorn does for a peer on a UNIX socket (no client)."""
    seen_scopes: list[Scope] = []

    async def inner(scope: Scope, receive: Any, send: Any) -> None:
        seen_scopes.append(scope)

    async def nothing() -> Message:
        return {"type": "http.request"}

    async def discard(message: Message) -> None:
        pass

    scope = {"type": "http", "scheme": "http", "path": "/", "client": scope_client, "server": ("/run/m.sock", None),
             "headers": [(b"host", b"monitor.example.com"), (b"x-forwarded-proto", b"https"),
                         (b"x-forwarded-for", b"198.51.100.7")]}
    asyncio.run(ForwardedHeaders(inner, TrustedProxies.parse(trusted))(scope, nothing, discard))
    return seen_scopes[0]


def test_a_peer_on_the_unix_socket_counts_as_local() -> None:
    rewritten = run_raw(None, ("127.0.0.1", "::1"))
    assert rewritten["scheme"] == "https" and rewritten["client"] == ("198.51.100.7", 0)
    assert run_raw(None, ("10.0.0.0/8",))["scheme"] == "http", "loopback not listed: local peers not trusted"


def test_trusted_proxies_parse() -> None:
    parsed = TrustedProxies.parse(["10.0.0.0/8", " 2001:db8::/32 ", "192.0.2.1", ""])
    assert parsed.trusts("10.1.2.3") and parsed.trusts("2001:db8::1") and parsed.trusts("192.0.2.1")
    assert not parsed.trusts("192.0.2.2") and not parsed.trusts("proxy") and not parsed.trusts(None)
    assert TrustedProxies.parse(["*"]).trusts("198.51.100.7")
    for bad in ("proxy.local", "10.0.0.0/33", "1.2.3.4.5", "10.0.0.0/8/8"):
        with pytest.raises(ValueError, match="is not an IP address or CIDR network"):
            TrustedProxies.parse([bad])


def test_the_auth_stack_behind_a_tls_proxy_sets_secure_cookies_and_hsts() -> None:
    """Through the real middleware chain: the session cookie is Secure when the browser used https."""
    options = dict(auth_provider="oidc", oauth2_key="k", oauth2_secret="s", auth=r".*@example\.com",
                   oauth2_discovery_url="http://127.0.0.1:9/.well-known/openid-configuration",
                   cookie_secret="a-cookie-secret-for-the-tests-0123456789", xheaders=True)
    behind = TestClient(gate_app(**options), client=LOOPBACK, follow_redirects=False)
    response = behind.get("/login/start", headers=TLS_PROXY)
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(SESSION_COOKIE) and "secure" in cookie
    assert response.headers["strict-transport-security"].startswith("max-age=")
    plain = behind.get("/login/start", headers={"Host": "monitor.example.com", "X-Forwarded-Proto": "http"})
    assert "secure" not in plain.headers["set-cookie"].lower() and "strict-transport-security" not in plain.headers
    spoofed = TestClient(gate_app(**options), client=STRANGER).get("/login/start", headers=TLS_PROXY)
    assert "secure" not in spoofed.headers["set-cookie"].lower()


def test_the_rate_limiter_keys_on_the_real_client_only_through_a_trusted_proxy() -> None:
    stack = gate_app(basic_auth=["admin:right-password"], xheaders=True)
    wrong, right = basic("admin", "wrong"), basic("admin", "right-password")
    stranger = TestClient(stack, client=STRANGER)
    for n in range(10):  # rotating X-Forwarded-For from an untrusted peer: one budget all the same
        spoofed = {**wrong, "X-Forwarded-For": f"192.0.2.{n}", "Forwarded": f"for=192.0.2.{n}"}
        assert stranger.get("/api/whoami", headers=spoofed).status_code == 401
    assert stranger.get("/api/whoami", headers={**right, "X-Forwarded-For": "192.0.2.200"}).status_code == 429
    proxy = TestClient(stack, client=LOOPBACK)
    for _ in range(10):
        assert proxy.get("/api/whoami", headers={**wrong, "X-Forwarded-For": "198.51.100.7"}).status_code == 401
    assert proxy.get("/api/whoami", headers={**right, "X-Forwarded-For": "198.51.100.7"}).status_code == 429
    # Another user behind the same proxy (the Ingress controller's address) is not locked out.
    assert proxy.get("/api/whoami", headers={**right, "X-Forwarded-For": "198.51.100.8"}).status_code == 200
