"""Task limits set on the workers (Flower's /api/task/timeout and /api/task/rate-limit).

Without a worker name the command goes to every worker; a task no worker knows is a 404, any
other refusal a 403 with the worker's reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.utils.time import rate

from celery_monitor.control.broadcast import Broadcaster, Replies, reason_of
from celery_monitor.control.errors import bad_request, forbidden, no_reply, not_found
from celery_monitor.control.worker_control import WorkerControl

UNKNOWN_TASK = "unknown task"


class LimitControl:
    def __init__(self, broadcaster: Broadcaster, workers: WorkerControl, online_count: Callable[[], int],
                 changed: Callable[[str], None]) -> None:
        self.broadcaster = broadcaster
        self.workers = workers
        self.online_count = online_count
        self.changed = changed

    def time_limit(self, task_name: str, soft: float | None, hard: float | None, workername: str | None) -> str:
        for label, value in (("soft", soft), ("hard", hard)):
            if value is not None and value < 0:
                raise bad_request(f"Invalid '{label}': must not be negative")
        if soft is not None and hard is not None and soft > hard:
            raise bad_request(f"Invalid time limits: soft ({soft:g}) is above hard ({hard:g})")
        self._send(task_name, workername, "time_limit", {"task_name": task_name, "soft": soft, "hard": hard},
                   "Failed to set timeouts")
        return "time limits set successfully"

    def rate_limit(self, task_name: str, ratelimit: str, workername: str | None) -> str:
        if not ratelimit.strip():
            raise bad_request("Missing 'ratelimit'")
        try:
            rate(ratelimit.strip())
        except (ValueError, TypeError, KeyError):
            raise bad_request(f"Invalid 'ratelimit': {ratelimit!r} (e.g. 10, 10/s, 100/m, 1000/h)") from None
        self._send(task_name, workername, "rate_limit", {"task_name": task_name, "rate_limit": ratelimit.strip()},
                   "Failed to set rate limit")
        return "new rate limit set successfully"

    def _send(self, task_name: str, workername: str | None, command: str, arguments: dict[str, Any],
              failure: str) -> Replies:
        if not task_name:
            raise bad_request("Missing task name")
        if workername:
            self.workers.require_worker(workername)
            replies = self.broadcaster.call(command, arguments, [workername])
        else:
            replies = self.broadcaster.call(command, arguments, expected=self.online_count())
        if not replies:
            raise no_reply(f"No worker replied within {self.broadcaster.timeout:g} s")
        reasons = {worker: reason_of(reply) for worker, reply in replies.items()}
        failed = {worker: reason for worker, reason in reasons.items() if reason is not None}
        if failed and all(reason == UNKNOWN_TASK for reason in failed.values()) and len(failed) == len(replies):
            raise not_found(f"Unknown task '{task_name}'")
        if failed:
            details = "; ".join(f"{worker}: {reason}" for worker, reason in sorted(failed.items()))
            raise forbidden(f"{failure}: {details}")
        for worker in replies:
            self.changed(worker)
        return replies
