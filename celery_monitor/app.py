"""The ASGI application: routes under --url_prefix and the auth gate, serving what the service built.

With ``manage_lifecycle`` (the command line), the app's lifespan starts and stops the monitor; the
monitor itself (:mod:`celery_monitor.service`) builds and starts every part, the timeline and the
redaction of the history included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from celery_monitor.api.routes import ROUTES as API_ROUTES
from celery_monitor.auth import wiring as auth_wiring
from celery_monitor.auth.config import AuthConfig
from celery_monitor.auth.routes import ROUTES as AUTH_ROUTES
from celery_monitor.http.errors import EXCEPTION_HANDLERS
from celery_monitor.service import Monitor
from celery_monitor.web.assets import static_files
from celery_monitor.web.routes import ROUTES as WEB_ROUTES


def create_app(monitor: Monitor, manage_lifecycle: bool = True) -> Starlette:
    settings = monitor.settings
    prefix = settings.prefix
    static = Mount("/static", static_files(), name="static")
    routes: list[BaseRoute] = [*API_ROUTES, *WEB_ROUTES, *AUTH_ROUTES, static]
    if prefix:
        async def to_prefix(request: object) -> Response:
            return RedirectResponse(prefix + "/")

        routes = [Mount(prefix, routes=routes), Route("/", to_prefix)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        monitor.hub.bind(asyncio.get_running_loop())
        if manage_lifecycle:
            await asyncio.to_thread(monitor.start)
        try:
            yield
        finally:
            if manage_lifecycle:
                await asyncio.to_thread(monitor.stop)

    auth = AuthConfig.from_settings(settings)
    monitor.share_auth(auth)
    middleware = auth_wiring.middleware(auth)
    app = Starlette(debug=False, routes=routes, middleware=middleware,
                    exception_handlers=EXCEPTION_HANDLERS,
                    lifespan=lifespan)
    app.state.monitor = monitor
    app.state.metrics = monitor.metrics
    app.state.settings = settings
    app.state.auth = auth
    app.state.timeline = monitor.timeline
    return app
