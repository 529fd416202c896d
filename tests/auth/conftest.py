"""The login stack for the browser tests: a real OpenID Connect provider, the monitor, Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright
from support.auth_stack import COOKIE_SECRET, PROBE, LoginStack, new_oidc_provider
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.processes import RedisServer, new_monitor


# Module-scoped on purpose: a running Playwright keeps an event loop marked as running in this
# thread, which would break asyncio.run() in every test collected after it.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: run scripts/bootstrap")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def login_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoginStack]:
    """The monitor signing people in through the provider: example.com accounts only, one viewer."""
    tmp = tmp_path_factory.mktemp("login")
    broker = f"redis://127.0.0.1:{redis_server.port}/9"
    monitor = new_monitor(broker, tmp, auth=PROBE)
    provider = new_oidc_provider(f"http://127.0.0.1:{monitor.port}/login").start(tmp / "oidc.log")
    monitor.args += [
        "--auth_provider=oidc", f"--oauth2_discovery_url={provider.discovery_url}",
        f"--oauth2_key={provider.client_id}", f"--oauth2_secret={provider.client_secret}",
        f"--oauth2_redirect_uri={provider.redirect_uri}", r"--auth=.*@example\.com",
        f"--cookie_secret={COOKIE_SECRET}", "--read_only_users=viewer@example.com",
        "--cluster_access=group:watchers=default:read",  # the issuer's groups claim scopes its members
    ]
    monitor.start()
    yield LoginStack(provider, monitor, broker, tmp)
    monitor.stop()
    provider.stop()
