"""One gate in front of every route (HTTP and WebSocket): who is asking, and may they?"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from celery_monitor.auth.basic import BasicUsers

REALM = 'Basic realm="Celery Monitor", charset="UTF-8"'
PUBLIC_PATHS = ("/healthcheck", "/metrics", "/static/")


class AuthGate:
    def __init__(self, app: ASGIApp, users: BasicUsers, prefix: str, unauthenticated_api: bool) -> None:
        self.app = app
        self.users = users
        self.prefix = prefix
        self.unauthenticated_api = unauthenticated_api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :] or "/"
        if path.startswith(PUBLIC_PATHS):
            await self.app(scope, receive, send)
            return
        if self.users:
            header = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    header = value.decode("latin-1")
                    break
            user = self.users.check(header)
            if user is None:
                await self._refuse(scope, receive, send, 401, "Authentication required",
                                   [(b"www-authenticate", REALM.encode())])
                return
            scope.setdefault("state", {})["user"] = user
        elif path.startswith("/api") and not self.unauthenticated_api:
            await self._refuse(
                scope, receive, send, 401,
                "The API needs authentication: configure --basic_auth (or another login method), "
                "or allow anonymous API access with --unauthenticated_api", [],
            )
            return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, reason: str,
                      headers: list[tuple[bytes, bytes]]) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": reason[:120]})
            return
        body = orjson.dumps({"error": reason})
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})
