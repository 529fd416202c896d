"""The installed wheel (no extras) against real brokers and real prefork workers, seen over HTTP and in Chromium.

One cluster per broker, Redis and RabbitMQ (a private database and virtual host): a worker from
tests/support/tasks.py and the monitor started from the fresh venv's console script.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, Response, expect
from prometheus_client.parser import text_string_to_metric_families
from release_kit import AUTH, InstalledMonitor, Release
from support.browser import Console, open_page
from support.client import celery_client
from support.fleet import add_vhost, delete_vhost
from support.processes import RedisServer, Worker, start_worker, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.rabbitmq]

# What each kind of subresource must be served as (the start of its Content-Type).
CONTENT_TYPES = {"script": ("text/javascript", "application/javascript"), "stylesheet": ("text/css",),
                 "fetch": ("application/json",), "xhr": ("application/json",), "image": ("image/",)}


@dataclass
class Cluster:
    kind: str
    broker: str
    backend: str
    worker: Worker
    monitor: InstalledMonitor
    task_id: str  # a tests.add run before any page opened, finished and stored

    def post(self, path: str, **kwargs: object) -> dict[str, object]:
        response = self.monitor.client.post(path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()  # type: ignore[no-any-return]

    def get(self, path: str) -> dict[str, object]:
        response = self.monitor.client.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def cluster(request: pytest.FixtureRequest, release: Release, redis_server: RedisServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kind = request.param
    directory = tmp_path_factory.mktemp(f"installed-{kind}")
    vhost = add_vhost() if kind == "rabbitmq" else None
    broker = (f"amqp://guest:guest@127.0.0.1:5672/{vhost}" if vhost else f"redis://127.0.0.1:{redis_server.port}/9")
    backend = f"redis://127.0.0.1:{redis_server.port}/10"
    monitor = InstalledMonitor(release.plain, broker, directory).start()
    worker = start_worker(broker, f"release-{kind}", directory, backend=backend)
    try:
        wait_for(lambda: worker.hostname in monitor.client.get("/api/workers?status=true").json(), 30,
                 message=f"{worker.hostname} online in the installed monitor")
        with celery_client(broker, backend) as client:
            result = client.send_task("tests.add", (2, 3))
            assert result.get(timeout=20) == 5
        wait_for(lambda: monitor.client.get(f"/api/task/info/{result.id}").json().get("state") == "SUCCESS", 15,
                 message="the first task stored as SUCCESS")
        # The worker's inspect details in the monitor's cache, as its periodic inspect would leave them
        # (asked here, and again if a loaded machine made the worker miss the inspect timeout).
        named = f"/api/workers?workername={quote(worker.hostname, safe='')}&refresh=1"
        wait_for(lambda: monitor.client.get(named).json()[worker.hostname].get("stats"), 30, interval=0.5,
                 message=f"inspect details of {worker.hostname}")
        yield Cluster(kind, broker, backend, worker, monitor, result.id)
    finally:
        worker.stop()
        monitor.stop()
        if vhost:
            delete_vhost(vhost)


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Console]]:
    console = Console()
    tab = open_page(browser, console, auth=AUTH)
    yield tab, console
    tab.context.close()


def _page_data_arrived(page: Page, cluster: Cluster, path: str) -> None:
    """What shows that the page's script fetched its data (and, for a worker, that inspect answered)."""
    hostname = cluster.worker.hostname
    if path in ("/", "/workers"):
        expect(page.locator("#workers tbody")).to_contain_text(hostname)
    elif path.startswith("/worker/"):
        expect(page.locator("#pool-info")).to_contain_text("prefork", timeout=15_000)
    elif path == "/tasks":
        expect(page.locator(f'#tasks tr[data-uuid="{cluster.task_id}"]')).to_be_visible()
    elif path.startswith("/task/"):
        expect(page.locator("#task-state")).to_have_text("SUCCESS")
    elif path == "/broker":
        expect(page.locator("#broker-queues tbody")).to_contain_text("celery", timeout=15_000)
    elif path == "/graphs":
        expect(page.locator("#chart-workers .uplot")).to_be_visible()
    elif path.startswith("/workflow/"):
        expect(page.locator(f'#workflow-graph g.wf-node[data-id="{cluster.task_id}"]')).to_be_visible()
    else:  # a count the page's script writes once its data came
        counter = {"/failures": "#failures-total", "/audit": "#audit-total", "/schedules": "#schedules-tolerance",
                   "/notifications": "#deliveries-total"}[path]
        expect(page.locator(counter)).to_have_text(re.compile(r"\d"))


@pytest.mark.parametrize("path", ["/", "/workers", "/worker/{worker}", "/tasks", "/task/{task}", "/broker",
                                  "/graphs", "/workflow/{task}", "/failures", "/audit", "/schedules",
                                  "/notifications"])
def test_every_page_loads_its_scripts_and_styles(cluster: Cluster, page: tuple[Page, Console], path: str) -> None:
    tab, console = page
    path = path.format(worker=quote(cluster.worker.hostname, safe=""), task=cluster.task_id)
    responses: list[Response] = []
    tab.on("response", lambda response: responses.append(response))
    document = tab.goto(cluster.monitor.url + path)
    assert document is not None and document.status == 200
    # The script ran and its WebSocket opened (the notifications page has no pushes: it says it polls).
    expect(tab.locator("#live")).to_have_attribute("data-state", "polling" if path == "/notifications" else "live")
    _page_data_arrived(tab, cluster, path)
    # The stylesheet applied: the header is laid out by app.css, not the browser's defaults.
    assert tab.evaluate("getComputedStyle(document.querySelector('header.topbar')).display") == "flex"

    loaded = [r for r in responses if r.request.resource_type != "document"]
    kinds = {r.request.resource_type for r in loaded}
    assert {"script", "stylesheet", "fetch"} <= kinds, kinds
    wrong = [f"{r.request.resource_type} {r.url}: {r.status} {r.headers.get('content-type')}" for r in loaded
             if r.status != 200 or not r.headers.get("content-type", "").startswith(
                 CONTENT_TYPES.get(r.request.resource_type, ("",)))]
    assert not wrong, "\n".join(wrong)
    assert not console.errors, "\n".join(console.errors)


def test_a_task_run_after_the_page_opened_appears_without_reload(cluster: Cluster,
                                                                 page: tuple[Page, Console]) -> None:
    tab, console = page
    tab.goto(cluster.monitor.url + "/tasks")
    expect(tab.locator("#live")).to_have_attribute("data-state", "live")
    tab.evaluate("window.__stillTheSamePage = true")
    with celery_client(cluster.broker, cluster.backend) as client:
        result = client.send_task("tests.add", (40, 2))
        row = tab.locator(f'#tasks tr[data-uuid="{result.id}"]')
        expect(row).to_be_visible(timeout=10_000)
        assert result.get(timeout=20) == 42
    expect(row).to_have_attribute("data-state", "SUCCESS", timeout=10_000)
    assert tab.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"
    assert not console.errors, "\n".join(console.errors)


def test_worker_details_come_from_inspect(cluster: Cluster) -> None:
    name = cluster.worker.hostname
    details = cluster.get(f"/api/workers?workername={quote(name, safe='')}&refresh=1")[name]
    assert isinstance(details, dict)
    assert details["stats"]["pool"]["implementation"].endswith("prefork:TaskPool")
    assert "tests.add" in details["registered"]
    assert {queue["name"] for queue in details["active_queues"]} == {"celery"}
    assert details["conf"]["broker_url"].split("://")[0] == cluster.broker.split("://")[0]


def _pool_size(cluster: Cluster) -> int:
    name = cluster.worker.hostname
    return len(cluster.get(f"/api/workers?workername={quote(name, safe='')}&refresh=1")[name]["stats"]["pool"]
               ["processes"])  # type: ignore[index]


def test_a_pool_grow_reaches_the_worker(cluster: Cluster) -> None:
    name = cluster.worker.hostname
    before = _pool_size(cluster)
    reply = cluster.post(f"/api/worker/pool/grow/{quote(name, safe='')}", data={"n": "1"})
    assert reply == {"message": f"Growing '{name}' worker's pool by 1"}
    wait_for(lambda: _pool_size(cluster) == before + 1, 15, message="the worker's pool grown by one")


def test_a_send_task_runs_on_the_worker(cluster: Cluster) -> None:
    reply = cluster.post("/api/task/send-task/tests.add", json={"args": [20, 22]})
    task_id = reply["task-id"]
    assert isinstance(task_id, str) and task_id
    info = wait_for(lambda: (i := cluster.get(f"/api/task/info/{task_id}")).get("state") == "SUCCESS" and i, 20,
                    message="the sent task to succeed on the worker")
    assert info["result"] == "42" and info["worker"] == cluster.worker.hostname


def test_metrics_answer_with_flowers_metric_names(cluster: Cluster) -> None:
    response = cluster.monitor.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert {"flower_events", "flower_worker_online", "flower_task_runtime_seconds",
            "flower_task_prefetch_time_seconds", "flower_worker_prefetched_tasks",
            "flower_worker_number_of_currently_executing_tasks"} <= set(families)
    online = {s.labels["worker"]: s.value for s in families["flower_worker_online"].samples}
    assert online.get(cluster.worker.hostname) == 1
    succeeded = [s for s in families["flower_events"].samples if s.name == "flower_events_total"
                 and s.labels.get("type") == "task-succeeded" and s.labels.get("task") == "tests.add"]
    assert succeeded and succeeded[0].value >= 1


