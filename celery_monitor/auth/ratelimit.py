"""Failed logins: counted per client address, refused for a while past a limit, and logged.

Every failure is logged with the client address and the user name it claimed, never a password
or token. Past ``limit`` failures within ``window`` seconds the client is refused (HTTP 429) until
the window has passed, even with the right credentials: guessing must stay slow.

Replicas of one PostgreSQL history count together: each hands the failures it saw to the others
through the database (:meth:`FailedLogins.take_new`, :meth:`FailedLogins.merge`), so the times are
wall-clock times, comparable between hosts.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque

log = logging.getLogger("celery_monitor.auth")

LIMIT = 10
WINDOW = 60.0
TRACKED_CLIENTS = 10_000


class FailedLogins:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.shared = False  # set when replicas share the count (then take_new is called every second)
        self._new: list[tuple[str, float]] = []  # not yet handed to the other replicas

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client)
        if times is None:
            return deque()
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self._failures[client]
        return times

    def retry_after(self, client: str) -> int:
        """Seconds the client must wait before trying again (0: go ahead)."""
        now = time.time()
        times = self._recent(client, now)
        if len(times) < self.limit:
            return 0
        return max(1, int(self.window - (now - times[-self.limit])) + 1)

    def failed(self, client: str, method: str, user: str | None, reason: str) -> None:
        now = time.time()
        self._add(client, [now])
        times = self._failures[client]
        if self.shared:
            self._new.append((client, now))
        log.warning("failed login from %s: %s (user %s): %s%s", client, method, _printable(user) or "-", reason,
                    " — further attempts refused for a while" if len(times) == self.limit else "")

    def _add(self, client: str, at: list[float]) -> None:
        """Count failures of ``client`` at these times (those already counted once)."""
        now = time.time()
        times = self._recent(client, now)
        merged = sorted(set(times).union(t for t in at if now - t <= self.window))
        if not merged:
            return
        self._failures[client] = deque(merged)
        self._failures.move_to_end(client)
        while len(self._failures) > TRACKED_CLIENTS:
            self._failures.popitem(last=False)

    def take_new(self) -> list[tuple[str, float]]:
        """The failures seen here since the last call, for the other replicas."""
        new, self._new = self._new, []
        return new

    def merge(self, failures: dict[str, list[float]]) -> None:
        """Count the failures the other replicas saw (and this one's own, counted once)."""
        for client, at in failures.items():
            self._add(client, at)


def _printable(text: str | None) -> str | None:
    """A claimed user name, safe to put in a log line (no line breaks or control characters)."""
    if text is None:
        return None
    return "".join(c if c.isprintable() else "?" for c in text)[:64]
