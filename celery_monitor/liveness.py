"""Is the monitor alive (``/livez``), ready (``/readyz``), and what is degraded meanwhile?

- **Alive** while ingestion can still happen: the loops it depends on (event reader, applier,
  history writer) are running and making progress, and the broker has not been out of reach for
  longer than ``BROKER_GRACE``. When that fails, a restart is the remedy: Kubernetes restarts the
  container on a failing liveness probe, and the history on disk brings everything back.
- **Ready** once the history is open and restored and the loops are started, until shutdown
  begins: from then on every page and API call can be answered (from the history, if the broker
  is away).
- **Degraded** (still alive, still ready): the history cannot be written (a full or read-only
  disk: a restart would not help), the broker is out of reach for less than the grace, a
  secondary loop (inspector, queue poller, timeline...) is stuck. These are *warnings*, reported
  by both endpoints and ``/api/monitor/status``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.store.writer import StoreWriter
from celery_monitor.supervision import Supervisor

# A broker away for this long is more than a restart of it: restarting the monitor re-resolves its
# address and starts every connection afresh, and its history comes back from disk.
BROKER_GRACE = 300.0


class Liveness:
    """Judges the monitor from the parts it is given: the loops, the event stream and the writer."""

    def __init__(self, supervisor: Supervisor, receiver: ReceiverHealth, writer: StoreWriter,
                 running: Callable[[], bool], deposed: Callable[[], bool] = lambda: False) -> None:
        self.supervisor = supervisor
        self.receiver = receiver
        self.writer = writer
        self.running = running  # between a completed start and the beginning of the stop
        self.deposed = deposed  # another replica of the history took the lead while this one was cut off

    def problems(self) -> list[str]:
        """Why ingestion has stopped (empty while it works): the cause of a 503 from ``/livez``."""
        if not self.running():
            return []
        found = self.supervisor.problems()
        if self.deposed():
            found.append("another replica leads the history now (this one was cut off from the database): "
                         "a restart makes this one a standby")
        away = self.receiver.unavailable_for()
        if away is not None and away > BROKER_GRACE:
            found.append(f"no event stream from the broker for {away:.0f}s: {self.receiver.last_error}")
        return found

    def warnings(self) -> list[str]:
        """What is degraded while the monitor stays alive and ready."""
        found: list[str] = []
        writer = self.writer
        if not writer.persisting:
            found.append(f"the history is not being written ({writer.pending_count} tasks pending): "
                         f"{writer.last_error}")
        away = self.receiver.unavailable_for()
        if away is not None and away <= BROKER_GRACE:
            found.append(f"no event stream from the broker for {away:.0f}s: {self.receiver.last_error}")
        found += self.supervisor.problems(critical=False)
        return found

    def ready(self) -> bool:
        return self.running()

    def report(self) -> dict[str, Any]:
        """What /livez and /readyz answer: alive, ready, why not, and what is degraded."""
        problems = self.problems()
        return {"live": not problems, "ready": self.ready(), "problems": problems, "warnings": self.warnings()}
