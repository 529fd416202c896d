"""Control commands over the broker, with a checked connection, replies and a deadline.

Kombu retries a dead broker for several seconds per call; connecting once up front with one
retry turns "broker down" into a quick, explicit 503 instead of a slow failure or a hang.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery
from kombu import Connection

from celery_monitor.celery_app import ClusterApps
from celery_monitor.control.errors import ControlError, no_reply, unavailable

Replies = dict[str, dict[str, Any]]

_EXCEPTION_REPR = re.compile(r"^\w+\((['\"])(.*)\1,?\)$", re.DOTALL)


@contextlib.contextmanager
def broker_connection(app: Celery, timeout: float) -> Iterator[Connection]:
    """A connection known to be up, or :class:`ControlError` 503."""
    try:
        conn = app.connection_for_write()
    except Exception as exc:  # a malformed broker URL, an unknown transport
        raise unavailable(f"Broker unavailable: {exc}") from None
    with conn:
        try:
            # kombu takes seconds as floats; its stubs (celery-types) say int.
            conn.ensure_connection(max_retries=1, interval_start=0.5,  # type: ignore[arg-type]
                                   timeout=max(timeout, 1.0))  # type: ignore[arg-type]
        except Exception as exc:
            raise unavailable(f"Broker unavailable: {exc}") from None
        yield conn


def reason_of(reply: object) -> str | None:
    """The failure a worker reported, cleaned of its exception repr; ``None`` for success."""
    if not isinstance(reply, dict):
        return f"unexpected reply {reply!r}"
    if "error" not in reply:
        return None
    error = str(reply["error"])
    match = _EXCEPTION_REPR.match(error.strip())
    return match.group(2) if match else error


def message_of(reply: object) -> str:
    if isinstance(reply, dict) and "ok" in reply:
        return str(reply["ok"])
    return ""


class Broadcaster:
    """Control commands to the workers of every cluster the monitor watches (``ClusterApps``): a
    command to named workers goes to their clusters; one to every worker goes to each cluster, the
    clusters in parallel, so one broker's silence costs the reply timeout once."""

    def __init__(self, app: Celery | ClusterApps, timeout: float) -> None:
        self.apps = app if isinstance(app, ClusterApps) else ClusterApps.single(app)
        self.app = self.apps.primary
        self.timeout = timeout

    def call(self, command: str, arguments: dict[str, Any], destination: list[str] | None = None,
             expected: int | None = None, clusters: list[str] | None = None) -> Replies:
        """Send ``command`` and collect the replies per worker until all ``expected`` replied or time is up.

        ``clusters`` limits a command to every worker to those clusters. Sent to several clusters,
        it fails only if every one of them fails: a broker that is down costs its own workers alone.
        """
        routes = self.apps.routes(destination, only=clusters)
        if len(routes) == 1:
            cluster, app, names = routes[0]
            return self.apps.qualify(cluster, self._call(app, command, arguments, names, expected))
        replies: Replies = {}
        failures: list[ControlError] = []
        with ThreadPoolExecutor(max_workers=len(routes) or 1) as pool:
            # Per cluster, how many of the expected workers it holds is not known: each waits its timeout.
            futures = [(cluster, pool.submit(self._call, app, command, arguments, names, None))
                       for cluster, app, names in routes]
            for cluster, future in futures:
                try:
                    replies.update(self.apps.qualify(cluster, future.result()))
                except ControlError as exc:
                    failures.append(exc)
        if failures and len(failures) == len(routes):
            raise failures[0]
        return replies

    def _call(self, app: Celery, command: str, arguments: dict[str, Any], destination: list[str] | None,
              expected: int | None) -> Replies:
        limit = len(destination) if destination else expected
        with broker_connection(app, self.timeout) as conn:
            try:
                raw = app.control.broadcast(command, arguments=arguments, destination=destination,
                                            connection=conn, reply=True, timeout=self.timeout,
                                            limit=limit or None)
            except Exception as exc:
                raise unavailable(f"Broker unavailable: {exc}") from None
        replies: Replies = {}
        for item in raw or []:
            if isinstance(item, dict):
                replies.update(item)
        return replies

    def call_one(self, command: str, arguments: dict[str, Any], worker: str) -> dict[str, Any]:
        """The one worker's reply; 504 if it stays silent past the timeout."""
        replies = self.call(command, arguments, [worker])
        if worker not in replies:
            raise no_reply(f"Worker '{worker}' did not reply within {self.timeout:g} s")
        reply = replies[worker]
        return reply if isinstance(reply, dict) else {"error": f"unexpected reply {reply!r}"}

    def fire(self, command: str, arguments: dict[str, Any], destination: list[str] | None = None) -> None:
        """Send ``command`` without waiting: for shutdown, whose worker may not live to answer."""
        for _cluster, app, names in self.apps.routes(destination):
            with broker_connection(app, self.timeout) as conn:
                try:
                    app.control.broadcast(command, arguments=arguments, destination=names,
                                          connection=conn, reply=False)
                except Exception as exc:
                    raise unavailable(f"Broker unavailable: {exc}") from None
