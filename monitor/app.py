"""The ASGI application: routes under --url_prefix, the auth gate, and the monitor's lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from celery_monitor.api.errors import EXCEPTION_HANDLERS
from celery_monitor.api.routes import ROUTES as API_ROUTES
from celery_monitor.auth.basic import BasicUsers
from celery_monitor.auth.gate import AuthGate
from celery_monitor.metrics.collector import MonitorCollector
from celery_monitor.service import Monitor
from celery_monitor.web.routes import ROUTES as WEB_ROUTES


def create_app(monitor: Monitor, manage_lifecycle: bool = True) -> Starlette:
    settings = monitor.settings
    prefix = settings.prefix
    routes: list[BaseRoute] = [*API_ROUTES, *WEB_ROUTES]
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

    middleware = [Middleware(AuthGate, users=BasicUsers(settings.basic_auth), prefix=prefix,
                             unauthenticated_api=settings.unauthenticated_api)]
    app = Starlette(debug=False, routes=routes, middleware=middleware,
                    exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
                    lifespan=lifespan)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor))
    app.state.monitor = monitor
    app.state.registry = registry
    app.state.settings = settings
    return app
