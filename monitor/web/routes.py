"""The web pages' routes."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from celery_monitor.web import pages

ROUTES: list[BaseRoute] = [Route("/", pages.index)]
