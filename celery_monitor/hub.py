"""Fans change notices out to WebSocket subscribers without ever slowing the applier.

The applier publishes from its thread; delivery happens on the event loop. Each subscriber has a
bounded queue: a client too slow to keep up loses notices (and is told so), never the monitor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Notice = dict[str, Any]
SUBSCRIBER_QUEUE = 1000


@dataclass(eq=False)
class Subscription:
    accepts: Callable[[Notice], bool]
    queue: asyncio.Queue[Notice] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    overflowed: int = 0


class Hub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscriptions: set[Subscription] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscriptions)

    def subscribe(self, accepts: Callable[[Notice], bool] = lambda _: True) -> Subscription:
        subscription = Subscription(accepts)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, notices: list[Notice]) -> None:
        """Called from any thread; delivery is scheduled on the event loop."""
        loop = self._loop
        if loop is None or not notices or not self._subscriptions or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._deliver, notices)

    def _deliver(self, notices: list[Notice]) -> None:
        for subscription in list(self._subscriptions):
            for notice in notices:
                if not subscription.accepts(notice):
                    continue
                try:
                    subscription.queue.put_nowait(notice)
                except asyncio.QueueFull:
                    subscription.overflowed += 1
