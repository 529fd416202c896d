"""The pages of a monitor watching two clusters (``--clusters``), each with a real worker of the same name.

The header's cluster switcher lists them; choosing one narrows the workers and tasks tables and puts
``?cluster=`` in the address, which opens the same narrowed view when shared; the live socket of a
page on one cluster never carries another's tasks, the server choosing what it sends.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, WebSocket, expect
from support.browser import AUTH, Console, WebCluster, open_page
from support.client import celery_client
from support.processes import MonitorProcess, RedisServer, Worker, free_port, start_worker, wait_for
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = [pytest.mark.redis]
BASIC = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
NAMES = ("prod", "staging")
SCOPED = ("sam", "sam-secret-pw")  # reads staging alone (--cluster_access)
PARKED = {"prod": 2, "staging": 1}  # tasks waiting in the queue "parked", which no worker consumes


@dataclass
class TwoClusters:
    brokers: dict[str, str]
    workers: dict[str, Worker]
    monitor: MonitorProcess

    @property
    def url(self) -> str:
        return self.monitor.url

    def worker(self, cluster: str) -> str:
        """The worker's name in the monitor: qualified by its cluster."""
        return f"{cluster}:{self.workers[cluster].hostname}"

    def send(self, cluster: str, *args: object) -> str:
        task_id = f"{cluster}-{uuid.uuid4().hex[:8]}"
        with celery_client(self.brokers[cluster], "") as app:
            app.send_task("tests.add", args=args or (1, 2), task_id=task_id)
        return task_id

    def state(self, task_id: str) -> str | None:
        response = self.monitor.get(f"/api/task/info/{task_id}")
        return response.json().get("state") if response.status_code == 200 else None

    def fail(self, cluster: str, kind: str) -> str:
        """A task failed with ``kind`` on ``cluster``, kept in the monitor's failure groups."""
        task_id = f"{cluster}-{uuid.uuid4().hex[:8]}"
        with celery_client(self.brokers[cluster], "") as app:
            app.send_task("tests.fail_as", args=(kind, "boom"), task_id=task_id)
        wait_for(lambda: self.monitor.json("/api/failures/tasks", params={"name": "tests.fail_as", "exception": kind,
                                                                          "cluster": cluster})["total"] >= 1,
                 30, message=f"{task_id} in its failure group")
        return task_id

    def run(self, cluster: str) -> str:
        """A task run to its end on ``cluster``, and in the monitor's history (a page's first fetch reads it)."""
        task_id = self.send(cluster)
        wait_for(lambda: self.state(task_id) == "SUCCESS", 30, message=f"{task_id} succeeded in the monitor")
        wait_for(lambda: any(t["uuid"] == task_id for t in self.monitor.json("/ui/tasks.json?limit=500")["tasks"]),
                 10, message=f"{task_id} in the history")
        return task_id


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoClusters]:
    tmp = tmp_path_factory.mktemp("web-clusters")
    redis = RedisServer(free_port(), tmp).start()
    brokers = {"prod": f"redis://127.0.0.1:{redis.port}/0", "staging": f"redis://127.0.0.1:{redis.port}/1"}
    spec = ",".join(f"{name}={url}" for name, url in brokers.items())
    monitor = MonitorProcess([f"--clusters={spec}", f"--db={tmp / 'monitor.db'}", "--inspect_timeout=1000",
                              f"--basic_auth={AUTH[0]}:{AUTH[1]},{SCOPED[0]}:{SCOPED[1]}",
                              f"--cluster_access={SCOPED[0]}=staging:read", "--tasks_columns=name,uuid,state,worker",
                              "--queues=parked"],
                             free_port(), tmp / "monitor.log", {}, AUTH)
    workers: dict[str, Worker] = {}
    try:
        monitor.start(timeout=40, wait_connected=False)
        wait_for(lambda: all(c["connected"] for c in monitor.json("/api/monitor/status")["clusters"].values()), 40,
                 message="both clusters' streams connected")
        for name in NAMES:
            (tmp / name).mkdir()
            workers[name] = start_worker(brokers[name], "w", tmp / name)
        clusters = TwoClusters(brokers, workers, monitor)
        for name, count in PARKED.items():
            with celery_client(brokers[name], "") as app:
                for n in range(count):
                    app.send_task("tests.add", args=(n, n), queue="parked", task_id=f"{name}-parked-{n}")
        online = {clusters.worker(name) for name in NAMES}
        wait_for(lambda: online <= {n for n, up in monitor.json("/api/workers?status=true").items() if up}, 60,
                 message=f"{online} online in the monitor")
        yield clusters
    finally:
        for worker in workers.values():
            worker.stop()
        monitor.stop()
        redis.stop()


def shown_rows(page: Page, table: str, key: str) -> list[str]:
    return page.locator(f"#{table} tbody tr[data-{key}]").evaluate_all(f"rows => rows.map(r => r.dataset.{key})")


def address_cluster(page: Page) -> list[str]:
    return parse_qs(urlsplit(page.url).query).get("cluster", [])


# -- in the browser ------------------------------------------------------------------------------

@pytest.mark.browser
def test_the_switcher_lists_the_clusters_and_narrows_the_workers_table(page: Page, two: TwoClusters) -> None:
    page.goto(two.url + "/workers")
    switcher = page.get_by_label("Cluster", exact=True)
    expect(switcher.locator("option")).to_have_text(["All clusters", "prod", "staging"])
    expect(switcher).to_have_value("")
    rows = page.locator("#workers tbody tr[data-worker]")
    expect(rows).to_have_count(2)
    staging = page.locator(f'#workers tr[data-worker="{two.worker("staging")}"]')
    expect(staging.locator('[data-key="cluster"]')).to_have_text("staging")
    expect(page.locator("#workers thead th")).to_contain_text(["Worker", "Cluster", "Status"])

    switcher.select_option("staging")
    page.wait_for_url("**/workers?cluster=staging")
    expect(page.get_by_label("Cluster", exact=True)).to_have_value("staging")
    expect(rows).to_have_count(1)
    assert shown_rows(page, "workers", "worker") == [two.worker("staging")]
    # The choice travels with the navigation: the header's links and the worker's own link carry it.
    expect(page.get_by_role("link", name="Tasks", exact=True)).to_have_attribute("href", "/tasks?cluster=staging")
    expect(staging.get_by_role("link")).to_have_attribute(
        "href", f"/worker/{two.worker('staging').replace(':', '%3A').replace('@', '%40')}?cluster=staging")

    page.get_by_label("Cluster", exact=True).select_option("")
    page.wait_for_url(lambda url: "cluster=" not in url)
    expect(rows).to_have_count(2)


@pytest.mark.browser
def test_choosing_a_cluster_narrows_the_tasks_table_and_the_address(page: Page, two: TwoClusters) -> None:
    ran = {name: two.run(name) for name in NAMES}
    page.goto(two.url + "/tasks?state=SUCCESS")
    for name, task_id in ran.items():
        expect(page.locator(f'#tasks tr[data-uuid="{task_id}"] [data-column="cluster"]')).to_have_text(name)
    expect(page.locator("#tasks thead th").first).to_have_text("cluster")

    page.get_by_label("Cluster", exact=True).select_option("prod")
    page.wait_for_url(lambda url: "cluster=prod" in url)
    expect(page.locator(f'#tasks tr[data-uuid="{ran["prod"]}"]')).to_be_visible()
    page.wait_for_function("() => [...document.querySelectorAll('#tasks tbody tr[data-uuid]')]"
                           ".every(row => row.querySelector('[data-column=cluster]').textContent === 'prod')")
    expect(page.locator(f'#tasks tr[data-uuid="{ran["staging"]}"]')).to_have_count(0)
    # The page's other filters stay in the address beside the cluster.
    assert address_cluster(page) == ["prod"]
    assert parse_qs(urlsplit(page.url).query)["state"] == ["SUCCESS"]
    # The worker filter offers only the chosen cluster's workers.
    workers = page.get_by_label("Worker", exact=True).locator("option").all_text_contents()
    assert workers == ["All workers", two.worker("prod")]


@pytest.mark.browser
def test_a_shared_address_opens_narrowed_and_keeps_its_cluster_across_pages(page: Page, two: TwoClusters) -> None:
    ran = {name: two.run(name) for name in NAMES}
    page.goto(two.url + "/tasks?cluster=staging")
    expect(page.get_by_label("Cluster", exact=True)).to_have_value("staging")
    expect(page.locator(f'#tasks tr[data-uuid="{ran["staging"]}"]')).to_be_visible()
    expect(page.locator(f'#tasks tr[data-uuid="{ran["prod"]}"]')).to_have_count(0)

    page.get_by_role("link", name="Workers", exact=True).click()
    page.wait_for_url("**/workers?cluster=staging")
    expect(page.locator("#workers tbody tr[data-worker]")).to_have_count(1)
    assert shown_rows(page, "workers", "worker") == [two.worker("staging")]
    # The graphs are the chosen cluster's: the page asks for that cluster's points.
    with page.expect_request(lambda request: "/ui/graphs.json?cluster=staging" in request.url):
        page.get_by_role("link", name="Graphs", exact=True).click()
    page.wait_for_url("**/graphs?cluster=staging")
    expect(page.locator("#cluster-scope")).to_have_count(0)
    # A page the switcher does not narrow says so, and keeps the choice for the next link.
    page.get_by_role("link", name="Notifications", exact=True).click()
    page.wait_for_url("**/notifications?cluster=staging")
    expect(page.locator("#cluster-scope")).to_have_text("not filtered here")


def queue_rows(page: Page) -> list[tuple[str, str]]:
    return page.locator("#broker-queues tbody tr[data-queue]").evaluate_all(
        "rows => rows.map(r => [r.dataset.cluster, r.dataset.queue])")


@pytest.mark.browser
def test_the_broker_page_shows_each_clusters_queues_and_follows_the_switcher(page: Page, two: TwoClusters) -> None:
    page.goto(two.url + "/broker")
    expect(page.locator("#broker-queues thead th").first).to_have_text("Cluster")
    parked = page.locator('#broker-queues tr[data-queue="parked"]')
    expect(parked).to_have_count(2)
    for name, count in PARKED.items():
        row = page.locator(f'#broker-queues tr[data-queue="parked"][data-cluster="{name}"]')
        expect(row.locator('[data-key="cluster"]')).to_have_text(name)
        expect(row.locator("td.num").first).to_have_text(str(count))
    # A queue's tasks are read on its own cluster's broker.
    page.locator('#broker-queues tr[data-queue="parked"][data-cluster="staging"]').get_by_role("button").click()
    expect(page.locator("#queue-tasks tbody tr[data-uuid]")).to_have_count(1)
    expect(page.locator("#queue-tasks tbody tr[data-uuid]")).to_have_attribute("data-uuid", "staging-parked-0")
    expect(page.locator("#queue-name")).to_have_text("parked (staging)")

    page.get_by_label("Cluster", exact=True).select_option("prod")
    page.wait_for_url(lambda url: "cluster=prod" in url)
    expect(parked).to_have_count(1)
    assert {cluster for cluster, _queue in queue_rows(page)} == {"prod"}


@pytest.mark.browser
def test_the_failures_page_shows_each_clusters_groups_and_follows_the_switcher(page: Page, two: TwoClusters) -> None:
    failed = {name: two.fail(name, "PageBoom") for name in NAMES}
    page.goto(two.url + "/failures")
    rows = page.locator('#failure-groups tbody tr[data-exception="PageBoom"]')
    expect(rows).to_have_count(2)  # the same failure in two clusters: two groups
    expect(page.locator("#failure-groups thead th")).to_contain_text(["Task", "Cluster", "Exception"])
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.cluster)")) == ["prod", "staging"]

    page.get_by_label("Cluster", exact=True).select_option("staging")
    page.wait_for_url(lambda url: "cluster=staging" in url)
    expect(page.locator("#cluster-scope")).to_have_count(0)  # this page is narrowed: no notice
    expect(rows).to_have_count(1)
    expect(rows.locator('[data-column="cluster"]')).to_have_text("staging")
    rows.click()
    expect(page.locator("#group-cluster")).to_have_text(" · staging")
    expect(page.locator("#group-tasks tbody tr")).to_have_count(1)
    expect(page.locator(f'#group-tasks tr[data-uuid="{failed["staging"]}"]')).to_have_count(1)
    query = parse_qs(urlsplit(page.url).query)
    assert query["cluster"] == ["staging"] and query["group_cluster"] == ["staging"]
    assert query["exception"] == ["PageBoom"]
    # The shared address opens the same group of the same cluster.
    page.goto(page.url)
    expect(page.locator(f'#group-tasks tr[data-uuid="{failed["staging"]}"]')).to_have_count(1)
    expect(page.locator(f'#group-tasks tr[data-uuid="{failed["prod"]}"]')).to_have_count(0)


@pytest.mark.browser
def test_the_audit_trail_follows_the_chosen_cluster_live(page: Page, two: TwoClusters) -> None:
    def revoke(task_id: str) -> None:
        # Known to the monitor first: a revoke of a task it does not know goes to every cluster.
        wait_for(lambda: two.state(task_id) is not None, 30, message=f"{task_id} known to the monitor")
        assert two.monitor.client.post(f"/api/task/revoke/{task_id}").status_code == 200

    earlier = {name: two.send(name) for name in NAMES}
    for task_id in earlier.values():
        revoke(task_id)
    page.goto(two.url + "/audit?cluster=staging")
    rows = page.locator("#audit tbody tr[data-id]")
    expect(rows).to_have_count(1)
    expect(rows.locator('td[data-column="cluster"]')).to_have_text(["staging"])
    expect(page.locator("#cluster-scope")).to_have_count(0)  # this page is narrowed: no notice
    later = {name: two.send(name) for name in NAMES}
    revoke(later["prod"])
    revoke(later["staging"])  # pushed after prod's: once it shows, prod's would have too
    expect(rows.locator('td[data-column="target"] a[data-filter]')).to_have_text([later["staging"], earlier["staging"]])
    assert "cluster=staging" in page.url


@pytest.mark.browser
def test_a_page_on_one_cluster_receives_no_push_of_another(page: Page, two: TwoClusters) -> None:
    frames: list[str] = []

    def listen(socket: WebSocket) -> None:
        if "/api/ws" in socket.url:
            socket.on("framereceived", lambda payload: frames.append(str(payload)))

    page.on("websocket", listen)
    page.goto(two.url + "/tasks?cluster=prod")
    expect(page.locator("#live")).to_have_text("live")
    page.evaluate("window.__stillTheSamePage = true")
    # staging's task is applied (and its notices published) before prod's: by the time prod's
    # reaches the page, staging's would have reached it too, were the socket not filtered.
    other = two.send("staging")
    wait_for(lambda: two.state(other) == "SUCCESS", 30, message=f"{other} succeeded in the monitor")
    mine = two.send("prod")
    expect(page.locator(f'#tasks tr[data-uuid="{mine}"]')).to_have_attribute("data-state", "SUCCESS", timeout=10_000)
    assert page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"
    expect(page.locator(f'#tasks tr[data-uuid="{other}"]')).to_have_count(0)
    pushed = "".join(frames)
    assert mine in pushed
    assert other not in pushed
    assert "staging" not in pushed


@pytest.mark.browser
def test_a_tasks_and_its_workflows_pages_follow_it_whatever_cluster_the_address_carries(
        page: Page, two: TwoClusters) -> None:
    task_id = f"staging-{uuid.uuid4().hex[:8]}"
    with celery_client(two.brokers["staging"], "") as app:
        app.send_task("tests.sleep", args=(2,), task_id=task_id)
    wait_for(lambda: two.state(task_id) == "STARTED", 30, message=f"{task_id} started")
    page.goto(f"{two.url}/task/{task_id}?cluster=prod")  # a link followed from a page on prod, say
    expect(page.locator('#task-fields [data-field="cluster"]')).to_have_text("staging")
    expect(page.locator("#task-state")).to_have_text("SUCCESS", timeout=10_000)
    # So does its workflow's page (a task sent alone is its own root), which says its cluster.
    page.goto(f"{two.url}/workflow/{task_id}?cluster=prod")
    expect(page.locator("#workflow-summary")).to_contain_text("cluster staging")
    expect(page.locator("#cluster-scope")).to_have_count(0)


@pytest.mark.browser
def test_a_bad_cluster_in_the_address_is_said_as_text(page: Page, two: TwoClusters) -> None:
    page.goto(two.url + "/workers?cluster=%3Cb%3Ebold%3C/b%3E")
    flash = page.locator("#flash")
    expect(flash).to_contain_text("Invalid 'cluster' in the address: cluster name '<b>bold</b>' must be")
    expect(flash.locator("b")).to_have_count(0)
    expect(page.get_by_label("Cluster", exact=True)).to_have_value("")
    expect(page.locator("#workers tbody tr[data-worker]")).to_have_count(2)


@pytest.mark.browser
def test_one_cluster_needs_no_switcher_nor_cluster_column(page: Page, console: Console,
                                                         web_cluster: WebCluster) -> None:
    page.goto(web_cluster.monitor.url + "/tasks")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#cluster")).to_have_count(0)
    expect(page.locator('#tasks thead th[data-column="cluster"]')).to_have_count(0)
    page.goto(web_cluster.monitor.url + "/workers")
    expect(page.locator("#workers thead th")).not_to_contain_text(["Cluster"])
    with celery_client(web_cluster.broker, web_cluster.backend) as client:
        result = client.send_task("tests.add", (1, 1))
        result.get(timeout=10)
    page.goto(f"{web_cluster.monitor.url}/task/{result.id}")
    expect(page.locator('#task-fields [data-field="state"]')).to_have_text("SUCCESS")
    expect(page.locator('#task-fields [data-field="cluster"]')).to_have_count(0)


# -- over HTTP and the WebSocket -----------------------------------------------------------------

def socket(two: TwoClusters, path: str) -> ClientConnection:
    return connect(two.url.replace("http://", "ws://") + path, additional_headers={"Authorization": BASIC},
                   open_timeout=5)


def messages_until(connection: ClientConnection, done: object, timeout: float = 30) -> list[dict[str, object]]:
    """Every message received until one satisfies ``done`` (a callable), included."""
    received: list[dict[str, object]] = []
    while True:
        message = json.loads(connection.recv(timeout=timeout))
        received.append(message)
        if done(message):  # type: ignore[operator]
            return received


def test_the_page_socket_sends_only_the_chosen_clusters_tasks_and_workers(two: TwoClusters) -> None:
    with socket(two, "/api/ws?topics=tasks,workers&cluster=prod") as live:
        assert json.loads(live.recv(timeout=5)) == {"hello": ["tasks", "workers"]}
        other = two.send("staging")
        wait_for(lambda: two.state(other) == "SUCCESS", 30, message=f"{other} succeeded in the monitor")
        mine = two.send("prod")
        received = messages_until(live, lambda m: any(t["uuid"] == mine and t["state"] == "SUCCESS"
                                                      for t in m["tasks"]))
    tasks = [task for message in received for task in message["tasks"]]  # type: ignore[attr-defined]
    workers = [worker for message in received for worker in message["workers"]]  # type: ignore[attr-defined]
    assert {task["cluster"] for task in tasks} == {"prod"}
    assert other not in {task["uuid"] for task in tasks}
    assert {worker["cluster"] for worker in workers} <= {"prod"}
    assert {worker["hostname"] for worker in workers} <= {two.worker("prod")}


def test_the_events_socket_sends_only_the_chosen_clusters_events(two: TwoClusters) -> None:
    with socket(two, "/api/task/events/task-succeeded/?cluster=staging") as events:
        other = two.send("prod")
        wait_for(lambda: two.state(other) == "SUCCESS", 30, message=f"{other} succeeded in the monitor")
        mine = two.send("staging")
        received = messages_until(events, lambda m: m.get("uuid") == mine)
    assert {event["uuid"] for event in received} == {mine}
    assert {event.get("cluster") for event in received} == {"staging"}
    assert received[-1]["hostname"] == two.worker("staging")


@pytest.mark.parametrize("path", ["/api/ws?topics=tasks&cluster=Prod!",
                                  "/api/task/events/task-succeeded/?cluster=a,-b"])
def test_a_socket_asking_for_a_bad_cluster_is_closed_with_a_reason(two: TwoClusters, path: str) -> None:
    with socket(two, path) as connection, pytest.raises(ConnectionClosed) as closed:
        connection.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith("Invalid 'cluster': cluster name ")


def test_the_workers_pages_data_is_narrowed_by_cluster(two: TwoClusters) -> None:
    rows = two.monitor.json("/ui/workers.json?cluster=staging")["workers"]
    assert [(row["hostname"], row["cluster"]) for row in rows] == [(two.worker("staging"), "staging")]
    every = two.monitor.json("/ui/workers.json")["workers"]
    assert {row["cluster"] for row in every} == {"prod", "staging"}
    bad = two.monitor.get("/ui/workers.json", params={"cluster": "Not A Name"})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("Invalid 'cluster': cluster name 'Not A Name' must be")


@pytest.mark.browser
def test_a_user_scoped_to_one_cluster_sees_its_tasks_and_workers_alone(
        browser: Browser, console: Console, two: TwoClusters) -> None:
    theirs, other = two.run("staging"), two.run("prod")
    failed = {name: two.fail(name, "ScopedBoom") for name in NAMES}
    page = open_page(browser, console, auth=SCOPED)
    try:
        page.goto(two.url + "/tasks")
        expect(page.locator(f'#tasks tr[data-uuid="{theirs}"]')).to_have_count(1)
        # One cluster to see: no switcher (prod is not even named), and none of prod's tasks.
        expect(page.get_by_label("Cluster", exact=True)).to_have_count(0)
        assert "prod" not in page.locator("header").inner_text()
        expect(page.locator(f'#tasks tr[data-uuid="{other}"]')).to_have_count(0)
        assert all(uuid.startswith("staging-") for uuid in shown_rows(page, "tasks", "uuid"))
        assert "prod:" not in page.content()  # not even prod's worker in the worker filter
        page.goto(two.url + "/workers")
        expect(page.locator("#workers tbody tr[data-worker]")).to_have_count(1)
        expect(page.locator(f'#workers tr[data-worker="{two.worker("staging")}"]')).to_have_count(1)
        # Failures: staging's group alone, its task alone.
        page.goto(two.url + "/failures")
        group = page.locator('#failure-groups tbody tr[data-exception="ScopedBoom"]')
        expect(group).to_have_count(1)
        assert group.get_attribute("data-cluster") == "staging"
        group.click()
        expect(page.locator(f'#group-tasks tr[data-uuid="{failed["staging"]}"]')).to_have_count(1)
        expect(page.locator(f'#group-tasks tr[data-uuid="{failed["prod"]}"]')).to_have_count(0)
        page.goto(two.url + "/broker")  # staging's queues alone, where every cluster's were refused
        expect(page.locator('#broker-queues tr[data-queue="parked"]')).to_have_count(1)
        assert {cluster for cluster, _queue in queue_rows(page)} == {"staging"}
    finally:
        page.context.close()
    assert not console.errors, "\n".join(console.errors)
