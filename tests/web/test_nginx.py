"""Behind a real nginx under --url_prefix: pages load and pushes arrive through the proxy."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from support.browser import AUTH, WebCluster
from support.client import celery_client
from support.processes import MonitorProcess, free_port, new_monitor, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis]

NGINX = "/usr/sbin/nginx"
PREFIX = "celery"

# What a user writes: a location for the prefix, the WebSocket upgrade passed on, the original Host kept.
SITE = """
map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      close;
}}

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

# Only what a private, unprivileged-paths instance needs around the site.
MAIN = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 128; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""


@dataclass
class Proxy:
    port: int
    process: subprocess.Popen[bytes]

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
    if not Path(NGINX).exists():
        pytest.fail(f"{NGINX} is missing: run ./scripts/bootstrap (scripts/setup.d/10-frontend installs it)")
    tmp = tmp_path_factory.mktemp("nginx")
    port = free_port()
    (tmp / "site.conf").write_text(SITE.format(port=port, prefix=PREFIX, upstream=prefixed_monitor.port))
    (tmp / "nginx.conf").write_text(MAIN.format(tmp=tmp))
    check = subprocess.run([NGINX, "-t", "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf"),
                                "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy = Proxy(port, process)
    wait_for(lambda: httpx.get(proxy.url + "/healthcheck").status_code == 200, 10, message="nginx proxying")
    yield proxy
    process.terminate()
    process.wait(10)


def test_pages_load_and_pushes_arrive_through_nginx(page: Page, nginx: Proxy, web_cluster: WebCluster) -> None:
    page.goto(nginx.url + "/tasks")
    expect(page.locator("#live")).to_have_text("live")
    for link in ("Workers", "Broker", "Monitor"):
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
    page.goto(nginx.url + "/monitor")
    expect(page.locator("#chart-workers")).to_be_visible()


def test_the_prefix_root_serves_the_workers_page(nginx: Proxy) -> None:
    response = httpx.get(f"http://127.0.0.1:{nginx.port}/{PREFIX}/", auth=AUTH)
    assert response.status_code == 200
    assert f'data-prefix="/{PREFIX}"' in response.text
