"""Several clusters behind nginx terminating TLS, with a user scoped to one of them.

One monitor (``--xheaders``, under a URL prefix) on two clusters, ``blue`` and ``green`` (two
databases of a Redis server), a real worker of the same name on each; nginx in front with a
self-signed certificate, as in test_tls_proxy. Gus may control ``blue`` alone (``--cluster_access``).
Through the proxy, over https and wss: his lists hold blue's tasks and workers alone, his live feed
(through nginx's upgrade) carries blue's tasks alone, a control on blue's worker works and one on
green's is a 403, and green's worker is unknown to him (404). Chromium, through the proxy: the
admin's cluster switcher narrows the tasks table and its live pushes and keeps the choice across
pages, and Gus's worker page sets a rate limit on blue's worker and says green's is unknown.
"""

from __future__ import annotations

import base64
import json
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from access_fleet import launch, new_context
from playwright.sync_api import Browser, expect
from support.browser import Console, control_reaches_the_worker
from support.client import celery_client
from support.nginx import LOCATION, PORT_HEADER, SERVER, Nginx, self_signed
from support.processes import MonitorProcess, RedisServer, Worker, free_port, start_worker, wait_for
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

ADMIN = ("admin", "admin-secret-pw")
GUS = ("gus", "gus-secret-pw")  # control on blue, nothing of green
NAMES = ("blue", "green")
PREFIX = "/celery"


@dataclass
class Proxied:
    """The monitor, its clusters' brokers and workers, and the https address nginx serves it at."""

    brokers: dict[str, str]
    workers: dict[str, Worker]
    monitor: MonitorProcess
    base: str  # https://127.0.0.1:<nginx's port>/celery

    def worker(self, cluster: str) -> str:
        return f"{cluster}:{self.workers[cluster].hostname}"

    def send(self, cluster: str) -> str:
        task_id = f"{cluster}-{uuid.uuid4().hex[:8]}"
        with celery_client(self.brokers[cluster], "") as app:
            app.send_task("tests.add", args=(2, 3), task_id=task_id)
        return task_id

    def run(self, cluster: str) -> str:
        """A task run to its end on ``cluster`` and in the monitor's history."""
        task_id = self.send(cluster)

        def stored() -> bool:
            listed = self.monitor.json("/ui/tasks.json", params={"limit": 500, "state": "SUCCESS"})["tasks"]
            return any(task["uuid"] == task_id for task in listed)

        wait_for(stored, 30, message=f"{task_id} succeeded and stored in the monitor")
        return task_id

    def client(self, auth: tuple[str, str]) -> httpx.Client:
        """A client of the proxy: https, the certificate is the test's own."""
        return httpx.Client(base_url=self.base, auth=auth, verify=False, timeout=15)

    def socket(self, path: str, auth: tuple[str, str] = GUS) -> ClientConnection:
        """A WebSocket through nginx (wss, its upgrade), signed in with Basic."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        return connect(self.base.replace("https://", "wss://") + path, ssl=context, open_timeout=5,
                       additional_headers={"Authorization": f"Basic {token}"})


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    tmp = tmp_path_factory.mktemp("clusters-tls-proxy")
    redis = RedisServer(free_port(), tmp).start()
    brokers = {"blue": f"redis://127.0.0.1:{redis.port}/0", "green": f"redis://127.0.0.1:{redis.port}/1"}
    spec = ", ".join(f"{name}={url}" for name, url in brokers.items())
    monitor = MonitorProcess([f"--clusters={spec}", f"--db={tmp / 'monitor.db'}", "--inspect_timeout=1000",
                              "--xheaders", f"--basic_auth={ADMIN[0]}:{ADMIN[1]},{GUS[0]}:{GUS[1]}",
                              f"--cluster_access={GUS[0]}=blue:control", "--tasks_columns=name,uuid,state,worker",
                              f"--url_prefix={PREFIX}"],
                             free_port(), tmp / "monitor.log", {}, ADMIN, prefix=PREFIX)
    nginx = Nginx(tmp)
    workers: dict[str, Worker] = {}
    try:
        monitor.start(timeout=40, wait_connected=False)
        for name in NAMES:
            (tmp / name).mkdir()
            workers[name] = start_worker(brokers[name], "w", tmp / name)
        port = free_port()
        cert, key = self_signed(tmp, "127.0.0.1")
        location = LOCATION.format(path=f"{PREFIX}/", upstream=monitor.port, extra=PORT_HEADER)
        base = f"https://127.0.0.1:{port}{PREFIX}"
        nginx.start(SERVER.format(port=port, cert=cert, key=key, locations=location), f"{base}/healthcheck",
                    verify=False)
        proxied = Proxied(brokers, workers, monitor, base)
        online = {proxied.worker(name) for name in NAMES}
        wait_for(lambda: online <= {n for n, up in monitor.json("/api/workers?status=true").items() if up}, 60,
                 message=f"{online} online in the monitor")
        yield proxied
    finally:
        nginx.stop()
        for worker in workers.values():
            worker.stop()
        monitor.stop()
        redis.stop()


def test_the_scoped_users_lists_through_the_proxy_hold_its_cluster_alone(proxied: Proxied) -> None:
    ran = {name: proxied.run(name) for name in NAMES}
    with proxied.client(GUS) as gus:
        tasks = gus.get("/api/tasks").json()
        assert ran["blue"] in tasks and ran["green"] not in tasks
        assert {task["cluster"] for task in tasks.values()} == {"blue"}
        assert gus.get(f"/api/task/info/{ran['blue']}").json()["worker"] == proxied.worker("blue")
        assert gus.get(f"/api/task/info/{ran['green']}").status_code == 404  # not told it exists
        refused = gus.get("/api/tasks", params={"cluster": "green"})
        assert refused.status_code == 403
        assert refused.json()["error"] == "This identity may not see the cluster 'green'"
        assert set(gus.get("/api/workers").json()) == {proxied.worker("blue")}
        assert [row["hostname"] for row in gus.get("/ui/workers.json").json()["workers"]] == [proxied.worker("blue")]
        page = gus.get("/ui/tasks.json", params={"limit": 500}).json()["tasks"]
        assert ran["blue"] in {t["uuid"] for t in page} and {t["cluster"] for t in page} == {"blue"}
        # The monitor knows it is reached over https (--xheaders): it asks for HSTS.
        assert gus.get("/tasks").headers["strict-transport-security"].startswith("max-age=")
    with proxied.client(ADMIN) as admin:  # the unscoped admin sees both, through the same proxy
        assert {ran["blue"], ran["green"]} <= set(admin.get("/api/tasks").json())


def test_a_control_through_the_proxy_on_its_cluster_works_and_on_the_other_is_refused(proxied: Proxied) -> None:
    with proxied.client(GUS) as gus:
        allowed = gus.post(f"/api/worker/pool/grow/{proxied.worker('blue')}", params={"n": 1})
        assert allowed.status_code == 200, allowed.text
        refused = gus.post(f"/api/worker/pool/grow/{proxied.worker('green')}", params={"n": 1})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "This identity may not control the cluster 'green'"
        allowed = gus.post(f"/api/worker/pool/shrink/{proxied.worker('blue')}", params={"n": 1})
        assert allowed.status_code == 200, allowed.text
        # Green's worker is unknown to him, its page's data and Flower's API alike.
        green = quote(proxied.worker("green"))
        assert gus.get(f"/ui/worker/{green}.json").status_code == 404
        assert gus.get(f"/ui/worker/{green}/limits.json").status_code == 404
        assert gus.get("/api/workers", params={"workername": proxied.worker("green")}).status_code == 404
        assert gus.get(f"/ui/worker/{quote(proxied.worker('blue'))}.json").json()["worker"]["cluster"] == "blue"
    # The audit trail says which cluster each action reached, the refusal included.
    entries = proxied.monitor.json("/api/audit", params={"user": GUS[0]})["entries"]
    grown = {(e["target"], e["status"]): e["cluster"] for e in entries if e["action"] == "worker.pool_grow"}
    assert grown[(proxied.worker("blue"), 200)] == "blue"
    assert grown[(proxied.worker("green"), 403)] == "green"


def received_until(live: ClientConnection, task_id: str) -> list[dict[str, Any]]:
    """Every message of the page socket until one says ``task_id`` succeeded, that one included."""
    received: list[dict[str, Any]] = []
    while not any(t["uuid"] == task_id and t["state"] == "SUCCESS" for m in received for t in m["tasks"]):
        received.append(json.loads(live.recv(timeout=30)))
    return received


def test_the_live_feed_through_the_proxys_upgrade_carries_its_cluster_alone(proxied: Proxied) -> None:
    with proxied.socket("/api/ws?topics=tasks,workers") as live, \
            proxied.socket("/api/task/events/task-succeeded/") as events:
        assert json.loads(live.recv(timeout=5)) == {"hello": ["tasks", "workers"]}
        # Green's task is applied (and its pushes published) before blue's: were the feed not
        # narrowed, green's would reach the socket first.
        other = proxied.run("green")
        mine = proxied.send("blue")
        received = received_until(live, mine)
        told = [json.loads(events.recv(timeout=30))]
        while told[-1]["uuid"] != mine:
            told.append(json.loads(events.recv(timeout=30)))
    tasks = [task for message in received for task in message["tasks"]]
    assert {task["cluster"] for task in tasks} == {"blue"} and other not in {task["uuid"] for task in tasks}
    assert {worker["cluster"] for message in received for worker in message["workers"]} <= {"blue"}
    assert other not in {event["uuid"] for event in told}
    assert told[-1]["hostname"] == proxied.worker("blue")
    # Asking the feed for green through the proxy: closed with the reason.
    with proxied.socket("/api/ws?topics=tasks&cluster=green") as refused, pytest.raises(ConnectionClosed) as closed:
        refused.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.reason == "This identity may not see the cluster 'green'"


# -- in Chromium, through the proxy ----------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium(proxied: Proxied) -> Iterator[Browser]:
    yield from launch()


@pytest.mark.browser
def test_the_switcher_through_the_proxy_narrows_the_table_and_its_live_pushes(chromium: Browser,
                                                                             proxied: Proxied) -> None:
    console = Console()
    context = new_context(chromium, console, ignore_https_errors=True,
                          http_credentials={"username": ADMIN[0], "password": ADMIN[1]})
    try:
        page = context.new_page()
        ran = {name: proxied.run(name) for name in NAMES}
        page.goto(proxied.base + "/tasks")
        expect(page.locator(f'#tasks tr[data-uuid="{ran["green"]}"]')).to_have_count(1)
        page.get_by_label("Cluster", exact=True).select_option("green")
        page.wait_for_url(lambda url: "cluster=green" in url)
        expect(page.locator(f'#tasks tr[data-uuid="{ran["blue"]}"]')).to_have_count(0)
        expect(page.locator(f'#tasks tr[data-uuid="{ran["green"]}"]')).to_have_count(1)
        expect(page.locator("#live")).to_have_text("live")  # the wss socket, through nginx's upgrade
        page.evaluate("window.__stillTheSamePage = true")
        other = proxied.run("blue")
        mine = proxied.send("green")
        expect(page.locator(f'#tasks tr[data-uuid="{mine}"]')).to_have_attribute("data-state", "SUCCESS",
                                                                                 timeout=15_000)
        assert page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"
        expect(page.locator(f'#tasks tr[data-uuid="{other}"]')).to_have_count(0)
        assert page.url.startswith(proxied.base)  # the switcher's address stayed on the proxy's https origin
        # The choice travels through the proxy, under the prefix, to the workers page.
        page.get_by_role("link", name="Workers", exact=True).click()
        page.wait_for_url(f"{proxied.base}/workers?cluster=green")
        expect(page.locator("#workers tbody tr[data-worker]")).to_have_count(1)
        expect(page.locator(f'#workers tr[data-worker="{proxied.worker("green")}"]')).to_have_count(1)
    finally:
        context.close()
    assert not console.errors, "\n".join(console.errors)


@pytest.mark.browser
def test_the_scoped_user_controls_its_clusters_worker_from_its_page_through_the_proxy(
        chromium: Browser, proxied: Proxied) -> None:
    console = Console()
    context = new_context(chromium, console, ignore_https_errors=True,
                          http_credentials={"username": GUS[0], "password": GUS[1]})
    try:
        page = context.new_page()
        control_reaches_the_worker(page, proxied.base, proxied.worker("blue"), "31/m")
        page.goto(f"{proxied.base}/worker/{quote(proxied.worker('green'))}")
        expect(page.locator("#flash")).to_contain_text(f"Unknown worker '{proxied.worker('green')}'")
    finally:
        context.close()
    # The one complaint allowed: the 404 of green's worker data, which the page says as text.
    assert all("404" in error for error in console.errors), "\n".join(console.errors)
