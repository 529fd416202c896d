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
from collections.abc import Callable

from celery_monitor_operator import converge, kube, leadership

# What a pass does for one CeleryMonitor (namespace, name); False when it is gone.
Work = Callable[[str, str], bool]

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
    """Every ``interval`` seconds, converge every known CeleryMonitor this process is active for.

    ``work`` replaces converging for a loop with another periodic job per resource (the worker
    pods' deletion costs): it runs under the same rules, without a finalizer and on the active peer only.
    """

    def __init__(self, api: kube.Api, known: Known, peering: leadership.Peering, interval: float,
                 work: Work | None = None, name: str = "resync", done_word: str = "converged") -> None:
        self.api = api
        self.known = known
        self.peering = peering
        self.interval = interval
        self.work: Work = work if work is not None else self._converge
        self.name = name
        self.done_word = done_word  # what the debug line says a pass did to them
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"celery-monitor-{name}", daemon=True)

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
                logger.exception("The %s pass failed", self.name)

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
                present = self.work(namespace, name)
            except kube.ApiError as error:
                logger.warning("The %s pass for %s/%s failed: %s", self.name, namespace, name, error.reason)
                continue
            if not present:
                self.known.gone(namespace, name)
            else:
                done += 1
        logger.debug("%s pass: %d CeleryMonitors %s", self.name.capitalize(), done, self.done_word)
        return done

    def _converge(self, namespace: str, name: str) -> bool:
        return converge.converge_and_report(self.api, namespace, name) is not None
