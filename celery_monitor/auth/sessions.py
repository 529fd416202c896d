"""The signed session cookie, marked Secure whenever the browser's request was https.

Starlette's SessionMiddleware fixes its cookie flags once. Behind a TLS-terminating proxy the
scheme is only known per request (from the trusted forwarding headers), so one middleware of each
kind shares the secret and the cookie, and the request's scheme picks which one answers.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

SECURE_SCHEMES = ("https", "wss")


class SessionCookie:
    def __init__(self, app: ASGIApp, /, always_secure: bool = False, **options: Any) -> None:
        self.secure = SessionMiddleware(app, https_only=True, **options)
        self.plain = self.secure if always_secure else SessionMiddleware(app, https_only=False, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.secure if scope.get("scheme") in SECURE_SCHEMES else self.plain
        await chosen(scope, receive, send)
