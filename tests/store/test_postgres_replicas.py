"""Several monitors, one PostgreSQL history, real workers: the leader is killed with kill -9 while
tasks stream, a standby leads within 10 s; no task's final state is lost (RabbitMQ keeps what the
leader had not acknowledged, on Redis the standby kept the stream's last seconds); every replica
answers the same; a page's socket on a standby sees what the leader ingests within a second. With
several clusters (``--clusters``: two Redis databases and a RabbitMQ virtual host) the same holds for
each cluster, every task under its own."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from celery.result import AsyncResult
from support.client import celery_client
from support.postgres import execute, fresh_database
from support.processes import MonitorProcess, RedisServer, Worker, free_port, new_monitor, start_worker, wait_for
from websockets.sync.client import connect

TAKEOVER_LIMIT = 10.0


def role(monitor: MonitorProcess) -> str | None:
    try:
        return str(monitor.json("/api/monitor/status")["replica"]["role"])
    except (httpx.HTTPError, AssertionError):
        return None


@contextmanager
def replicas(broker: str, tmp_path: Path, dsn: str, count: int, auth: tuple[str, str] | None = None
             ) -> Iterator[list[MonitorProcess]]:
    """``count`` monitors on one history: the first leads, the others stand by."""
    monitors: list[MonitorProcess] = []
    try:
        for i in range(count):
            (tmp_path / f"replica{i}").mkdir()
            monitor = new_monitor(broker, tmp_path / f"replica{i}", f"--db={dsn}", auth=auth)
            monitors.append(monitor)
            monitor.start(wait_connected=i == 0)
            wait_for(lambda m=monitor, i=i: role(m) == ("leader" if i == 0 else "standby"), 15,  # type: ignore[misc]
                     message=f"replica {i}'s role")
        yield monitors
    finally:
        for monitor in monitors:
            if monitor.process is not None and monitor.process.poll() is None:
                monitor.stop()


@dataclass
class Pair:
    """A leader and a standby on a fresh database, a worker on Redis, and a client to send tasks."""

    leader: MonitorProcess
    standby: MonitorProcess
    worker: Worker
    app: Any


@contextmanager
def leader_and_standby(redis_server: Any, tmp_path: Path, worker_name: str) -> Iterator[Pair]:
    broker = redis_server.url.replace("/0", "/14")
    backend = redis_server.url.replace("/0", "/15")
    worker = start_worker(broker, worker_name, tmp_path, backend=backend)
    try:
        with fresh_database() as dsn, replicas(broker, tmp_path, dsn, 2) as (leader, standby), \
                celery_client(broker, backend) as app:
            wait_for(lambda: worker.hostname in standby.json("/api/workers"), 30,
                     message="the worker on the standby (its live view reloaded from the history)")
            yield Pair(leader, standby, worker, app)
    finally:
        worker.stop()


@dataclass(eq=False)
class Stream(threading.Thread):
    """Sends tests.add at about ``rate`` a second until stopped, noting when each was sent."""

    app: Any
    rate: float = 40.0
    sent: list[tuple[float, AsyncResult]] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop_event.wait(1 / self.rate):
            self.sent.append((time.monotonic(), self.app.send_task("tests.add", args=(i, 1))))
            i += 1

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


def succeeded(monitor: MonitorProcess) -> set[str]:
    return set(monitor.json("/api/tasks", params={"state": "SUCCESS"}))


def _takeover(broker: str, backend: str, tmp_path: Path, count: int) -> dict[str, Any]:
    """The whole scenario; returns what it measured, with the survivors' answers compared."""
    worker = start_worker(broker, "replicated", tmp_path, backend=backend)
    try:
        with fresh_database() as dsn, replicas(broker, tmp_path, dsn, count) as monitors, \
                celery_client(broker, backend) as app:
            wait_for(lambda: worker.hostname in monitors[0].json("/api/workers"), 30, message="the worker")
            stream = Stream(app)
            stream.start()
            wait_for(lambda: len(stream.sent) >= 100, 20, message="tasks streaming")
            leader, standbys = monitors[0], monitors[1:]
            leader.kill9()
            killed_at = time.monotonic()
            new_leader = wait_for(lambda: next((m for m in standbys if role(m) == "leader"), None), 30,
                                  interval=0.1, message="a standby to lead")
            takeover = time.monotonic() - killed_at
            wait_for(lambda: new_leader.json("/api/monitor/status")["receiver"]["connected"], 15,
                     message="the new leader's event stream")
            connected = time.monotonic() - killed_at
            wait_for(lambda: len(stream.sent) >= 100 + 50 + int(connected * stream.rate), 30,
                     message="tasks streaming after the takeover")
            stream.stop()
            sent = [(at - killed_at, result.id) for at, result in stream.sent]
            for _, result in stream.sent:
                result.get(timeout=60)
            ids = {task_id for _, task_id in sent}
            # Every final event the broker delivered is in: the history stops changing.
            final: set[str] = set()

            def settled() -> bool:
                nonlocal final
                before, final = final, succeeded(new_leader) & ids
                return bool(final) and final == before

            wait_for(settled, 30, interval=1.5, message="the new leader's history to settle")
            others = [m for m in standbys if m is not new_leader]

            def same_everywhere() -> bool:
                answer = new_leader.json("/api/tasks")
                return all(other.json("/api/tasks") == answer for other in others)

            wait_for(same_everywhere, 15, interval=0.5, message="every replica to answer the same /api/tasks")
            # Each task's task-succeeded event counted once: what the dead leader had committed but not
            # acknowledged comes again (RabbitMQ) and is recognised, not counted twice.
            counted = new_leader.metric("flower_events_total", task="tests.add", type="task-succeeded")
            return {"takeover": takeover, "connected": connected, "sent": sent, "missing": ids - final,
                    "succeeded_counted": counted,
                    "replicas": len(monitors), "standbys_answering": len(others),
                    "positions_saved": execute(dsn, "SELECT count(*) FROM meta WHERE key = 'spool_position'")[0][0]}
    finally:
        worker.stop()


def test_rabbitmq_three_replicas_a_kill_9_loses_no_task(rabbitmq_vhost: str, redis_server: Any,
                                                         tmp_path: Path) -> None:
    broker = f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}"
    backend = redis_server.url.replace("/0", "/11")
    measured = _takeover(broker, backend, tmp_path, count=3)
    print(f"\nRabbitMQ: takeover {measured['takeover']:.2f}s, stream resumed {measured['connected']:.2f}s "
          f"after kill -9; {len(measured['sent'])} tasks, {len(measured['missing'])} without their final state")
    assert measured["takeover"] < TAKEOVER_LIMIT
    assert measured["missing"] == set(), f"tasks without their final state: {sorted(measured['missing'])[:10]}"
    assert measured["succeeded_counted"] == len(measured["sent"])
    assert measured["standbys_answering"] == 1
    assert measured["positions_saved"] == 0  # delivery tags are acknowledged, never kept as a spool position


def test_redis_two_replicas_a_kill_9_loses_no_task(redis_server: Any, tmp_path: Path) -> None:
    broker = redis_server.url.replace("/0", "/12")
    backend = redis_server.url.replace("/0", "/13")
    measured = _takeover(broker, backend, tmp_path, count=2)
    sent_at = dict((task_id, at) for at, task_id in measured["sent"])
    missing_at = sorted(sent_at[task_id] for task_id in measured["missing"])
    print(f"\nRedis: takeover {measured['takeover']:.2f}s, stream resumed {measured['connected']:.2f}s after "
          f"kill -9; {len(measured['sent'])} tasks, {len(missing_at)} without their final state, sent between "
          f"{missing_at[0] if missing_at else 0:.2f}s and {missing_at[-1] if missing_at else 0:.2f}s of the kill")
    assert measured["takeover"] < TAKEOVER_LIMIT
    # The standby kept what it heard while standing by: what the dead leader had not written, and
    # what was published until the new leader subscribed, are replayed; what it had written comes
    # again and is not counted twice.
    assert measured["missing"] == set(), f"tasks without their final state, sent at {missing_at[:10]}s of the kill"
    assert measured["succeeded_counted"] == len(measured["sent"])


def test_a_page_on_a_standby_sees_what_the_leader_ingests_within_a_second(redis_server: Any,
                                                                            tmp_path: Path) -> None:
    with leader_and_standby(redis_server, tmp_path, "pushed") as pair:
        leader, standby, app = pair.leader, pair.standby, pair.app
        assert standby.get("/livez").status_code == 200 and standby.get("/readyz").status_code == 200
        assert standby.metric("celery_monitor_leader") == 0 and leader.metric("celery_monitor_leader") == 1
        assert "flower_events_total" not in standby.get("/metrics").text
        url = standby.url.replace("http://", "ws://") + "/api/ws?topics=tasks,workers"
        with connect(url, open_timeout=5) as socket:
            assert "hello" in json.loads(socket.recv(timeout=5))
            delays = []
            for i in range(3):
                result = app.send_task("tests.add", args=(i, 2))
                seen: dict[str, float] = {}

                def listen(task_id: str = result.id, seen: dict[str, float] = seen) -> None:
                    deadline = time.monotonic() + 15
                    while time.monotonic() < deadline and "at" not in seen:
                        message = json.loads(socket.recv(timeout=15))
                        for task in message.get("tasks", []):
                            if task["uuid"] == task_id and task["state"] == "SUCCESS":
                                seen["at"] = time.monotonic()

                listener = threading.Thread(target=listen, daemon=True)
                listener.start()
                ingested = wait_for(lambda task_id=result.id: leader.get(f"/api/task/info/{task_id}").status_code
                                    == 200 and leader.json(f"/api/task/info/{task_id}")["state"] == "SUCCESS"
                                    and time.monotonic(), 20, interval=0.01,
                                    message="the task on the leader")
                listener.join(15)
                assert "at" in seen, "the standby's page never saw the task"
                delays.append(seen["at"] - ingested)
            print(f"\nleader to a standby's page: {', '.join(f'{d:.2f}s' for d in delays)}")
            assert max(delays) < 1.0, delays


def test_standbys_answer_with_the_leaders_inspect_replies_until_they_lead(redis_server: Any,
                                                                          tmp_path: Path) -> None:
    with leader_and_standby(redis_server, tmp_path, "inspected") as pair:
        leader, standby, worker = pair.leader, pair.standby, pair.worker

        def details(monitor: MonitorProcess) -> dict[str, Any]:
            return dict(monitor.json("/api/workers").get(worker.hostname) or {})

        wait_for(lambda: details(leader).get("stats") and details(leader).get("registered"), 30,
                 message="the leader's inspect replies")
        # The same inspection on both (its time says so), not one the standby made itself.
        wait_for(lambda: details(standby).get("inspected_at") == details(leader)["inspected_at"], 15,
                 message="the standby to answer with the leader's replies")
        shown = details(standby)
        assert shown["registered"] == details(leader)["registered"] and shown["stats"]["pid"] == worker.process.pid
        # The leader inspects again every 10 s; the standby follows.
        wait_for(lambda: details(standby)["inspected_at"] > shown["inspected_at"], 25,
                 message="the leader's next inspection on the standby")
        leader.kill9()
        killed_at = time.time()
        wait_for(lambda: role(standby) == "leader", 15, message="the standby to lead")
        wait_for(lambda: details(standby)["inspected_at"] > killed_at, 20,
                 message="the new leader's own inspection")


def test_flowers_events_websocket_on_a_standby_tells_what_the_leader_applied(redis_server: Any,
                                                                            tmp_path: Path) -> None:
    with leader_and_standby(redis_server, tmp_path, "told") as pair:
        standby, worker, app = pair.standby, pair.worker, pair.app
        base = standby.url.replace("http://", "ws://")
        with connect(f"{base}/api/task/events/task-succeeded/", open_timeout=5) as succeeded, \
                connect(f"{base}/api/task/events/task-received/", open_timeout=5) as received:
            results = [app.send_task("tests.add", args=(i, 40)) for i in range(3)]
            ids = {result.id for result in results}
            told: dict[str, dict[str, Any]] = {}
            while set(told) != ids:
                event = json.loads(succeeded.recv(timeout=20))
                assert event["type"] == "task-succeeded"
                told[event["uuid"]] = event
            for result in results:
                event = told[result.id]
                assert event["hostname"] == worker.hostname and event["result"] == str(result.get(timeout=10))
                assert isinstance(event["runtime"], float) and isinstance(event["timestamp"], float)
            first = json.loads(received.recv(timeout=20))
            assert first["type"] == "task-received" and first["uuid"] in ids and first["name"] == "tests.add"
            assert first["args"] in {f"({i}, 40)" for i in range(3)}
            # Each event once: nothing more comes for these tasks.
            try:
                again = json.loads(succeeded.recv(timeout=2))
            except TimeoutError:
                again = None
            assert again is None or again["uuid"] not in ids, again
        kept = standby.json("/api/monitor/status")["replica"]["stream_kept"]
        assert kept["listening"] and kept["bytes"] > 0 and kept["messages_forgotten"] == 0


def test_failed_logins_on_one_replica_lock_the_address_out_on_every_replica(redis_server: Any,
                                                                          tmp_path: Path) -> None:
    broker = redis_server.url.replace("/0", "/14")
    with fresh_database() as dsn, replicas(broker, tmp_path, dsn, 2, auth=("ops", "s3cret")) as (leader, standby):
        assert standby.get("/api/workers").status_code == 200
        for _ in range(10):
            assert httpx.get(leader.url + "/api/workers", auth=("ops", "wrong")).status_code == 401
        refused = wait_for(lambda: (r := standby.get("/api/workers")).status_code == 429 and r, 5, interval=0.2,
                           message="the standby to refuse the address the leader saw guessing")
        assert int(refused.headers["retry-after"]) > 0



@dataclass(eq=False)
class ClusterStream(threading.Thread):
    """Sends tests.add to each cluster in turn, about ``rate`` a second in all; each task's id starts
    with its cluster's name."""

    apps: dict[str, Any]
    rate: float = 45.0
    sent: list[tuple[float, str, AsyncResult]] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def run(self) -> None:
        names = list(self.apps)
        i = 0
        while not self.stop_event.wait(1 / self.rate):
            cluster = names[i % len(names)]
            result = self.apps[cluster].send_task("tests.add", args=(i, 1), task_id=f"{cluster}-{uuid.uuid4().hex}")
            self.sent.append((time.monotonic(), cluster, result))
            i += 1

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)

    def ids(self, cluster: str) -> set[str]:
        return {result.id for _, name, result in self.sent if name == cluster}


def cluster_replica(spec: str, dsn: str, directory: Path) -> MonitorProcess:
    directory.mkdir(exist_ok=True)
    return MonitorProcess([f"--clusters={spec}", f"--db={dsn}", "--inspect_timeout=1000", "--unauthenticated_api"],
                          free_port(), directory / "monitor.log", {})


def test_a_kill_9_of_the_leader_of_several_clusters_loses_no_task_of_any(rabbitmq_vhost: str,
                                                                          tmp_path: Path) -> None:
    """Two replicas, each watching three clusters: two Redis databases (the standby keeps each one's
    stream) and a RabbitMQ virtual host (a durable queue of its own), a worker of the same name on
    each. The leader is killed mid-stream; the standby leads, every task of every cluster has its
    final state under its own cluster, each counted once; the killed replica comes back as a standby
    and both answer the same."""
    redis = RedisServer(free_port(), tmp_path).start()
    brokers = {"blue": f"redis://127.0.0.1:{redis.port}/0", "green": f"redis://127.0.0.1:{redis.port}/1",
               "amber": f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}"}
    backends = {name: f"redis://127.0.0.1:{redis.port}/{2 + i}" for i, name in enumerate(brokers)}
    spec = ", ".join(f"{name}={url}" for name, url in brokers.items())
    workers: list[Worker] = []
    monitors: list[MonitorProcess] = []

    def stop_monitors() -> None:  # before their database is dropped
        for monitor in monitors:
            if monitor.process is not None and monitor.process.poll() is None:
                monitor.stop()

    try:
        for name, broker in brokers.items():
            (tmp_path / name).mkdir()
            workers.append(start_worker(broker, "w", tmp_path / name, backend=backends[name]))
        hostname = workers[0].hostname
        with fresh_database() as dsn, contextlib.ExitStack() as clients:
            clients.callback(stop_monitors)
            apps = {name: clients.enter_context(celery_client(broker, backends[name]))
                    for name, broker in brokers.items()}
            leader = cluster_replica(spec, dsn, tmp_path / "replica0")
            monitors.append(leader)
            leader.start(wait_connected=False)
            wait_for(lambda: role(leader) == "leader" and all(
                c["connected"] for c in leader.json("/api/monitor/status")["clusters"].values()), 30,
                message="the leader's three streams")
            standby = cluster_replica(spec, dsn, tmp_path / "replica1")
            monitors.append(standby)
            standby.start(wait_connected=False)
            wait_for(lambda: role(standby) == "standby"
                     and standby.json("/api/monitor/status")["replica"]["stream_kept"]["listening"], 15,
                     message="the standby keeping the Redis streams")
            qualified = {f"{name}:{hostname}" for name in brokers}
            wait_for(lambda: qualified <= set(standby.json("/api/workers")), 30,
                     message=f"{qualified} on the standby")

            stream = ClusterStream(apps)
            stream.start()
            wait_for(lambda: len(stream.sent) >= 90, 20, message="tasks streaming to the three clusters")
            leader.kill9()
            killed_at = time.monotonic()
            wait_for(lambda: role(standby) == "leader", 30, interval=0.1, message="the standby to lead")
            takeover = time.monotonic() - killed_at
            wait_for(lambda: all(c["connected"] for c in standby.json("/api/monitor/status")["clusters"].values()),
                     15, message="the new leader's three streams")
            connected = time.monotonic() - killed_at
            wait_for(lambda: len(stream.sent) >= 90 + 45 + int(connected * stream.rate), 30,
                     message="tasks streaming after the takeover")
            stream.stop()
            for _, _, result in stream.sent:
                result.get(timeout=60)

            # The killed replica is restarted, as its supervisor would: it stands by.
            restarted = cluster_replica(spec, dsn, tmp_path / "replica0")
            monitors.append(restarted)
            restarted.start(wait_connected=False)
            wait_for(lambda: role(restarted) == "standby", 15, message="the restarted replica to stand by")

            def landed(monitor: MonitorProcess, cluster: str) -> dict[str, Any]:
                return dict(monitor.json("/api/tasks", params={"cluster": cluster, "state": "SUCCESS"}))

            final: dict[str, set[str]] = {}

            def settled() -> bool:
                nonlocal final
                before, final = final, {name: set(landed(standby, name)) & stream.ids(name) for name in brokers}
                return bool(final) and final == before and all(final.values())

            wait_for(settled, 30, interval=1.5, message="the new leader's history to settle")
            missing = {name: stream.ids(name) - final[name] for name in brokers}
            sent_after = {name: sum(1 for at, c, _ in stream.sent if c == name and at > killed_at) for name in brokers}
            print(f"\nseveral clusters: takeover {takeover:.2f}s, streams resumed {connected:.2f}s after kill -9; "
                  + "; ".join(f"{name}: {len(stream.ids(name))} tasks ({sent_after[name]} after the kill), "
                              f"{len(missing[name])} without their final state" for name in brokers))
            assert takeover < TAKEOVER_LIMIT
            assert all(sent_after.values()), sent_after
            assert missing == {name: set() for name in brokers}, {n: sorted(m)[:5] for n, m in missing.items()}
            for name in brokers:
                tasks = landed(standby, name)
                # Under its own cluster, run by that cluster's worker, and nothing of the others.
                assert {task["cluster"] for task in tasks.values()} == {name}
                assert {task["worker"] for task in tasks.values()} == {f"{name}:{hostname}"}
                assert all(task_id.startswith(f"{name}-") for task_id in tasks)
                # No worker was taken for lost over the takeover: no task was turned LOST meanwhile.
                assert not [task_id for task_id, task in tasks.items()
                            if any(entry[0] == "LOST" for entry in task["transitions"])]
                # Each task-succeeded counted once, what the dead leader had committed included.
                counted = standby.metric("flower_events_total", cluster=name, task="tests.add",
                                         type="task-succeeded")
                assert counted == len(stream.ids(name)), (name, counted, len(stream.ids(name)))

            def same_on_both() -> bool:
                return all(restarted.json("/api/tasks", params={"cluster": name})
                           == standby.json("/api/tasks", params={"cluster": name}) for name in brokers)

            wait_for(same_on_both, 15, interval=0.5, message="both replicas to answer the same, cluster by cluster")
            assert restarted.json("/api/tasks") == standby.json("/api/tasks")
            # The three workers of the same name stay apart, online under their clusters, on both.
            for monitor in (standby, restarted):
                workers_now = monitor.json("/api/workers")
                assert {name: workers_now[name]["cluster"] for name in qualified} == {
                    f"{name}:{hostname}": name for name in brokers}
                assert set(monitor.json("/api/workers", params={"cluster": "green"})) == {f"green:{hostname}"}
                wait_for(lambda m=monitor: all(m.json("/api/workers?status=true").get(n) for n in qualified), 15,  # type: ignore[misc]
                         message="the three workers online")
            assert restarted.json("/api/monitor/status")["replica"]["stream_kept"]["listening"]
    finally:
        stop_monitors()
        for worker in workers:
            worker.stop()
        redis.stop()
