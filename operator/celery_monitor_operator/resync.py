"""The periodic pass over every CeleryMonitor, without holding a finalizer on any of them.

A kopf timer would do this per resource, but kopf puts a finalizer on every resource with a timer
(to stop it before the resource goes): once the operator is uninstalled, or down, deleting a
CeleryMonitor would hang in Terminating and hold up its namespace. This loop is one thread beside
kopf instead. It knows the resources from kopf's own watch (:class:`Known`, fed by an event
handler, which holds no finalizer) and works only while this process is the active peer
(:mod:`.leadership`), as kopf's handlers do.

What it catches: whatever changed with no event the operator watches, such as a Secret the spec
names appearing, the Prometheus Operator or Gateway API CRDs being installed, a Service changed by
hand. It is quiet: a pass that changes nothing logs nothing above DEBUG, and the Events of
:mod:`.events` are posted only on a change.
"""

from __future__ import annotations

import logging
import threading

from celery_monitor_operator import converge, kube, leadership

logger = logging.getLogger(__name__)


class Known:
    """The CeleryMonitors kopf has seen, by namespace and name; safe to share between threads."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, str]] = set()
        self._guard = threading.Lock()

    def seen(self, namespace: str, name: str) -> None:
        with self._guard:
            self._keys.add((namespace, name))

    def gone(self, namespace: str, name: str) -> None:
        with self._guard:
            self._keys.discard((namespace, name))

    def snapshot(self) -> list[tuple[str, str]]:
        with self._guard:
            return sorted(self._keys)


class Resync:
    """Every ``interval`` seconds, converge every known CeleryMonitor this process is active for."""

    def __init__(self, api: kube.Api, known: Known, peering: leadership.Peering, interval: float) -> None:
        self.api = api
        self.known = known
        self.peering = peering
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celery-monitor-resync", daemon=True)

    def start(self) -> Resync:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.pass_once()
            except Exception:  # a bug or an unreachable API: the next pass tries again
                logger.exception("The resync pass failed")

    def pass_once(self) -> int:
        """One pass; returns how many resources it converged (for the log and the tests)."""
        active: dict[str, bool] = {}
        done = 0
        for namespace, name in self.known.snapshot():
            if self._stop.is_set():
                break
            if namespace not in active:
                active[namespace] = leadership.is_active(self.api, self.peering, namespace)
            if not active[namespace]:
                continue
            try:
                outcome = converge.converge_and_report(self.api, namespace, name)
            except kube.ApiError as error:
                logger.warning("Resync of %s/%s failed: %s", namespace, name, error.reason)
                continue
            if outcome is None:
                self.known.gone(namespace, name)
            else:
                done += 1
        logger.debug("Resync pass: %d CeleryMonitors converged", done)
        return done
