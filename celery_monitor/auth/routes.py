"""The sign-in and sign-out routes (paths relative to --url_prefix)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from celery_monitor.auth import login

ROUTES: list[BaseRoute] = [
    Route("/login", login.login, methods=["GET"]),
    Route("/login/start", login.start, methods=["GET"]),
    Route("/login/callback", login.callback, methods=["GET"]),
    Route("/logout", login.logout_page, methods=["GET"]),
    Route("/logout", login.logout, methods=["POST"]),
    Route("/auth/auth.css", login.stylesheet, methods=["GET"]),
    Route("/api/me", login.me, methods=["GET"]),
]
