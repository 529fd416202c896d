"""Behind a real nginx under --url_prefix: pages load and pushes arrive through the proxy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect
from support.browser import AUTH, WebCluster
from support.client import celery_client
from support.nginx import Nginx
from support.processes import MonitorProcess, free_port, new_monitor, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]

PREFIX = "celery"

# What a user writes: a location for the prefix, the WebSocket upgrade passed on, the original Host kept.
SITE = """
server {{
    listen 127.0.0.1:{port};

    location /{prefix}/ {{
        proxy_pass http://127.0.0.1:{upstream};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout 1h;
    }}
}}
"""


@dataclass
class Proxy:
    nginx: Nginx
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{PREFIX}"


@pytest.fixture(scope="module")
def prefixed_monitor(web_cluster: WebCluster) -> Iterator[MonitorProcess]:
    tmp = web_cluster.tmp / "prefixed"
    tmp.mkdir(exist_ok=True)
    monitor = new_monitor(web_cluster.broker, tmp, f"--url_prefix={PREFIX}", auth=AUTH, prefix=f"/{PREFIX}")
    monitor.start()
    wait_for(lambda: monitor.json("/api/workers?status=true").get(web_cluster.worker.hostname), 30,
             message="the worker online in the prefixed monitor")
    yield monitor
    monitor.stop()


@pytest.fixture(scope="module")
def nginx(prefixed_monitor: MonitorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    proxy = Proxy(Nginx(tmp_path_factory.mktemp("nginx")), free_port())
    proxy.nginx.start(SITE.format(port=proxy.port, prefix=PREFIX, upstream=prefixed_monitor.port),
                      proxy.url + "/healthcheck")
    yield proxy
    proxy.nginx.stop()


def test_pages_load_and_pushes_arrive_through_nginx(page: Page, nginx: Proxy, web_cluster: WebCluster) -> None:
    page.goto(nginx.url + "/tasks")
    expect(page.locator("#live")).to_have_text("live")
    for link in ("Workers", "Broker", "Graphs"):
        href = page.get_by_role("link", name=link, exact=True).get_attribute("href")
        assert href is not None and href.startswith(f"/{PREFIX}/"), href
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        result = client.send_task("tests.sleep", (1,))
        row = page.locator(f'#tasks tr[data-uuid="{result.id}"]')
        expect(row).to_be_visible(timeout=2000)
        result.get(timeout=10)
    expect(row).to_have_attribute("data-state", "SUCCESS", timeout=2000)
    page.get_by_role("link", name="Workers", exact=True).click()
    expect(page.locator(f'#workers tr[data-worker="{web_cluster.worker.hostname}"]')).to_contain_text("online")
    page.goto(nginx.url + "/graphs")
    expect(page.locator("#chart-workers")).to_be_visible()


def test_the_prefix_root_serves_the_workers_page(nginx: Proxy) -> None:
    response = httpx.get(f"http://127.0.0.1:{nginx.port}/{PREFIX}/", auth=AUTH)
    assert response.status_code == 200
    assert f'data-prefix="/{PREFIX}"' in response.text
