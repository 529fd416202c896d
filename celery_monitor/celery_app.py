"""The Celery application the monitor talks through (control, inspect, results, queues)."""

from __future__ import annotations

from celery import Celery

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


def broker_url(app: Celery) -> str:
    url = app.conf.broker_url or DEFAULT_BROKER
    return url.split(";")[0].strip()
