"""Reading what waits in a queue without taking it: real Redis and RabbitMQ, messages sent by Celery."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from kombu import Queue
from support.processes import RedisServer, free_port

from celery_monitor.broker.envelopes import Undecodable, exact_call
from celery_monitor.broker.messages import QueueMessages, QueueUnreadable


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("queue-redis")).start()
    yield server
    server.stop()


def client(broker: str, **conf: object) -> Celery:
    """A sender with Celery's defaults (no task-sent events), plus ``conf``."""
    app = Celery("sender", broker=broker, set_as_current=False)
    app.conf.update(broker_connection_retry_on_startup=True, **conf)
    return app


def raw_lists(url: str, keys: list[str]) -> dict[str, list[bytes]]:
    connection = redis.Redis.from_url(url)
    return {key: connection.lrange(key, 0, -1) for key in keys}


# -- Redis -----------------------------------------------------------------------------------------

def test_redis_page_is_in_the_order_workers_take_it_and_reading_changes_nothing(private_redis: RedisServer) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}/1"
    app = client(url, broker_transport_options={"global_keyprefix": "app1:"})
    first = app.send_task("tests.echo", ["first"], queue="jobs").id
    second = app.send_task("tests.echo", ["second"], kwargs={"k": "v"}, queue="jobs").id
    urgent = app.send_task("tests.echo", ["urgent"], queue="jobs", priority=0).id
    later = app.send_task("tests.echo", ["later"], queue="jobs", priority=9).id
    keys = ["app1:jobs", "app1:jobs\x06\x169"]
    before = raw_lists(url, keys)
    assert sum(len(v) for v in before.values()) == 4, "the prefix and the priority sub-list are where kombu put them"

    page = QueueMessages(app).page("jobs", 0, 10)
    assert page.total == 4
    assert [t.uuid for t in page.tasks] == [first, second, urgent, later]
    assert [t.position for t in page.tasks] == [0, 1, 2, 3]
    assert (page.tasks[1].name, page.tasks[1].args, page.tasks[1].kwargs) == ("tests.echo", "['second']",
                                                                              "{'k': 'v'}")
    assert [t.uuid for t in QueueMessages(app).page("jobs", 1, 2).tasks] == [second, urgent]
    assert raw_lists(url, keys) == before, "reading took or moved nothing"


def test_redis_scan_is_capped_reads_the_next_out_first_and_says_so(private_redis: RedisServer) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}/2"
    app = client(url)
    sent = [app.send_task("tests.add", [i, i], queue="backlog").id for i in range(30)]
    # A big backlog, written straight into the list (as kombu would): never read whole.
    connection = redis.Redis.from_url(url)
    template = json.loads(connection.lindex("backlog", 0))
    pipe = connection.pipeline(transaction=False)
    for _ in range(20_000):
        template["headers"]["id"] = str(uuid.uuid4())
        pipe.lpush("backlog", json.dumps(template))
    pipe.execute()

    messages = QueueMessages(app)
    scan = messages.scan("backlog", lambda task: True, cap=30)
    assert (scan.total, scan.complete) == (20_030, False)
    assert {t.uuid for t in scan.matched} == set(sent), "the 30 next out, not the newest"
    page = messages.page("backlog", 20_020, 50)
    assert [t.position for t in page.tasks] == list(range(20_020, 20_030))
    assert messages.find("backlog", sent[-1]) is not None


def test_redis_exact_call_and_what_is_not_decoded(private_redis: RedisServer) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}/3"
    app = client(url)
    args = [datetime.datetime(2024, 1, 2, 3, 4, 5), "x" * 3000, {"nested": [1.5, None]}]
    sent = app.send_task("tests.echo", args, kwargs={"k": "v"}, queue="exact").id
    messages = QueueMessages(app)
    found = messages.find("exact", sent)
    assert found is not None
    assert exact_call(found) == (args, {"k": "v"})
    listed = messages.page("exact").tasks[0]
    assert listed.args is not None and listed.args.startswith("[datetime.datetime(2024, 1, 2, 3, 4, 5), 'xxx")
    assert "..." in listed.args and len(listed.args) < 1100, "the listing shows Celery's argsrepr, cut short"

    pickled = client(url, task_serializer="pickle", accept_content=["pickle", "json"])
    odd = pickled.send_task("tests.echo", ["p"], queue="exact").id
    with pytest.raises(Undecodable, match="decodes only JSON"):
        exact_call(messages.find("exact", odd))  # type: ignore[arg-type]
    zipped = client(url, task_compression="gzip").send_task("tests.echo", ["z"], queue="exact").id
    with pytest.raises(Undecodable, match="compressed"):
        exact_call(messages.find("exact", zipped))  # type: ignore[arg-type]

    redis.Redis.from_url(url).lpush("exact", b"not json at all", json.dumps({"body": base64.b64encode(b"{}").decode(),
                                                                            "headers": {}, "properties": {}}))
    page = messages.page("exact", 0, 10)
    assert [t.uuid for t in page.tasks] == [sent, odd, zipped]
    assert page.other == 1, "a foreign JSON message is counted, garbage is skipped"


def test_protocol_1_messages_are_read_too(private_redis: RedisServer) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}/4"
    app = client(url, task_protocol=1)
    sent = app.send_task("tests.echo", [1, "a"], kwargs={"b": 2}, queue="old").id
    messages = QueueMessages(app)
    task = messages.page("old").tasks[0]
    assert (task.uuid, task.name) == (sent, "tests.echo")
    assert exact_call(messages.find("old", sent)) == ([1, "a"], {"b": 2})  # type: ignore[arg-type]


def test_other_transports_say_they_are_not_read(tmp_path: Path) -> None:
    app = client(f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    with pytest.raises(QueueUnreadable, match="Redis and RabbitMQ"):
        QueueMessages(app).page("celery")


# -- RabbitMQ ----------------------------------------------------------------------------------------

def ready_messages(app: Celery, queue: str) -> int:
    """Messages ready for a consumer, as the broker counts them (the management API's lag behind)."""
    with app.connection_for_read() as connection:
        return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)


@pytest.mark.rabbitmq
def test_rabbitmq_messages_are_read_and_handed_back_in_place(rabbitmq_vhost: str) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}"
    app = client(url)
    queue = f"peek-{uuid.uuid4().hex[:6]}"
    sent = [app.send_task("tests.echo", ["m", i], queue=queue).id for i in range(6)]
    messages = QueueMessages(app)

    page = messages.page(queue, 2, 3)
    assert page.total == 6
    assert [t.uuid for t in page.tasks] == sent[2:5]
    assert "redelivered" in (page.note or "")
    scan = messages.scan(queue, lambda task: task.args == "['m', 5]")
    assert [t.uuid for t in scan.matched] == [sent[5]]
    assert (scan.scanned, scan.complete) == (6, True)
    found = messages.find(queue, sent[3])
    assert found is not None and exact_call(found) == (["m", 3], {})

    # Everything is back, in its order, ready for the workers.
    assert [t.uuid for t in messages.page(queue, 0, 10).tasks] == sent
    assert ready_messages(app, queue) == 6
    assert messages.page("no-such-queue").total == 0


@pytest.mark.rabbitmq
def test_rabbitmq_quorum_queues_are_not_read(rabbitmq_vhost: str) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}"
    app = client(url)
    queue = Queue(f"quorum-{uuid.uuid4().hex[:6]}", durable=True, queue_arguments={"x-queue-type": "quorum"})
    with app.connection_for_write() as connection:
        queue(connection.default_channel).declare()
    messages = QueueMessages(app)
    with pytest.raises(QueueUnreadable, match="quorum queue"):
        messages.page(queue.name)
    scan = messages.scan(queue.name, lambda task: True)
    assert scan.complete is False and "quorum" in (scan.error or "")
