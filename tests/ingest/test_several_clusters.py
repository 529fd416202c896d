"""One monitor watching several Celery clusters (``--clusters``), with real workers on each.

Two Redis databases of one server and a RabbitMQ virtual host, a worker of the same name on each:
every task lands under its own cluster, the workers stay apart, the API filters by cluster, each
cluster's queues are read from its own broker, and a cluster whose broker goes away leaves the
others live (its queues included).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from celery import Celery
from celery.schedules import crontab
from redbeat import RedBeatSchedulerEntry
from support.client import celery_client
from support.fleet import add_vhost, delete_vhost
from support.processes import MonitorProcess, RedisServer, Worker, free_port, start_worker, wait_for
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from celery_monitor.auth.tokens import digest_of

ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")  # control on alpha, read on beta, nothing of gamma and delta
CI_TOKEN = "cmon_ci-token-for-gamma-only"  # read on gamma
PARKED = "parked"  # a queue no worker consumes, measured on every cluster (--queues)
PARKED_COUNTS = {"alpha": 3, "beta": 2, "gamma": 1}


@dataclass
class Clusters:
    brokers: dict[str, str]
    workers: dict[str, Worker]
    monitor: MonitorProcess
    own_redis: RedisServer
    lonely_redis: RedisServer
    redbeats: dict[str, str]

    def send(self, cluster: str, name: str, *args: object, queue: str | None = None) -> str:
        task_id = f"{cluster}-{uuid.uuid4().hex[:8]}"
        with celery_client(self.brokers[cluster], "") as app:
            app.send_task(name, args=args, task_id=task_id, queue=queue)
        return task_id

    def parked(self) -> dict[str, int]:
        """The parked queue's length in each cluster, as /api/queues/length says it."""
        queues = self.monitor.json("/api/queues/length")["active_queues"]
        return {q["cluster"]: q["messages"] for q in queues if q["name"] == PARKED}

    def task(self, task_id: str) -> dict[str, object] | None:
        response = self.monitor.get(f"/api/task/info/{task_id}")
        return response.json() if response.status_code == 200 else None


@pytest.fixture(scope="module")
def several(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    tmp = tmp_path_factory.mktemp("several-clusters")
    own = RedisServer(free_port(), tmp).start()
    lonely = RedisServer(free_port(), tmp_path_factory.mktemp("lonely")).start()
    vhost = add_vhost()
    brokers = {
        "alpha": f"redis://127.0.0.1:{own.port}/0",
        "beta": f"redis://127.0.0.1:{own.port}/1",
        "gamma": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "delta": lonely.url,
    }
    # alpha and beta keep results, each in a database of its own: a read must go to the task's cluster.
    backends = {"alpha": f"redis://127.0.0.1:{own.port}/2", "beta": f"redis://127.0.0.1:{own.port}/3"}
    # alpha and beta each have a RedBeat schedule of their own.
    redbeats = {"alpha": f"redis://127.0.0.1:{own.port}/4", "beta": f"redis://127.0.0.1:{own.port}/5"}
    spec = ",".join(f"{name}={url}" + (f" result_backend={backends[name]}" if name in backends else "")
                    + (f" redbeat_url={redbeats[name]}" if name in redbeats else "")
                    for name, url in brokers.items())
    access = "alice=alpha:control,alice=beta:read,token:ci=gamma:read"
    monitor = MonitorProcess([f"--clusters={spec}", f"--db={tmp / 'monitor.db'}", f"--basic_auth={ADMIN[0]}:{ADMIN[1]}"
                              f",{ALICE[0]}:{ALICE[1]}", f"--cluster_access={access}", "--inspect_timeout=3000",
                              f"--api_tokens=ci:full:{digest_of(CI_TOKEN)}", f"--queues={PARKED}"],
                             free_port(), tmp / "monitor.log", {}, auth=ADMIN)
    workers: dict[str, Worker] = {}
    try:
        monitor.start(timeout=40, wait_connected=False)
        wait_for(lambda: all(c["connected"] for c in monitor.json("/api/monitor/status")["clusters"].values()), 40,
                 message="every cluster's stream connected")
        # The same worker name in three clusters: "w@<host>".
        for name in ("alpha", "beta", "gamma"):
            (tmp / name).mkdir()
            workers[name] = start_worker(brokers[name], "w", tmp / name, backend=backends.get(name))
        clusters = Clusters(brokers, workers, monitor, own, lonely, redbeats)
        # Tasks waiting in a queue no worker consumes, a different number on each cluster.
        for name, count in PARKED_COUNTS.items():
            for _ in range(count):
                clusters.send(name, "tests.add", 1, 1, queue=PARKED)
        yield clusters
    finally:
        for worker in workers.values():
            worker.stop()
        monitor.stop()
        own.stop()
        lonely.stop()
        delete_vhost(vhost)


def test_workers_of_the_same_name_stay_apart_under_their_clusters(several: Clusters) -> None:
    hostname = several.workers["alpha"].hostname
    expected = {f"{name}:{hostname}": name for name in ("alpha", "beta", "gamma")}

    def listed() -> dict[str, object]:
        workers = several.monitor.json("/api/workers")
        return {name: entry["cluster"] for name, entry in workers.items() if entry["status"]}

    wait_for(lambda: listed() == expected, 60, message=f"the three workers online: {expected}")
    only_beta = several.monitor.json("/api/workers?cluster=beta")
    assert list(only_beta) == [f"beta:{hostname}"]
    assert several.monitor.json("/api/workers?status=true&cluster=gamma") == {f"gamma:{hostname}": True}


def test_each_task_lands_under_its_own_cluster(several: Clusters) -> None:
    sent = {cluster: several.send(cluster, "tests.add", 2, 3) for cluster in ("alpha", "beta", "gamma")}
    hostname = several.workers["alpha"].hostname
    for cluster, task_id in sent.items():
        wait_for(lambda task_id=task_id: (several.task(task_id) or {}).get("state") == "SUCCESS", 60,
                 message=f"{task_id} succeeded in the monitor")
        task = several.task(task_id)
        assert task is not None
        assert task["cluster"] == cluster
        assert task["worker"] == f"{cluster}:{hostname}"
    for cluster, task_id in sent.items():
        listed = several.monitor.json(f"/api/tasks?cluster={cluster}")
        assert task_id in listed
        assert {t["cluster"] for t in listed.values()} == {cluster}
    both = several.monitor.json("/api/tasks?cluster=alpha,gamma")
    assert {sent["alpha"], sent["gamma"]} <= set(both)
    assert sent["beta"] not in both


def test_metrics_say_each_series_cluster_and_the_bare_hostname(several: Clusters) -> None:
    task_id = several.send("beta", "tests.add", 4, 4)
    wait_for(lambda: (several.task(task_id) or {}).get("state") == "SUCCESS", 60, message=f"{task_id} succeeded")
    hostname = several.workers["beta"].hostname
    metric = several.monitor.metric
    # The worker label is the hostname; the cluster label tells the three workers of that name apart.
    succeeded = {"task": "tests.add", "type": "task-succeeded", "worker": hostname}
    assert metric("flower_events_total", cluster="beta", **succeeded) >= 1
    assert metric("flower_task_runtime_seconds_count", cluster="beta", task="tests.add", worker=hostname) >= 1
    assert metric("celery_monitor_task_outcomes_total", cluster="beta", task="tests.add", state="SUCCESS") >= 1
    for cluster in ("alpha", "beta", "gamma"):
        assert metric("flower_worker_online", cluster=cluster, worker=hostname) == 1, cluster
        assert metric("celery_monitor_workers", cluster=cluster, status="online") == 1, cluster
        assert metric("celery_monitor_events_received_total", cluster=cluster) > 0, cluster
    assert metric("celery_monitor_workers", cluster="delta", status="online") == 0
    for cluster in ("alpha", "beta", "gamma", "delta"):
        assert metric("celery_monitor_receiver_connected", cluster=cluster) == 1, cluster
    assert metric("flower_worker_online", worker=f"beta:{hostname}") == 0  # no qualified name as a label
    # The retained tasks by state are each cluster's: none is default's, which this monitor does not watch.
    assert metric("celery_monitor_tasks", cluster="beta", state="SUCCESS") >= 1
    assert "default" not in clusters_of(several.monitor, "celery_monitor_tasks")
    # The reader's own counters are each cluster's too.
    for family in ("celery_monitor_event_messages_dropped_total", "celery_monitor_reader_restarts_total",
                   "celery_monitor_spool_backlog_bytes"):
        assert clusters_of(several.monitor, family) == {"alpha", "beta", "gamma", "delta"}, family


def clusters_of(monitor: MonitorProcess, name: str) -> set[str]:
    """The clusters a family has a sample for."""
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.labels["cluster"] for family in text_string_to_metric_families(monitor.get("/metrics").text)
            for sample in family.samples if sample.name == name and "cluster" in sample.labels}


def test_a_bad_cluster_filter_gets_a_400_with_a_reason(several: Clusters) -> None:
    response = several.monitor.get("/api/tasks", params={"cluster": "Not A Name"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid 'cluster': cluster name 'Not A Name' must be")


def test_queue_lengths_are_read_from_each_clusters_broker(several: Clusters) -> None:
    monitor = several.monitor
    # RabbitMQ's management API refreshes its counts every few seconds.
    wait_for(lambda: {c: n for c, n in several.parked().items() if n} == PARKED_COUNTS, 30,
             message=f"the parked queue's length on each cluster: {PARKED_COUNTS}")
    beta = monitor.json("/api/queues/length", params={"cluster": "beta"})["active_queues"]
    assert {q["cluster"] for q in beta} == {"beta"} and {"celery", PARKED} <= {q["name"] for q in beta}
    bad = monitor.get("/api/queues/length", params={"cluster": "Not A Name"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("Invalid 'cluster': cluster name")
    # The backlog: one queue of one cluster, or the queue of that name in every cluster shown.
    backlog = monitor.json("/api/queues/backlog", params={"queue": PARKED, "cluster": "alpha,beta"})
    assert set(backlog["queues"]) == {"alpha:parked", "beta:parked"} and backlog["waiting"] == 5
    assert monitor.json("/api/queues/backlog", params={"queue": "gamma:parked"})["backlog"] == 1
    # The tasks waiting in a queue are read on its cluster's broker, which must be named.
    waiting = monitor.json(f"/api/queues/{PARKED}/tasks", params={"cluster": "beta"})
    assert (waiting["cluster"], waiting["total"]) == ("beta", 2)
    assert {t["uuid"].split("-")[0] for t in waiting["tasks"]} == {"beta"}
    assert monitor.get(f"/api/queues/{PARKED}/tasks").status_code == 400
    assert monitor.get(f"/api/queues/{PARKED}/tasks", params={"cluster": "omega"}).status_code == 404
    # The broker page's data follows the cluster switcher.
    page = monitor.json("/ui/broker.json", params={"cluster": "gamma"})
    assert {q["cluster"] for q in page["queues"]} == {"gamma"} and "guest:guest" not in str(page["brokers"])
    # The queue gauges say each queue's cluster.
    for cluster, count in PARKED_COUNTS.items():
        assert monitor.metric("celery_monitor_queue_length", cluster=cluster, queue=PARKED) == count, cluster
        assert monitor.metric("celery_monitor_queue_backlog", cluster=cluster, queue=PARKED) == count, cluster


def errors_of(monitor: MonitorProcess, cluster: str) -> float:
    """The cluster's receiver errors, whatever their reason (one sample per reason)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(monitor.get("/metrics").text)
               for sample in family.samples
               if sample.name == "celery_monitor_receiver_errors_total" and sample.labels.get("cluster") == cluster)


def test_a_cluster_whose_broker_stops_leaves_the_others_live(several: Clusters) -> None:
    several.lonely_redis.stop()

    def delta() -> dict[str, object]:
        clusters: dict[str, dict[str, object]] = several.monitor.json("/api/monitor/status")["clusters"]
        return clusters["delta"]

    wait_for(lambda: not delta()["connected"] and delta()["last_error"], 30, message="delta seen down")
    # Its own receiver's gauges say so, per cluster; the others stay connected.
    assert several.monitor.metric("celery_monitor_receiver_connected", cluster="delta") == 0
    assert errors_of(several.monitor, "delta") >= 1
    task_id = several.send("gamma", "tests.add", 1, 1)
    wait_for(lambda: (several.task(task_id) or {}).get("state") == "SUCCESS", 60,
             message="a task of another cluster applied while delta is down")
    status = several.monitor.json("/api/monitor/status")["clusters"]
    assert all(status[name]["connected"] for name in ("alpha", "beta", "gamma"))
    for name in ("alpha", "beta", "gamma"):
        assert several.monitor.metric("celery_monitor_receiver_connected", cluster=name) == 1, name
    assert "guest:guest" not in several.monitor.get("/api/monitor/status").text  # no password in the status
    # Its queues are unavailable, said as such; the other clusters' queue lengths are still read.
    wait_for(lambda: "delta" in several.monitor.json("/api/queues/length").get("unavailable", {}), 30,
             message="delta's queues reported unavailable")
    answer = several.monitor.json("/api/queues/length")
    assert {q["cluster"] for q in answer["active_queues"]} == {"alpha", "beta", "gamma"}
    assert several.monitor.json("/api/monitor/status")["queues"]["errors"].keys() == {"delta"}
    assert several.monitor.get("/api/queues/length", params={"cluster": "delta"}).status_code == 503
    # Its gauges are dropped (an old length is no length), the others' stay.
    assert several.monitor.metric("celery_monitor_queue_length", cluster="alpha", queue=PARKED) == 3
    assert not [line for line in several.monitor.get("/metrics").text.splitlines()
                if line.startswith("celery_monitor_queue_") and 'cluster="delta"' in line]


def pool_size(broker: str, hostname: str) -> int:
    """The worker's pool size as it says itself, asked on its own broker."""
    with celery_client(broker, "") as app:
        replies = app.control.inspect([hostname], timeout=5, limit=1).stats() or {}
    return len(replies[hostname]["pool"]["processes"])


def test_inspect_and_control_reach_the_worker_of_the_right_cluster(several: Clusters) -> None:
    hostname = several.workers["alpha"].hostname
    beta = f"beta:{hostname}"
    wait_for(lambda: several.monitor.json("/api/workers?status=true").get(beta), 60, message=f"{beta} online")
    # Each inspect method answers on its own: on a loaded machine one may miss a refresh, not the next.
    details = wait_for(lambda: (found := several.monitor.json(f"/api/workers?refresh=true&workername={beta}")[beta])
                       .get("registered") and found, 30, message=f"{beta}'s registered tasks inspected")
    assert details["cluster"] == "beta"
    assert any(entry.startswith("tests.add") for entry in details["registered"])
    before = {name: pool_size(several.brokers[name], hostname) for name in ("alpha", "beta")}
    response = several.monitor.client.post(f"/api/worker/pool/grow/{beta}", params={"n": 1})
    assert response.status_code == 200, response.text
    # Only beta's worker grew: the one of the same name in alpha was not told.
    wait_for(lambda: pool_size(several.brokers["beta"], hostname) == before["beta"] + 1, 20,
             message="beta's worker grew its pool")
    assert pool_size(several.brokers["alpha"], hostname) == before["alpha"]


def test_an_identity_scoped_to_some_clusters_sees_and_controls_those_alone(several: Clusters) -> None:
    hostname = several.workers["alpha"].hostname
    sent = {cluster: several.send(cluster, "tests.add", 4, 4) for cluster in ("alpha", "beta", "gamma")}
    for task_id in sent.values():
        wait_for(lambda task_id=task_id: (several.task(task_id) or {}).get("state") == "SUCCESS", 60,
                 message=f"{task_id} succeeded")
    wait_for(lambda: all(several.monitor.json("/api/workers?status=true").get(f"{c}:{hostname}")
                         for c in ("alpha", "beta")), 60, message="alpha's and beta's workers online")
    with httpx.Client(base_url=several.monitor.url, auth=ALICE, timeout=15) as alice:
        tasks = alice.get("/api/tasks").json()
        assert {sent["alpha"], sent["beta"]} <= set(tasks) and sent["gamma"] not in tasks
        assert {t["cluster"] for t in tasks.values()} <= {"alpha", "beta"}
        refused = alice.get("/api/tasks", params={"cluster": "gamma"})
        assert refused.status_code == 403 and refused.json()["error"] == "This identity may not see the cluster 'gamma'"
        assert alice.get(f"/api/task/info/{sent['gamma']}").status_code == 404  # not even told it exists
        assert alice.get(f"/api/task/info/{sent['beta']}").json()["cluster"] == "beta"
        assert set(alice.get("/api/workers").json()) <= {f"alpha:{hostname}", f"beta:{hostname}"}
        assert alice.get("/api/workers", params={"workername": f"gamma:{hostname}"}).status_code == 404
        assert alice.get("/ui/workers.json").json()["workers"][0]["cluster"] in ("alpha", "beta")
        # What shows every cluster at once is closed to her; what she may not control is refused.
        assert alice.get("/api/monitor/status").status_code == 403
        # Queues: hers alone; another cluster's is refused in a list, unknown to her by name.
        assert {q["cluster"] for q in alice.get("/api/queues/length").json()["active_queues"]} == {"alpha", "beta"}
        assert alice.get("/api/queues/length", params={"cluster": "gamma"}).status_code == 403
        assert set(alice.get("/api/queues/backlog").json()["queues"]) <= {f"{c}:{q}" for c in ("alpha", "beta")
                                                                          for q in ("celery", PARKED)}
        assert alice.get(f"/api/queues/{PARKED}/tasks", params={"cluster": "gamma"}).status_code == 404
        assert alice.get(f"/api/queues/{PARKED}/tasks", params={"cluster": "beta"}).json()["total"] == 2
        assert {q["cluster"] for q in alice.get("/ui/broker.json").json()["queues"]} <= {"alpha", "beta"}
        no_control = alice.post(f"/api/worker/pool/grow/beta:{hostname}", params={"n": 1})
        assert no_control.status_code == 403, no_control.text
        assert no_control.json()["error"] == "This identity may not control the cluster 'beta'"
        assert alice.post(f"/api/task/revoke/{sent['beta']}").status_code == 403
        assert alice.post(f"/api/task/revoke/{sent['alpha']}").status_code == 200
        bulk = alice.post("/api/tasks/revoke", params={"dry_run": "true", "state": "SUCCESS"})
        assert bulk.status_code == 200, bulk.text
        assert alice.post("/api/tasks/revoke", params={"dry_run": "true", "cluster": "beta"}).status_code == 403
    with httpx.Client(base_url=several.monitor.url, headers={"Authorization": f"Bearer {CI_TOKEN}"},
                      timeout=15) as ci:
        assert set(ci.get("/api/tasks").json()) >= {sent["gamma"]}
        assert {t["cluster"] for t in ci.get("/api/tasks").json().values()} == {"gamma"}
        assert {q["cluster"] for q in ci.get("/api/queues/length").json()["active_queues"]} == {"gamma"}
    # The audit trail names the cluster each action reached, refusals included.
    entries = several.monitor.json("/api/audit", params={"user": "alice"})["entries"]
    by_target = {(e["action"], e["target"]): e for e in entries}
    assert by_target[("worker.pool_grow", f"beta:{hostname}")]["cluster"] == "beta"
    assert by_target[("worker.pool_grow", f"beta:{hostname}")]["status"] == 403
    assert by_target[("task.revoke", sent["alpha"])]["cluster"] == "alpha"
    assert by_target[("task.revoke", sent["alpha"])]["status"] == 200
    # The trail by cluster: an admin's revoke on gamma is under gamma, and hidden from her.
    assert several.monitor.client.post(f"/api/task/revoke/{sent['gamma']}").status_code == 200
    gamma = several.monitor.json("/api/audit", params={"cluster": "gamma"})
    assert gamma["total"] >= 1 and {e["cluster"] for e in gamma["entries"]} == {"gamma"}
    assert several.monitor.json("/api/audit", params={"cluster": "gamma", "user": "alice"})["total"] == 0
    with httpx.Client(base_url=several.monitor.url, auth=ALICE, timeout=15) as alice:
        hers = alice.get("/api/audit").json()
        assert hers["total"] >= 2 and {e["cluster"] for e in hers["entries"]} <= {"alpha", "beta"}
        assert alice.get("/ui/audit.json", params={"cluster": "beta"}).json()["entries"][0]["cluster"] == "beta"
        assert alice.get("/api/audit", params={"cluster": "gamma"}).status_code == 403
        assert alice.get("/api/audit", params={"cluster": "Bad!"}).status_code == 400


def test_a_scoped_identity_gets_the_live_pushes_of_its_clusters_alone(several: Clusters) -> None:
    token = base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode()).decode()
    url = several.monitor.url.replace("http://", "ws://") + "/api/ws?topics=tasks,samples,audit"
    with connect(url, additional_headers={"Authorization": f"Basic {token}"}, open_timeout=5) as live:
        assert json.loads(live.recv(timeout=5)) == {"hello": ["audit", "samples", "tasks"]}
        other = several.send("gamma", "tests.add", 5, 5)
        wait_for(lambda: (several.task(other) or {}).get("state") == "SUCCESS", 60, message=f"{other} applied")
        mine = several.send("alpha", "tests.add", 6, 6)
        received: list[dict[str, Any]] = []
        while not any(t["uuid"] == mine and t["state"] == "SUCCESS" for m in received for t in m["tasks"]):
            received.append(json.loads(live.recv(timeout=30)))
    assert {t["cluster"] for m in received for t in m["tasks"]} <= {"alpha", "beta"}
    assert not [m for m in received if m["audit"]]  # it spans every cluster
    # Graph samples come narrowed to her clusters: their measures, not every cluster's breakdown.
    assert all("clusters" not in sample for m in received for sample in m["samples"])
    with connect(url + "&cluster=gamma", additional_headers={"Authorization": f"Basic {token}"},
                 open_timeout=5) as refused, pytest.raises(ConnectionClosed) as closed:
        refused.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.reason == "This identity may not see the cluster 'gamma'"


def test_results_are_read_from_the_backend_of_the_tasks_cluster(several: Clusters) -> None:
    sent = {cluster: several.send(cluster, "tests.add", 20, len(cluster)) for cluster in ("alpha", "beta")}
    for cluster, task_id in sent.items():
        wait_for(lambda task_id=task_id: (several.task(task_id) or {}).get("state") == "SUCCESS", 60,
                 message=f"{task_id} succeeded")
        answer = several.monitor.json(f"/api/task/result/{task_id}")
        assert (answer["state"], answer["result"]) == ("SUCCESS", 20 + len(cluster)), answer
    # Each cluster with a result backend has its own reconciler; gamma has none.
    status = several.monitor.json("/api/monitor/status")["clusters"]
    assert "off" not in status["alpha"]["reconciler"] and "off" not in status["beta"]["reconciler"]
    assert status["gamma"]["reconciler"] == {"off": True}


def test_an_inspect_failure_names_the_broker_and_cluster_that_failed() -> None:
    """With several clusters, a refresh whose broadcasts fail on one cluster's broker says which one:
    not the first cluster's broker, which answered."""
    from celery import Celery

    from celery_monitor.celery_app import ClusterApps
    from celery_monitor.inspector.inspector import Inspector

    down = free_port()  # nothing listens there
    apps = ClusterApps({"up": Celery("up", broker="redis://127.0.0.1:6379/14", set_as_current=False),
                        "down": Celery("down", broker=f"redis://127.0.0.1:{down}/0", set_as_current=False)})
    inspector = Inspector(apps, timeout=0.5)
    try:
        inspector.refresh().result(timeout=30)
        error = inspector.last_error
        assert error is not None and "on cluster down" in error, error
        assert f"127.0.0.1:{down}" in error and "6379" not in error, error
    finally:
        inspector.stop()


def test_task_calls_and_reruns_go_to_the_chosen_cluster(several: Clusters) -> None:
    client = several.monitor.client
    hostname = several.workers["alpha"].hostname
    for cluster in ("alpha", "beta", "gamma"):  # a task name is known on a cluster once its worker registers it
        wait_for(lambda cluster=cluster: several.monitor.json(
            "/api/workers", params={"workername": f"{cluster}:{hostname}", "refresh": "true"}).get(
            f"{cluster}:{hostname}", {}).get("registered"), 60, message=f"{cluster}'s worker inspected")
    # With several clusters a call must say where it goes: a send to the wrong one would run there.
    unnamed = client.post("/api/task/async-apply/tests.add", json={"args": [1, 2]})
    assert unnamed.status_code == 400
    assert unnamed.json()["error"] == ("Name the cluster to send to: this monitor watches several "
                                       "(cluster= one of alpha, beta, gamma, delta)")
    unknown = client.post("/api/task/send-task/tests.add", params={"cluster": "omega"}, json={"args": [1, 2]})
    assert unknown.status_code == 400 and unknown.json()["error"].startswith("Unknown cluster 'omega'")
    # apply waits for the result in beta's own result backend (alpha's would never have it).
    applied = client.post("/api/task/apply/tests.add", params={"cluster": "beta"}, json={"args": [20, 22],
                                                                                        "timeout": 30})
    assert applied.status_code == 200, applied.text
    assert (applied.json()["state"], applied.json()["result"]) == ("SUCCESS", 42)
    # The cluster as a body field; a name only gamma runs.
    sent = client.post("/api/task/send-task/tests.echo", json={"cluster": "gamma", "args": ["only-gamma"]})
    assert sent.status_code == 200, sent.text
    for task_id, cluster in ((applied.json()["task-id"], "beta"), (sent.json()["task-id"], "gamma")):
        wait_for(lambda task_id=task_id: (several.task(task_id) or {}).get("state") == "SUCCESS", 60,
                 message=f"{task_id} ran")
        assert (several.task(task_id) or {})["cluster"] == cluster
    # A re-run goes to the task's own cluster, its arguments read from that cluster's result backend.
    rerun = client.post(f"/api/task/rerun/{applied.json()['task-id']}", params={"force": "true"})
    assert rerun.status_code == 200, rerun.text
    assert rerun.json()["args-from"] == "result-backend"
    again = rerun.json()["task-id"]
    wait_for(lambda: (several.task(again) or {}).get("state") == "SUCCESS", 60, message=f"re-run {again} ran")
    assert (several.task(again) or {})["cluster"] == "beta"
    assert several.monitor.json(f"/api/task/result/{again}")["result"] == 42
    # Task names are kept per cluster: the list narrows to the clusters asked for.
    assert "tests.echo" in several.monitor.json("/api/task/types", params={"cluster": "gamma"})["task-types"]
    assert "tests.echo" not in several.monitor.json("/api/task/types", params={"cluster": "alpha,beta"})["task-types"]
    assert "tests.echo" in several.monitor.json("/api/task/types")["task-types"]
    assert "<option>tests.echo</option>" in client.get("/tasks", params={"cluster": "gamma"}).text
    assert "tests.echo" not in client.get("/tasks", params={"cluster": "alpha"}).text
    # A scoped identity calls tasks on the clusters it controls alone, and sees their names alone.
    with httpx.Client(base_url=several.monitor.url, auth=ALICE, timeout=30) as alice:
        assert "tests.echo" not in alice.get("/api/task/types").json()["task-types"]
        assert "tests.add" in alice.get("/api/task/types").json()["task-types"]
        assert alice.get("/api/task/types", params={"cluster": "gamma"}).status_code == 403
        page = alice.get("/tasks")
        assert page.status_code == 200 and "<option>tests.add</option>" in page.text
        assert "tests.echo" not in page.text
        refused = alice.post("/api/task/async-apply/tests.add", params={"cluster": "beta"}, json={"args": [1, 1]})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "This identity may not control the cluster 'beta'"
        mine = alice.post("/api/task/async-apply/tests.add", json={"args": [2, 2], "cluster": "alpha"})
        assert mine.status_code == 200, mine.text
    wait_for(lambda: (several.task(mine.json()["task-id"]) or {}).get("cluster") == "alpha", 60,
             message="alice's task ran on alpha")
    entries = several.monitor.json("/api/audit", params={"user": "alice"})["entries"]
    calls = [(e["cluster"], e["status"]) for e in entries if e["action"] == "task.async_apply"]
    assert ("beta", 403) in calls and ("alpha", 200) in calls
    admin_calls = several.monitor.json("/api/audit", params={"user": "admin", "action": "task.apply"})["entries"]
    assert admin_calls[0]["cluster"] == "beta"


def test_the_graphs_are_each_clusters_on_request(several: Clusters) -> None:
    def failing(cluster: str, **params: str) -> bool:
        points = several.monitor.json("/ui/graphs.json", params={"cluster": cluster, **params})["points"]
        return any(point["rates"].get("FAILURE") for point in points)

    task_id = several.send("gamma", "tests.fail", "graphed")
    wait_for(lambda: failing("gamma"), 60, message=f"{task_id}'s failure in gamma's graphs")
    assert not failing("alpha,beta")  # no task of theirs failed
    point = next(p for p in several.monitor.json("/ui/graphs.json")["points"] if p["rates"].get("FAILURE"))
    assert point["clusters"]["gamma"]["rates"]["FAILURE"] == point["rates"]["FAILURE"]
    with httpx.Client(base_url=several.monitor.url, auth=ALICE, timeout=15) as alice:
        assert alice.get("/graphs").status_code == 200
        mine = alice.get("/ui/graphs.json").json()["points"]
        assert mine and not any(p["rates"].get("FAILURE") for p in mine)
        assert all("clusters" not in p for p in mine)
        assert alice.get("/ui/graphs.json", params={"cluster": "gamma"}).status_code == 403


def revoked_on(broker: str, hostname: str) -> list[str]:
    """The ids the worker says it was told to revoke, asked on its own broker."""
    with celery_client(broker, "") as app:
        replies = app.control.inspect([hostname], timeout=5).revoked() or {}
    return list(replies.get(hostname) or [])


def test_failure_groups_and_workflows_are_each_clusters_own(several: Clusters) -> None:
    sent = {cluster: several.send(cluster, "tests.fail_as", "ClusterBoom", f"in {cluster}")
            for cluster in ("alpha", "beta", "gamma")}
    group = {"name": "tests.fail_as", "exception": "ClusterBoom"}

    def groups(client: httpx.Client, **params: str) -> dict[str, int]:
        answer = client.get("/api/failures", params=params)
        assert answer.status_code == 200, answer.text
        return {g["cluster"]: g["count"] for g in answer.json()["groups"] if g["exception_type"] == "ClusterBoom"}

    admin = several.monitor.client
    # The same failure in three clusters: three groups, each saying its cluster.
    wait_for(lambda: groups(admin) == {"alpha": 1, "beta": 1, "gamma": 1}, 60, message="a group in each cluster")
    assert groups(admin, cluster="beta") == {"beta": 1}
    assert groups(admin, cluster="alpha,gamma") == {"alpha": 1, "gamma": 1}
    page = several.monitor.json("/api/failures/tasks", params={**group, "cluster": "gamma"})
    assert page["total"] == 1 and [(t["uuid"], t["cluster"]) for t in page["tasks"]] == [(sent["gamma"], "gamma")]
    assert several.monitor.json("/api/failures/tasks", params=group)["total"] == 3  # every cluster
    for path in ("/api/failures", "/api/failures/tasks"):
        bad = admin.get(path, params={**group, "cluster": "Not A Name"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("Invalid 'cluster'"), bad.text
    # A workflow (here a task alone, its own root) is its tasks' cluster's.
    assert several.monitor.json(f"/api/workflow/{sent['alpha']}")["cluster"] == "alpha"
    assert admin.get(f"/api/workflow/{sent['alpha']}", params={"cluster": "beta"}).status_code == 404

    # A group's revoke reaches its own cluster's workers alone.
    hostname = several.workers["alpha"].hostname
    revoke = admin.post("/api/failures/revoke", params={**group, "cluster": "alpha"})
    assert revoke.status_code == 200 and revoke.json()["task-ids"] == [sent["alpha"]], revoke.text
    assert sent["alpha"] in revoked_on(several.brokers["alpha"], hostname)
    assert sent["beta"] not in revoked_on(several.brokers["beta"], hostname)

    with httpx.Client(base_url=several.monitor.url, auth=ALICE, timeout=15) as alice:
        assert groups(alice) == {"alpha": 1, "beta": 1}  # gamma's is not hers to see
        refused = alice.get("/api/failures", params={"cluster": "gamma"})
        assert refused.status_code == 403 and refused.json()["error"] == "This identity may not see the cluster 'gamma'"
        assert alice.get("/api/failures/tasks", params={**group, "cluster": "gamma"}).status_code == 404
        assert alice.get("/api/failures/tasks", params=group).json()["total"] == 2
        assert alice.get("/failures", headers={"Accept": "text/html"}).status_code == 200
        # She controls alpha, reads beta: a group action reaches alpha's alone.
        mine = alice.post("/api/failures/revoke", params={**group, "dry_run": "true"})
        assert mine.status_code == 200 and mine.json()["sample"] == [sent["alpha"]], mine.text
        read_only = alice.post("/api/failures/rerun", params={**group, "cluster": "beta", "dry_run": "true"})
        assert read_only.status_code == 403, read_only.text
        assert alice.post("/api/failures/revoke", params={**group, "cluster": "gamma"}).status_code == 404
        # Workflows: another cluster's is unknown to her; one she may only read is not hers to revoke.
        assert alice.get(f"/api/workflow/{sent['gamma']}").status_code == 404
        assert alice.get(f"/api/workflow/{sent['beta']}").json()["cluster"] == "beta"
        assert alice.post(f"/api/workflow/{sent['beta']}/revoke", params={"dry_run": "true"}).status_code == 403
        assert alice.post(f"/api/workflow/{sent['gamma']}/revoke", params={"dry_run": "true"}).status_code == 404
        assert alice.post(f"/api/workflow/{sent['alpha']}/revoke", params={"dry_run": "true"}).status_code == 200
    with httpx.Client(base_url=several.monitor.url, headers={"Authorization": f"Bearer {CI_TOKEN}"},
                      timeout=15) as ci:
        assert groups(ci) == {"gamma": 1}
        assert ci.get(f"/api/workflow/{sent['gamma']}").json()["cluster"] == "gamma"
    # The audit trail names the cluster a group's action reached.
    entries = several.monitor.json("/api/audit", params={"action": "failures.revoke"})["entries"]
    assert {(e["user"], e["cluster"], e["status"]) for e in entries} >= {
        ("admin", "alpha", 200), ("alice", None, 200), ("alice", "gamma", 404)}


def test_each_clusters_beat_entries_are_listed_and_run_under_that_cluster(several: Clusters) -> None:
    # The same entry name in alpha's and beta's RedBeat: two entries, each keyed by its cluster.
    for cluster, n in (("alpha", 1), ("beta", 2)):
        writer = Celery(f"redbeat-{cluster}", broker=several.redbeats[cluster], set_as_current=False)
        writer.conf.redbeat_redis_url = several.redbeats[cluster]
        RedBeatSchedulerEntry("nightly", "tests.add", crontab(minute="0", hour="3"), args=[n, n], app=writer).save()

    def listed(**params: str) -> dict[str, dict[str, Any]]:
        return {e["key"]: e for e in several.monitor.json("/api/schedules", params=params)["entries"]
                if e["name"] == "nightly"}

    entries = wait_for(lambda: len(listed()) == 2 and listed(), 20, message="both clusters' entries listed")
    assert {key: (e["cluster"], e["args"]) for key, e in entries.items()} == {
        "alpha:redbeat:nightly": ("alpha", [1, 1]), "beta:redbeat:nightly": ("beta", [2, 2])}
    assert list(listed(cluster="beta")) == ["beta:redbeat:nightly"]
    status = several.monitor.json("/api/schedules", params={"cluster": "gamma"})["clusters"]
    assert status == {"gamma": {"app": {"configured": True}, "django": {"configured": False},
                                "redbeat": {"configured": False}}}
    # Run now goes through the entry's own cluster, and its run is that cluster's alone.
    sent = several.monitor.client.post("/api/schedule/run/beta%3Aredbeat%3Anightly")
    assert sent.status_code == 200, sent.text
    task_id = sent.json()["task-id"]
    wait_for(lambda: (several.task(task_id) or {}).get("state") == "SUCCESS", 30, message="beta's run done")
    assert (several.task(task_id) or {})["cluster"] == "beta"
    runs = wait_for(lambda: (found := listed())["beta:redbeat:nightly"]["last_run"] and found, 20,
                    message="a run shown as beta's entry's last")
    # The runs of an entry are tasks of its name in its cluster (the first since RedBeat's own
    # record of the entry: maybe another test's tests.add, but beta's).
    for key, entry in runs.items():
        shown = entry["last_run"]
        assert shown is None or (several.task(shown["uuid"]) or {}).get("cluster") == entry["cluster"], key
    assert several.monitor.client.post("/api/schedule/run/gamma%3Aredbeat%3Anightly").status_code == 404
    # A scoped identity: its clusters' entries, and run-now where it has control.
    with httpx.Client(base_url=several.monitor.url, auth=ALICE, timeout=15) as alice:
        assert {e["cluster"] for e in alice.get("/api/schedules").json()["entries"]} <= {"alpha", "beta"}
        refused = alice.post("/api/schedule/run/beta%3Aredbeat%3Anightly")
        assert refused.status_code == 403
        assert refused.json()["error"] == "This identity may not control the cluster 'beta'"
        assert alice.post("/api/schedule/run/alpha%3Aredbeat%3Anightly").status_code == 200
    with httpx.Client(base_url=several.monitor.url, headers={"Authorization": f"Bearer {CI_TOKEN}"},
                      timeout=15) as ci:
        assert [e for e in ci.get("/api/schedules").json()["entries"] if e["name"] == "nightly"] == []
        assert ci.get("/api/schedules", params={"cluster": "alpha"}).status_code == 403


def test_a_rerun_reads_a_waiting_tasks_message_on_its_own_clusters_broker(several: Clusters) -> None:
    # gamma keeps no results: its task's arguments can only come from its message, waiting on gamma's broker.
    waiting = several.send("gamma", "tests.add", 20, 22, queue=PARKED)
    wait_for(lambda: several.task(waiting) is not None, 30, message=f"{waiting} known to the monitor")
    rerun = several.monitor.client.post(f"/api/task/rerun/{waiting}", params={"force": "true"})
    assert rerun.status_code == 200, rerun.text
    assert rerun.json()["args-from"] == "queued-message"
    again = rerun.json()["task-id"]

    def gammas() -> dict[str, Any]:
        listed = several.monitor.json(f"/api/queues/{PARKED}/tasks", params={"cluster": "gamma", "limit": 500})
        return {t["uuid"]: t for t in listed["tasks"]}

    # Sent again to gamma's queue, with the arguments its message held (no worker takes it there).
    resent = wait_for(lambda: gammas().get(again), 20, message=f"the re-run {again} waiting on gamma's broker")
    assert (resent["name"], resent["args"]) == ("tests.add", "[20, 22]")
