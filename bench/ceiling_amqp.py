"""The bare read-and-decode ceiling on RabbitMQ: py-amqp and orjson, nothing else.

Its own queue bound to the event exchange (no acknowledgements), decode each message's JSON
body and count the task events; counters go to a file every 100 ms like ceiling.py's
(``<task events> <messages> <disconnects>``).

Usage: ceiling_amqp.py <vhost> <counter file>
"""

from __future__ import annotations

import sys
import time

import amqp
import orjson
from ceiling import write_counters


def main() -> None:
    vhost, path = sys.argv[1], sys.argv[2]
    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", virtual_host=vhost)
    connection.connect()
    channel = connection.channel()
    channel.exchange_declare("celeryev", "topic", durable=True, auto_delete=False)
    queue, _, _ = channel.queue_declare("", exclusive=True)
    channel.queue_bind(queue, "celeryev", "#")
    counts = [0, 0]  # task events, messages
    loads = orjson.loads

    def on_message(message: amqp.Message) -> None:
        payload = loads(message.body)
        counts[1] += 1
        for event in payload if isinstance(payload, list) else (payload,):
            if event["type"].startswith("task-"):
                counts[0] += 1

    channel.basic_consume(queue, callback=on_message, no_ack=True)
    next_write = 0.0
    while True:
        try:
            connection.drain_events(timeout=0.1)
        except TimeoutError:
            pass
        now = time.monotonic()
        if now >= next_write:
            next_write = now + 0.1
            write_counters(path, counts[0], counts[1], 0)


if __name__ == "__main__":
    main()
