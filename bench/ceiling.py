"""The bare read-and-decode ceiling: what one Python process can take off a Redis event stream.

A bare socket, hiredis's reply parser and orjson: read, split pub/sub replies, decode kombu's
envelope and the JSON body, count the task events; nothing else. It writes its counters to a
file (``<task events> <messages> <disconnects>``) every 100 ms, so the bench reads them like a monitor's metrics.

Usage: ceiling.py <redis port> <counter file>
"""

from __future__ import annotations

import binascii
import os
import socket
import sys
import time

import hiredis
import orjson


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def write_counters(path: str, task_events: int, messages: int, disconnects: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as out:
        out.write(f"{task_events} {messages} {disconnects}\n")
    os.replace(tmp, path)


def subscribe(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.sendall(command(b"PSUBSCRIBE", b"/0.celeryev/*"))
    sock.settimeout(0.1)
    return sock


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    sock = subscribe(port)
    reader = hiredis.Reader()
    buffer = bytearray(4 * 1024 * 1024)
    view = memoryview(buffer)
    task_events = messages = disconnects = 0
    next_write = 0.0
    loads, a2b = orjson.loads, binascii.a2b_base64
    while True:
        try:
            n = sock.recv_into(view)
        except TimeoutError:
            n = -1
        except OSError:
            n = 0
        if n == 0:
            # Redis drops a subscriber that falls 32 MB behind: count it and subscribe again.
            disconnects += 1
            sock.close()
            sock = subscribe(port)
            reader = hiredis.Reader()
            continue
        if n > 0:
            for start in range(0, n, 16 * 1024):  # hiredis parses small feeds far faster than large ones
                reader.feed(view, start, min(16 * 1024, n - start))
                while (reply := reader.gets()) is not False:
                    if reply[0] != b"pmessage":
                        continue
                    envelope = loads(reply[3])
                    payload = loads(a2b(envelope["body"]))
                    messages += 1
                    for event in payload if isinstance(payload, list) else (payload,):
                        if event["type"].startswith("task-"):
                            task_events += 1
        now = time.monotonic()
        if now >= next_write:
            next_write = now + 0.1
            write_counters(path, task_events, messages, disconnects)


if __name__ == "__main__":
    main()
