"""A small Starlette app behind the real auth middleware, and helpers for the login tests."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from celery_monitor.auth import wiring
from celery_monitor.auth.config import AuthConfig
from celery_monitor.auth.routes import ROUTES as AUTH_ROUTES
from celery_monitor.settings import Settings
from support.processes import TESTS_DIR, MonitorProcess, free_port, wait_for

OIDC_DIR = TESTS_DIR / "auth" / "oidc"
COOKIE_SECRET = "login-tests-cookie-secret-0123456789"
PROBE = ("probe", "probe-password-0123")  # the Basic user the tests' own API calls sign in as


async def whoami(request: Request) -> Response:
    state = request.state
    return JSONResponse({"user": state.user, "role": state.role, "auth": state.auth,
                         "method": request.method})


async def whoami_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user": websocket.state.user, "role": websocket.state.role})
    await websocket.close()


def gate_app(**options: Any) -> Starlette:
    """The auth middleware in front of echo routes: what the gate decided is what comes back."""
    settings = Settings(**options)
    config = AuthConfig.from_settings(settings)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route("/api/whoami", whoami, methods=methods),
        Route("/page", whoami, methods=methods),
        Route("/metrics", whoami),
        Route("/healthcheck", whoami),
        WebSocketRoute("/api/ws", whoami_ws),
        *AUTH_ROUTES,
    ]
    app = Starlette(routes=routes, middleware=wiring.middleware(config))
    app.state.auth = config
    return app


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def token_entry(name: str, scope: str, token: str) -> str:
    return f"{name}:{scope}:sha256:{hashlib.sha256(token.encode()).hexdigest()}"


@dataclass
class OidcProvider:
    """The npm package oidc-provider, run by node on a loopback port."""

    port: int
    client_id: str
    client_secret: str
    redirect_uri: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self, log: Path) -> OidcProvider:
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            raise AssertionError("oidc-provider is not installed: run scripts/bootstrap")
        self.process = subprocess.Popen(
            ["node", "server.mjs", str(self.port), self.client_id, self.client_secret, self.redirect_uri],
            cwd=OIDC_DIR, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, "NODE_ENV": "test"})
        wait_for(lambda: b"ready" in log.read_bytes(), 20, message=f"oidc-provider on {self.port} (log: {log})")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def new_oidc_provider(redirect_uri: str) -> OidcProvider:
    return OidcProvider(free_port(), "monitor-test", "monitor-test-secret-0123456789", redirect_uri)


@dataclass
class LoginStack:
    provider: OidcProvider
    monitor: MonitorProcess
    broker: str
    tmp: Path


def sign_in(page: Page, start: str, issuer: str, login: str) -> None:
    """Open a monitor page, follow it to the provider's login, sign in there, come back to ``start``."""
    page.goto(start)
    assert "/login?next=" in page.url, page.url
    page.click("#sign-in")
    page.wait_for_url(issuer + "/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_url(start)
