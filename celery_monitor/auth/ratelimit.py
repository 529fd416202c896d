"""Failed logins: counted per client address, refused for a while past a limit, and logged.

Every failure is logged with the client address and the user name it claimed, never a password
or token. Past ``limit`` failures within ``window`` seconds the client is refused (HTTP 429) until
the window has passed, even with the right credentials: guessing must stay slow.
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
        now = time.monotonic()
        times = self._recent(client, now)
        if len(times) < self.limit:
            return 0
        return max(1, int(self.window - (now - times[-self.limit])) + 1)

    def failed(self, client: str, method: str, user: str | None, reason: str) -> None:
        now = time.monotonic()
        times = self._recent(client, now)
        if not times:
            self._failures[client] = times
        self._failures.move_to_end(client)
        times.append(now)
        while len(self._failures) > TRACKED_CLIENTS:
            self._failures.popitem(last=False)
        log.warning("failed login from %s: %s (user %s): %s%s", client, method, _printable(user) or "-", reason,
                    " — further attempts refused for a while" if len(times) == self.limit else "")


def _printable(text: str | None) -> str | None:
    """A claimed user name, safe to put in a log line (no line breaks or control characters)."""
    if text is None:
        return None
    return "".join(c if c.isprintable() else "?" for c in text)[:64]
