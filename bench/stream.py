"""A synthetic Celery event stream, shaped like a busy fleet of prefork workers.

Every task is sent by a client (one ``task.sent`` message), then received, started and finished
on a worker; the worker's events travel in ``task.multi`` batches of 1-24 events, as a prefork
worker buffers them. A share of the tasks fail with a traceback, a share are retried once and
then succeed; args range from a few bytes to a couple of kilobytes; task names follow a skewed
mix; every worker sends a heartbeat every ``HEARTBEAT_FREQ`` seconds of stream time.
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

HEARTBEAT_FREQ = 2.0
MAX_BATCH = 24
FAIL_SHARE = 0.08
RETRY_SHARE = 0.04
TRACEBACK = (
    'Traceback (most recent call last):\n'
    '  File "/srv/app/.venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task\n'
    '    R = retval = fun(*args, **kwargs)\n'
    '  File "/srv/app/.venv/lib/python3.11/site-packages/celery/app/trace.py", line 736, in __protected_call__\n'
    '    return self.run(*args, **kwargs)\n'
    '  File "/srv/app/{module}.py", line {line}, in {func}\n'
    '    response = client.post(url, json=payload, timeout=10)\n'
    '  File "/srv/app/.venv/lib/python3.11/site-packages/httpx/_client.py", line 1146, in post\n'
    '    return self.request("POST", url, json=json, timeout=timeout)\n'
    '{exc_type}: {message}\n'
)
TASK_MODULES = ("billing", "emails", "reports", "search", "media", "sync", "notify", "orders")
TASK_VERBS = ("charge", "send", "render", "index", "resize", "pull", "push", "refund", "export", "import")


@dataclass(slots=True)
class Message:
    """One broker message: a routing key and the JSON body (one event, or a list for task.multi)."""

    routing_key: str
    hostname: str
    body: bytes
    task_events: int
    events: int


@dataclass(slots=True)
class Segment:
    """A stretch of the stream and what the tasks in it should end as."""

    messages: list[Message] = field(default_factory=list)
    task_events: int = 0
    events: int = 0
    final_states: dict[str, str] = field(default_factory=dict)

    def extend(self, other: Segment) -> None:
        self.messages.extend(other.messages)
        self.task_events += other.task_events
        self.events += other.events
        self.final_states.update(other.final_states)


@dataclass(slots=True)
class TaskSpec:
    uuid: str
    name: str
    args: str
    kwargs: str
    outcome: str  # "SUCCESS", "FAILURE" or "RETRY" (retried once, then SUCCESS)
    worker: int
    client: int
    runtime: float
    result: str

    @property
    def final_state(self) -> str:
        return "FAILURE" if self.outcome == "FAILURE" else "SUCCESS"


class Sender:
    """A host that sends events: its hostname, pid and Lamport clock, like Celery's dispatcher."""

    def __init__(self, hostname: str, pid: int) -> None:
        self.hostname = hostname
        self.pid = pid
        self.clock = 0

    def event(self, type_: str, timestamp: float, **fields: Any) -> dict[str, Any]:
        self.clock += 1
        return {"hostname": self.hostname, "utcoffset": 0.0, "pid": self.pid, "clock": self.clock,
                **fields, "timestamp": timestamp, "type": type_}


class StreamFactory:
    """Makes segments of one continuous stream; the same seed makes the same tasks."""

    def __init__(self, seed: int = 7, workers: int = 40, clients: int = 4, names: int = 30) -> None:
        self.random = random.Random(seed)
        self.workers = [Sender(f"celery@worker-{i:03d}", 1000 + i) for i in range(workers)]
        self.clients = [Sender(f"gen{2000 + i}@web-{i}", 2000 + i) for i in range(clients)]
        self.names = [f"{TASK_MODULES[i % len(TASK_MODULES)]}.{TASK_VERBS[(i * 7) % len(TASK_VERBS)]}_{i}"
                      for i in range(names)]
        # A skewed mix: a few task names carry most of the traffic.
        self.name_weights = [1.0 / (i + 1) for i in range(names)]
        # Larger args are drawn from a pool (generating them afresh would dominate the set-up time).
        self.medium_args = [repr([self.random.randrange(10**6) for _ in range(40)]) for _ in range(64)]
        self.large_args = [repr([f"sku-{self.random.randrange(10**6)}-" + "x" * 50 for _ in range(25)])
                           for _ in range(16)]
        self.task_serial = 0
        self.next_heartbeat = 0.0

    # -- tasks -----------------------------------------------------------------------------------

    def task(self) -> TaskSpec:
        rnd = self.random
        self.task_serial += 1
        serial = self.task_serial
        roll = rnd.random()
        outcome = "FAILURE" if roll < FAIL_SHARE else "RETRY" if roll < FAIL_SHARE + RETRY_SHARE else "SUCCESS"
        size = rnd.random()
        if size < 0.7:
            args = f"({serial}, 'customer-{serial % 100_000}')"
        elif size < 0.95:
            args = f"({serial}, {rnd.choice(self.medium_args)})"
        else:
            args = f"({{'order': {serial}, 'lines': {rnd.choice(self.large_args)}}},)"
        kwargs = "{}" if rnd.random() < 0.6 else repr({"priority": rnd.randrange(10), "tenant": f"t{serial % 97}"})
        return TaskSpec(
            uuid=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            name=rnd.choices(self.names, self.name_weights)[0],
            args=args, kwargs=kwargs, outcome=outcome,
            worker=rnd.randrange(len(self.workers)), client=rnd.randrange(len(self.clients)),
            runtime=round(rnd.expovariate(20.0), 6),
            result=repr({"ok": True, "id": serial}) if rnd.random() < 0.5 else "None",
        )

    def failure(self, spec: TaskSpec) -> dict[str, str]:
        module = spec.name.split(".")[0]
        exc_type = self.random.choice(("ConnectionError", "TimeoutError", "ValueError", "KeyError"))
        message = f"upstream refused request {self.task_serial}"
        return {"exception": f"{exc_type}('{message}')",
                "traceback": TRACEBACK.format(module=module, line=40 + len(module), func=spec.name.split(".")[1],
                                              exc_type=exc_type, message=message)}

    def lifecycle(self, spec: TaskSpec, t: float, spacing: float) -> Iterator[tuple[float, int, Any]]:
        """The task's events as (due time, -1 and the client's event | worker index and (type, fields)).

        Worker events get their clock when they are emitted, so each worker's clock stays in order.
        """
        client = self.clients[spec.client]
        yield t, -1, client.event(
            "task-sent", t, uuid=spec.uuid, root_id=spec.uuid, parent_id=None, name=spec.name, args=spec.args,
            kwargs=spec.kwargs, retries=0, eta=None, expires=None, queue="celery", exchange="",
            routing_key="celery")
        step = spacing * 5
        received = dict(uuid=spec.uuid, name=spec.name, args=spec.args, kwargs=spec.kwargs, root_id=spec.uuid,
                        parent_id=None, retries=0, eta=None, expires=None)
        t += step
        yield t, spec.worker, ("task-received", received)
        t += step
        yield t, spec.worker, ("task-started", {"uuid": spec.uuid})
        if spec.outcome == "RETRY":
            t += step
            yield t, spec.worker, ("task-retried", {"uuid": spec.uuid, **self.failure(spec)})
            t += step
            yield t, spec.worker, ("task-received", {**received, "retries": 1})
            t += step
            yield t, spec.worker, ("task-started", {"uuid": spec.uuid})
        t += step
        if spec.outcome == "FAILURE":
            yield t, spec.worker, ("task-failed", {"uuid": spec.uuid, **self.failure(spec)})
        else:
            done = {"uuid": spec.uuid, "result": spec.result, "runtime": spec.runtime}
            yield t, spec.worker, ("task-succeeded", done)

    # -- segments --------------------------------------------------------------------------------

    def segment(self, task_events: int, start: float, rate: float) -> Segment:
        """About ``task_events`` task events, timestamped as if sent at ``rate`` events/s from ``start``."""
        rnd = self.random
        spacing = 1.0 / rate
        segment = Segment()
        pending: list[tuple[float, int, int, Any]] = []
        buffers: list[list[dict[str, Any]]] = [[] for _ in self.workers]
        limits = [rnd.randint(1, MAX_BATCH) for _ in self.workers]
        serial = 0
        t = start
        produced = 0

        def emit(routing_key: str, hostname: str, payload: Any, task_events: int, events: int) -> None:
            body = json.dumps(payload).encode()
            segment.messages.append(Message(routing_key, hostname, body, task_events, events))
            segment.task_events += task_events
            segment.events += events

        def flush(index: int) -> None:
            batch = buffers[index]
            if batch:
                emit("task.multi", self.workers[index].hostname, batch, len(batch), len(batch))
                buffers[index] = []
                limits[index] = rnd.randint(1, MAX_BATCH)

        self.next_heartbeat = max(self.next_heartbeat, start)
        while produced < task_events:
            spec = self.task()
            segment.final_states[spec.uuid] = spec.final_state
            for due, who, event in self.lifecycle(spec, t, spacing):
                serial += 1
                heapq.heappush(pending, (due, serial, who, event))
                produced += 1
            t += spacing * (6 if spec.outcome == "RETRY" else 4)
            while pending and pending[0][0] <= t:
                due, _, who, event = heapq.heappop(pending)
                if who < 0:
                    emit("task.sent", event["hostname"], event, 1, 1)
                    continue
                type_, fields = event
                buffers[who].append(self.workers[who].event(type_, due, **fields))
                if len(buffers[who]) >= limits[who]:
                    flush(who)
            while self.next_heartbeat <= t:
                self._heartbeats(emit, self.next_heartbeat, produced)
                self.next_heartbeat += HEARTBEAT_FREQ
        while pending:
            due, _, who, event = heapq.heappop(pending)
            if who < 0:
                emit("task.sent", event["hostname"], event, 1, 1)
            else:
                type_, fields = event
                buffers[who].append(self.workers[who].event(type_, due, **fields))
        for index in range(len(self.workers)):
            flush(index)
        return segment

    def _heartbeats(self, emit: Any, t: float, processed: int) -> None:
        for index, worker in enumerate(self.workers):
            event = worker.event("worker-heartbeat", t + index * 1e-4, freq=HEARTBEAT_FREQ,
                                 active=self.random.randrange(8), processed=processed // len(self.workers),
                                 loadavg=[1.2, 1.1, 0.9], sw_ident="py-celery", sw_ver="5.4.0", sw_sys="Linux")
            emit("worker.heartbeat", worker.hostname, event, 0, 1)

    def online(self, t: float) -> Segment:
        """worker-online from every worker (sent once before the stream starts)."""
        segment = Segment()
        for worker in self.workers:
            event = worker.event("worker-online", t, freq=HEARTBEAT_FREQ, active=0, processed=0,
                                 loadavg=[0.5, 0.5, 0.5], sw_ident="py-celery", sw_ver="5.4.0", sw_sys="Linux")
            segment.messages.append(Message("worker.online", worker.hostname, json.dumps(event).encode(), 0, 1))
            segment.events += 1
        return segment

    def probe(self, t: float) -> tuple[str, Segment]:
        """A single task-sent, to see when a consumer has started reading."""
        spec = self.task()
        client = self.clients[0]
        event = client.event("task-sent", t, uuid=spec.uuid, root_id=spec.uuid, parent_id=None, name=spec.name,
                             args=spec.args, kwargs=spec.kwargs, retries=0, eta=None, expires=None,
                             queue="celery", exchange="", routing_key="celery")
        segment = Segment([Message("task.sent", client.hostname, json.dumps(event).encode(), 1, 1)], 1, 1,
                          {spec.uuid: "PENDING"})
        return spec.uuid, segment

    def stored_task(self, t: float) -> dict[str, Any]:
        """One finished task as the monitor's history stores it (for seeding a large history)."""
        spec = self.task()
        worker = self.workers[spec.worker].hostname
        state = spec.final_state
        task: dict[str, Any] = {
            "uuid": spec.uuid, "name": spec.name, "state": state, "args": spec.args, "kwargs": spec.kwargs,
            "result": spec.result if state == "SUCCESS" else None, "exception": None, "traceback": None,
            "received": t + 0.001, "sent": t, "started": t + 0.002,
            "succeeded": t + 0.002 + spec.runtime if state == "SUCCESS" else None,
            "failed": t + 0.002 + spec.runtime if state == "FAILURE" else None,
            "retried": None, "revoked": None, "rejected": None,
            "runtime": spec.runtime if state == "SUCCESS" else None, "retries": 0, "eta": None, "expires": None,
            "worker": worker, "exchange": "", "routing_key": "celery", "queue": "celery", "clock": self.task_serial,
            "timestamp": t + 0.002 + spec.runtime, "root_id": spec.uuid, "parent_id": None, "children": [],
            "client": self.clients[spec.client].hostname,
        }
        if state == "FAILURE":
            task.update(self.failure(spec))
        task["transitions"] = [["PENDING", t, task["client"]], ["RECEIVED", t + 0.001, worker],
                               ["STARTED", t + 0.002, worker], [state, task["timestamp"], worker]]
        return task
