"""How the auth package plugs into the app: its middleware, outermost first, and the redactor."""

from __future__ import annotations

from starlette.middleware import Middleware

from celery_monitor.auth.config import SESSION_COOKIE, AuthConfig
from celery_monitor.auth.gate import AuthGate
from celery_monitor.auth.headers import SecurityHeaders
from celery_monitor.auth.proxy import ForwardedHeaders
from celery_monitor.auth.redact import Redactor
from celery_monitor.auth.sessions import SessionCookie
from celery_monitor.settings import Settings


def middleware(config: AuthConfig) -> list[Middleware]:
    """With --xheaders, the browser's view from a trusted proxy's headers first (everything after
    sees it); then security headers on everything (refusals too), the signed session, the gate."""
    proxy = [Middleware(ForwardedHeaders, trusted=config.trusted_proxies)] if config.trusted_proxies else []
    return [
        *proxy,
        Middleware(SecurityHeaders),
        Middleware(SessionCookie, secret_key=config.cookie_secret, session_cookie=SESSION_COOKIE,
                   max_age=config.session_max_age, path=config.prefix or "/", same_site="lax",
                   always_secure=config.secure_cookie),
        Middleware(AuthGate, config=config),
    ]


def redactor(settings: Settings) -> Redactor | None:
    found = Redactor(settings.redact, settings.format_task)
    return found if found else None
