"""The Celery application the monitor talks through (control, inspect, results, queues)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from celery_monitor import clusters
from celery_monitor.settings import Settings

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def build_app(settings: Settings, app: Celery | None = None) -> Celery:
    """Use the user's app if given (``-A``/the celery command), else a bare one for the broker."""
    if app is None and settings.app:
        from celery.app.utils import find_app

        app = find_app(settings.app)
    if app is None:
        app = Celery("celery_monitor", set_as_current=False)
        if not settings.broker:
            app.conf["broker_url"] = DEFAULT_BROKER
    if settings.celery_settings:
        app.conf.update(settings.celery_settings)
    if settings.broker:
        app.conf["broker_url"] = settings.broker
    if settings.result_backend:
        app.conf["result_backend"] = settings.result_backend
    return app


def shown_broker(app: Celery) -> str:
    """The app's broker as messages and the status show it: no password."""
    return str(app.connection_for_read().as_uri(include_password=False))


def broker_url(app: Celery) -> str:
    url = app.conf.broker_url or DEFAULT_BROKER
    return url.split(";")[0].strip()


def cluster_app(base: Celery, broker: str, result_backend: str) -> Celery:
    """The app one of several clusters is watched through: the user's settings (serializers,
    transport options...) with that cluster's broker and result backend."""
    app = Celery(base.main or "celery_monitor", set_as_current=False)
    changes = base.conf.changes or {}
    app.conf.update({key: value for key, value in changes.items() if key not in ("broker_url", "result_backend")})
    app.conf["broker_url"] = broker
    app.conf["result_backend"] = result_backend or None
    return app


class ClusterApps:
    """The app of each cluster the monitor watches, and the routing of broadcasts between them.

    A worker of a cluster other than ``default`` is known here by its qualified name
    (``clusters.qualified``); on its broker it answers to its bare hostname. A broadcast to named
    workers goes to each one's cluster under its bare name, and the replies come back under the
    names the monitor uses. One cluster (``default``): one app, names unchanged.
    """

    def __init__(self, apps: dict[str, Celery]) -> None:
        self.apps = apps

    @classmethod
    def single(cls, app: Celery) -> ClusterApps:
        return cls({clusters.DEFAULT: app})

    @property
    def primary(self) -> Celery:
        return next(iter(self.apps.values()))

    def routes(self, destination: list[str] | None,
               only: list[str] | None = None) -> list[tuple[str, Celery, list[str] | None]]:
        """(cluster, app, bare names or None for every worker) per cluster a broadcast goes to;
        ``only`` limits a broadcast to every worker to those clusters."""
        if destination is None:
            return [(name, app, None) for name, app in self.apps.items() if only is None or name in only]
        grouped: dict[str, list[str]] = {}
        for worker in destination:
            cluster, hostname = clusters.split_qualified(worker, self.apps)
            if cluster in self.apps:
                grouped.setdefault(cluster, []).append(hostname)
        return [(cluster, self.apps[cluster], names) for cluster, names in grouped.items()]

    @staticmethod
    def qualify(cluster: str, replies: dict[str, Any]) -> dict[str, Any]:
        if cluster == clusters.DEFAULT:
            return replies
        return {clusters.qualified(cluster, worker): reply for worker, reply in replies.items()}
