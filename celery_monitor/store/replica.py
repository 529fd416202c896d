"""Several replicas, one history: which replica ingests, and what the others do meanwhile.

On PostgreSQL any number of monitors share one history. The one whose writing connection holds the
owner lock (``postgres.OWNER_LOCK_KEY``) leads: it reads the broker, applies and writes. The others
are hot standbys: they serve every page and API call from the history; once a second they reload
their live view (workers, counters, state counts, task names) from what the leader saved with its
last flush; they push the changes the leader notifies (``pg_notices``) to their own pages; and they
try the lock every ``TRY_EVERY`` seconds. When the leader's session ends (it stopped, or died and
the server saw its connection close), the first standby to get the lock leads: the service reloads
the live view and starts the reader, the applier and the writer (``promote``).

A SQLite history has one monitor, always the leader: this loop then never runs.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from celery_monitor.hub import Hub, Notice
from celery_monitor.state.models import WorkerRecord
from celery_monitor.store import dsn
from celery_monitor.store.pg_notices import ChangeListener, Changes
from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.relayed_events import EventRebuilder
from celery_monitor.supervision import Loop

log = logging.getLogger(__name__)
REFRESH_EVERY = 1.0  # seconds between two reloads of a standby's live view (the leader flushes every 0.5 s)
TRY_EVERY = 1.0  # seconds between two attempts at the lock
STALL_AFTER = 120.0


def history_id(url: str) -> str:
    """A short name for the history a PostgreSQL URL points at: its host, port, database and options
    (not the user or password, so replicas logging in differently still agree)."""
    if not dsn.is_postgres(url):
        raise ValueError("not a PostgreSQL URL")
    params = conninfo_to_dict(url)
    key = "|".join(str(params.get(k) or "") for k in ("host", "port", "dbname", "options"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class Replica:
    """This monitor's role in a shared history, and the standby loop that may change it."""

    def __init__(self, store: PostgresStore, hub: Hub, refresh: Callable[[], None],
                 promote: Callable[[], None]) -> None:
        self.store = store
        self.hub = hub
        self._refresh = refresh  # reload the live view from the history
        self._promote = promote  # become the leader: reload, then start ingesting
        self.since = time.time()  # in this role
        self.takeovers = 0
        self.notices_relayed = 0
        self._events = EventRebuilder()  # Flower's events WebSocket, rebuilt from the rows read back
        self._listener: ChangeListener | None = None
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replica", daemon=True)
        self.loop = Loop("replica", critical=True, stall_after=STALL_AFTER)

    @property
    def leading(self) -> bool:
        return self.store.leading

    @property
    def deposed(self) -> bool:
        """Another replica took the lead while this one was cut off from the database."""
        return self.store.deposed

    def as_dict(self) -> dict[str, Any]:
        return {"role": "leader" if self.leading else "standby", "since": self.since,
                "takeovers": self.takeovers, "deposed": self.deposed, "notices_relayed": self.notices_relayed}

    def start(self) -> None:
        """Stand by (a leader has nothing to do here)."""
        if not self.leading:
            self._listener = self.store.change_listener()
            self._thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self._listener is not None:
            self._listener.close()

    # -- the standby loop ----------------------------------------------------------------------

    def _run(self) -> None:
        with self.loop.lifetime(self._stop_event):
            next_refresh = next_try = 0.0
            while not self._stop_event.is_set():
                self.loop.beat()
                now = time.monotonic()
                if now >= next_try:
                    next_try = now + TRY_EVERY
                    if self._lead():
                        break
                if now >= next_refresh:
                    next_refresh = now + REFRESH_EVERY
                    with self.loop.guard("reloading the live view"):
                        self._refresh()
                wait = max(0.05, min(next_try, next_refresh) - time.monotonic())
                with self.loop.guard("relaying the leader's changes"):
                    self._relay(self._listen(wait))
            # Leading (or stopping): nothing more to do but stay alive for the probes.
            while not self._stop_event.wait(1.0):
                self.loop.beat()

    def _lead(self) -> bool:
        with self.loop.guard("trying the lead"):
            if self.store.try_lead():
                log.warning("this replica leads the history now: ingesting events")
                if self._listener is not None:
                    self._listener.close()
                self._promote()
                self.takeovers += 1
                self.since = time.time()
                return True
        return False

    def _listen(self, timeout: float) -> Changes:
        assert self._listener is not None
        try:
            return self._listener.wait(timeout)
        except Exception:
            self._stop_event.wait(timeout)  # reconnects at the next pass; the pages' next fetch catches up
            raise

    def _relay(self, changes: Changes) -> None:
        """Push what the leader wrote to this replica's pages, read back from the history."""
        if not changes or not self.hub.has_subscribers:
            return
        notices: list[Notice] = []
        if changes.tasks:
            found = self.store.get_tasks(changes.tasks)
            for uuid in changes.tasks:
                if uuid in found:
                    notices.append({"kind": "task", "task": found[uuid]})
                    notices.extend({"kind": "event", "event": e} for e in self._events.events(found[uuid]))
        if changes.workers:
            now = time.time()
            for data in self.store.load_workers():
                if data.get("hostname") in changes.workers:
                    notices.append({"kind": "worker", "worker": WorkerRecord.from_store(data).as_dict(now)})
        self.notices_relayed += len(notices)
        self.hub.publish(notices)
