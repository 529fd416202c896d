"""Where messages link to: --public_url, else the address a signed-in user reached through a trusted proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from support.harness import Harness

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "monitor.example.com"}


def get(harness: Harness, path: str, headers: dict[str, str], auth: tuple[str, str] | None) -> httpx.Response:
    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=harness.app)  # the peer is 127.0.0.1, a trusted proxy by default
        async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.7:5555", auth=auth) as client:
            return await client.get(path, headers=headers)

    return asyncio.run(request())


def test_links_follow_the_proxy_a_signed_in_user_came_through(tmp_path: Path) -> None:
    harness = Harness(tmp_path, "--xheaders", "--basic_auth=admin:pw", "--url_prefix=celery")
    try:
        links = harness.monitor.notifier.links
        assert get(harness, "/celery/notifications", FORWARDED, None).status_code == 401
        assert links.base == ""  # nobody signed in: the headers decide nothing
        assert get(harness, "/celery/notifications", {}, ("admin", "pw")).status_code == 200
        assert links.base == ""  # not through a proxy
        assert get(harness, "/celery/notifications", FORWARDED, ("admin", "pw")).status_code == 200
        assert links.task("abc")[0].url == "https://monitor.example.com/celery/task/abc"
    finally:
        harness.close()


def test_public_url_wins_over_the_proxy(tmp_path: Path) -> None:
    harness = Harness(tmp_path, "--xheaders", "--basic_auth=admin:pw", "--public_url=https://celery.example.org/")
    try:
        assert get(harness, "/notifications", FORWARDED, ("admin", "pw")).status_code == 200
        assert harness.monitor.notifier.links.worker("w@h")[0].url == "https://celery.example.org/worker/w%40h"
    finally:
        harness.close()
