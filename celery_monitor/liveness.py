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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery_monitor.service import Monitor

# A broker away for this long is more than a restart of it: restarting the monitor re-resolves its
# address and starts every connection afresh, and its history comes back from disk.
BROKER_GRACE = 300.0


def problems(monitor: Monitor) -> list[str]:
    """Why ingestion has stopped (empty while it works): the cause of a 503 from ``/livez``."""
    if not monitor.running:
        return []
    found = monitor.supervisor.problems()
    away = monitor.health.unavailable_for()
    if away is not None and away > BROKER_GRACE:
        found.append(f"no event stream from the broker for {away:.0f}s: {monitor.health.last_error}")
    return found


def warnings(monitor: Monitor) -> list[str]:
    """What is degraded while the monitor stays alive and ready."""
    found: list[str] = []
    writer = monitor.writer
    if not writer.persisting:
        found.append(f"the history is not being written ({writer.pending_count} tasks pending): {writer.last_error}")
    away = monitor.health.unavailable_for()
    if away is not None and away <= BROKER_GRACE:
        found.append(f"no event stream from the broker for {away:.0f}s: {monitor.health.last_error}")
    found += monitor.supervisor.problems(critical=False)
    return found


def ready(monitor: Monitor) -> bool:
    return monitor.running
