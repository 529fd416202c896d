"""Worker actions (Flower's worker endpoints): shutdown, pool restart/grow/shrink/autoscale, consumers.

Each action answers Flower's success message, or raises :class:`ControlError`: 404 for a worker
the monitor has never seen, 403 with the worker's own reason when it refuses, 504 when it is silent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery_monitor.control.broadcast import Broadcaster, message_of, reason_of
from celery_monitor.control.errors import bad_request, forbidden, not_found


class WorkerControl:
    def __init__(self, broadcaster: Broadcaster, knows_worker: Callable[[str], bool],
                 changed: Callable[[str], None]) -> None:
        self.broadcaster = broadcaster
        self.knows_worker = knows_worker
        self.changed = changed

    def require_worker(self, name: str) -> None:
        if not name or not self.knows_worker(name):
            raise not_found(f"Unknown worker '{name}'")

    def _ask(self, name: str, command: str, arguments: dict[str, Any], failure: str) -> dict[str, Any]:
        self.require_worker(name)
        reply = self.broadcaster.call_one(command, arguments, name)
        reason = reason_of(reply)
        if reason is not None:
            raise forbidden(f"{failure}: {reason}")
        self.changed(name)
        return reply

    def shutdown(self, name: str) -> str:
        self.require_worker(name)
        self.broadcaster.fire("shutdown", {}, [name])
        return "Shutting down!"

    def pool_restart(self, name: str) -> str:
        self._ask(name, "pool_restart", {"reload": False}, f"Failed to restart the '{name}' pool")
        return f"Restarting '{name}' worker's pool"

    def pool_grow(self, name: str, n: int) -> str:
        _check_count(n)
        self._ask(name, "pool_grow", {"n": n}, f"Failed to grow '{name}' worker's pool")
        return f"Growing '{name}' worker's pool by {n}"

    def pool_shrink(self, name: str, n: int) -> str:
        _check_count(n)
        self._ask(name, "pool_shrink", {"n": n}, f"Failed to shrink '{name}' worker's pool")
        return f"Shrinking '{name}' worker's pool by {n}"

    def autoscale(self, name: str, minimum: int, maximum: int) -> str:
        if minimum < 0 or maximum < 1:
            raise bad_request("Invalid autoscale range: 'min' must be at least 0 and 'max' at least 1")
        if minimum > maximum:
            raise bad_request(f"Invalid autoscale range: min={minimum} is greater than max={maximum}")
        self._ask(name, "autoscale", {"min": minimum, "max": maximum}, f"Failed to autoscale '{name}' worker")
        return f"Autoscaling '{name}' worker (min={minimum}, max={maximum})"

    def add_consumer(self, name: str, queue: str) -> str:
        _check_queue(queue)
        reply = self._ask(name, "add_consumer", {"queue": queue},
                          f"Failed to add '{queue}' consumer to '{name}' worker")
        return message_of(reply) or f"add consumer {queue}"

    def cancel_consumer(self, name: str, queue: str) -> str:
        _check_queue(queue)
        reply = self._ask(name, "cancel_consumer", {"queue": queue},
                          f"Failed to cancel '{queue}' consumer from '{name}' worker")
        return message_of(reply) or f"no longer consuming from {queue}"


def _check_count(n: int) -> None:
    if n < 1:
        raise bad_request(f"Invalid 'n': {n} (must be at least 1)")


def _check_queue(queue: str) -> None:
    if not queue or not queue.strip():
        raise bad_request("Missing 'queue'")
