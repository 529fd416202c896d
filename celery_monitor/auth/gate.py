"""One gate in front of every route (HTTP and WebSocket): who is asking, and may they?

Order of the checks:
1. the monitor's own public paths (health check, static files, the login pages) pass;
2. credentials: an ``Authorization`` header (Bearer API token or Basic user) or the signed session
   cookie of an OAuth sign-in; a wrong header counts as a failed login (rate-limited, logged);
3. no credentials: an open instance (no login configured) shows its pages, their data and their
   live feed, as Flower 2 does, while the scripted API (controls included) needs
   ``--unauthenticated_api``; with a login, a browser page is sent to the login page and anything
   else gets 401 (``--unauthenticated_api`` opens the API);
4. a state-changing request made by a browser must come from our own origin, and with a cookie
   session must carry ``X-Requested-With: celery-monitor`` (or the session's CSRF token): a
   cross-site form or script cannot set that header; a WebSocket from another origin is refused;
5. a read-only identity may not use POST, PUT, PATCH or DELETE;
6. an identity scoped to some clusters (``--cluster_access``) reaches only the routes that narrow
   what they show to its clusters (``SCOPED_EXACT``, ``SCOPED_PREFIXES``); the rest answer 403, as
   they would show every cluster. The handlers narrow by ``scope["state"]["cluster_scope"]``.

Handlers find the result in ``scope["state"]``: ``user`` (None when anonymous), ``role`` ("admin" or
"read-only"), ``auth`` (basic, token, session or anonymous) and, for sessions, ``csrf_token``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import quote

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from celery_monitor.auth import cluster_scope, origin
from celery_monitor.auth.config import READ_ONLY, AuthConfig

REALM = 'Basic realm="Celery Monitor", charset="UTF-8"'
PUBLIC_PATHS = ("/healthcheck", "/livez", "/readyz", "/static/")
LOGIN_PATHS = ("/login", "/logout", "/auth/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER_VALUE = "celery-monitor"
API_NEEDS_AUTH = ("The API needs authentication: configure --basic_auth (or another login method), "
                  "or allow anonymous API access with --unauthenticated_api")
CONTROLS_NEED_AUTH = ("Controls need a login on this monitor: start it with --basic_auth (or another login "
                      "method), or allow anonymous control with --unauthenticated_api")
# The pages' own push channel: open whenever the pages are, like the /ui/*.json they fetch.
PAGE_FEED = "/api/ws"
# What an identity scoped to some clusters may reach (--cluster_access): the routes that narrow
# what they show to its clusters (http/scope.py). Everything else shows every cluster: refused.
SCOPED_EXACT = frozenset({"/", "/workers", "/tasks", "/live", "/api/workers", "/api/tasks", "/api/tasks/revoke",
                          PAGE_FEED, "/ui/workers.json", "/ui/tasks.json", "/api/openapi.json", "/audit",
                          "/api/audit", "/ui/audit.json", "/schedules", "/api/schedules", "/ui/schedules.json",
                          "/failures", "/ui/failures.json", "/ui/failures/tasks.json", "/api/failures",
                          "/api/failures/tasks", "/api/failures/revoke", "/api/failures/rerun", "/broker",
                          "/ui/broker.json", "/api/task/types", "/graphs", "/monitor", "/ui/graphs.json"})
SCOPED_PREFIXES = ("/worker/", "/task/", "/ui/worker/", "/ui/task/", "/api/queues/", "/api/task/info/",
                   "/api/task/result/", "/api/task/abort/", "/api/task/revoke/", "/api/task/rerun/", "/api/worker/",
                   "/api/task/timeout/", "/api/task/rate-limit/", "/api/task/events/", "/api/schedule/",
                   "/workflow/", "/api/workflow/", "/api/task/apply/", "/api/task/async-apply/",
                   "/api/task/send-task/")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str | None
    role: str
    method: str  # basic, token, session or anonymous
    groups: tuple[str, ...] = ()  # a session's groups that --cluster_access names


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


class AuthGate:
    def __init__(self, app: ASGIApp, config: AuthConfig) -> None:
        self.app = app
        self.config = config

    def relative_path(self, scope: Scope) -> str:
        path: str = scope["path"]
        prefix = self.config.prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix):] or "/"
        return path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = self.relative_path(scope)
        state = scope.setdefault("state", {})
        if path.startswith(PUBLIC_PATHS) or path == "/healthcheck" or _is_login_path(path):
            state.update(user=None, role=READ_ONLY, auth="anonymous", cluster_scope=None)
            await self.app(scope, receive, send)
            return
        decision = await self.decide(scope, path)
        if isinstance(decision, Refusal):
            await self.refuse(scope, receive, send, decision)
            return
        state.update(user=decision.user, role=decision.role, auth=decision.method)
        scope_limit = cluster_scope.scope_of(self.config.cluster_access, decision.user, decision.groups)
        state["cluster_scope"] = scope_limit
        # /metrics answers to --metrics_auth alone (a scrape config holds one credential for all).
        if scope_limit is not None and not _knows_clusters(path) and not path.startswith("/metrics"):
            await self.refuse(scope, receive, send, Refusal(
                403, f"This identity sees some clusters only ({scope_limit}): {path} shows every cluster"))
            return
        if decision.method == "session":
            state["csrf_token"] = scope["session"].get("csrf")
        await self.app(scope, receive, send)

    # -- deciding ------------------------------------------------------------------------------

    async def decide(self, scope: Scope, path: str) -> Identity | Refusal:
        config = self.config
        websocket = scope["type"] == "websocket"
        if websocket and origin.is_cross_site(scope, config.allowed_origins()):
            hint = origin.proxy_hint(scope)
            return Refusal(403, "WebSocket from another origin refused"
                           + ("; behind a proxy? see --xheaders, --trusted_proxies" if hint else ""))
        found = await self.identify(scope)
        if isinstance(found, Refusal):
            return found
        if path == "/metrics" or path.startswith("/metrics/"):
            return self.metrics_access(scope, found)
        identity = found or self.anonymous(scope, path)
        if isinstance(identity, Refusal):
            return identity
        method = scope.get("method", "GET")
        if not websocket and method not in SAFE_METHODS:
            refusal = self.check_state_change(scope, identity)
            if refusal is not None:
                return refusal
        return identity

    async def identify(self, scope: Scope) -> Identity | Refusal | None:
        """The identity the request proves, a refusal for bad credentials, or None for none given."""
        config = self.config
        header = origin.header(scope, b"authorization")
        scheme = (header or "").split(" ", 1)[0].lower()
        if (scheme == "bearer" and config.tokens) or (scheme == "basic" and config.users):
            client = _client(scope)
            wait = config.failures.retry_after(client)
            if wait:
                return Refusal(429, "Too many failed logins; try again later", ((b"retry-after", str(wait).encode()),))
            token = config.tokens.bearer(header)
            if token is not None:
                known = config.tokens.check(token)
                if known is None:
                    config.failures.failed(client, "API token", None, "unknown token")
                    return self.unauthorized(scope)
                return Identity(f"token:{known.name}", config.role_of(None, known.scope), "token")
            user = await config.users.check(header)
            if user is None:
                config.failures.failed(client, "basic", config.users.user_name(header), "wrong user name or password")
                return self.unauthorized(scope)
            return Identity(user, config.role_of(user), "basic")
        session = scope.get("session")
        if session and config.provider is not None:
            user = session.get("user")
            if (isinstance(user, str) and session.get("provider") == config.provider.name
                    and not config.is_revoked(session.get("sid"))
                    and (not config.policy or config.policy.allows(user))):
                groups = session.get("groups")
                return Identity(user, config.role_of(user), "session",
                                tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ())
        return None

    def anonymous(self, scope: Scope, path: str) -> Identity | Refusal:
        config = self.config
        api = path.startswith("/api") or scope["type"] == "websocket"
        if not config.has_login:
            if path.startswith("/api") and path != PAGE_FEED and not config.unauthenticated_api:
                from_page = _is_page_request(scope)
                return Refusal(401, CONTROLS_NEED_AUTH if from_page else API_NEEDS_AUTH)
            return Identity(None, config.role_of(None), "anonymous")
        if api and config.unauthenticated_api:
            return Identity(None, config.role_of(None), "anonymous")
        if config.provider is not None and scope["type"] == "http" and _wants_html(scope) and not api:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + (f"?{query}" if query else "")
            location = f"{config.prefix}/login?next={quote(target, safe='')}"
            return Refusal(302, "Sign in first", ((b"location", location.encode("latin-1")),))
        return self.unauthorized(scope)

    def unauthorized(self, scope: Scope) -> Refusal:
        # No Basic challenge for the pages' own fetches: a browser would pop up a password dialog
        # over the page (after a session ends, say) instead of letting the page send people to sign in.
        challenge = bool(self.config.users) and origin.header(scope, b"x-requested-with") is None
        headers = ((b"www-authenticate", REALM.encode()),) if challenge else ()
        return Refusal(401, "Authentication required", headers)

    def metrics_access(self, scope: Scope, found: Identity | None) -> Identity | Refusal:
        mode = self.config.metrics_auth
        if mode in ("", "none"):
            return found or Identity(None, READ_ONLY, "anonymous")
        if found is not None and (mode == "any" or found.method == mode):
            return found
        return self.unauthorized(scope)

    def check_state_change(self, scope: Scope, identity: Identity) -> Refusal | None:
        config = self.config
        if identity.method != "token":
            # A bearer token is never sent by a browser on its own: only other credentials can be
            # abused by another site's page.
            if origin.is_cross_site(scope, config.allowed_origins()):
                hint = origin.proxy_hint(scope)
                return Refusal(403, "Cross-site request refused" + (f": {hint}" if hint else ""))
            if identity.method == "session" and not _has_csrf_proof(scope):
                return Refusal(403, "Missing CSRF proof: send the X-Requested-With: celery-monitor header "
                                    "(or X-CSRF-Token) with state-changing requests")
        if identity.role == READ_ONLY:
            return Refusal(403, "Read-only access: this identity may not change anything")
        return None

    # -- answering -----------------------------------------------------------------------------

    async def refuse(self, scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
        if scope["type"] == "websocket":
            await self.refuse_websocket(scope, receive, send, refusal)
            return
        body = orjson.dumps({"error": refusal.reason})
        await send({"type": "http.response.start", "status": refusal.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"), *refusal.headers]})
        await send({"type": "http.response.body", "body": body})


    async def refuse_websocket(self, scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
        """Our own pages get a socket accepted, then closed with a code and a reason they can show: a
        refused handshake tells a browser only "1006", and the page would retry for ever. Other
        sites' pages and scripts get the handshake refused (with its HTTP status where the server
        can send one)."""
        await receive()  # websocket.connect
        if self.from_own_page(scope):
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4000 + refusal.status, "reason": refusal.reason[:120]})
        elif "websocket.http.response" in scope.get("extensions", {}):
            body = orjson.dumps({"error": refusal.reason})
            await send({"type": "websocket.http.response.start", "status": refusal.status, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                *refusal.headers]})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 4000 + refusal.status, "reason": refusal.reason[:120]})

    def from_own_page(self, scope: Scope) -> bool:
        """A browser page of this monitor: its Origin is ours, or names our host behind a proxy
        whose forwarding headers are not used (the refusal then says so)."""
        if origin.header(scope, b"origin") is None:
            return False
        return not origin.is_cross_site(scope, self.config.allowed_origins()) or origin.proxy_hint(scope) is not None


def _knows_clusters(path: str) -> bool:
    """A route that shows (or acts on) each cluster's records apart, so it can honour a cluster scope."""
    return path in SCOPED_EXACT or path.startswith(SCOPED_PREFIXES)


def _is_login_path(path: str) -> bool:
    return path in ("/login", "/logout") or path.startswith(("/login/", "/auth/"))


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _is_page_request(scope: Scope) -> bool:
    """A fetch made by the monitor's own pages (they all send this header)."""
    requested_with = origin.header(scope, b"x-requested-with")
    return requested_with is not None and requested_with.strip().lower() == CSRF_HEADER_VALUE


def _wants_html(scope: Scope) -> bool:
    accept = origin.header(scope, b"accept") or ""
    return "text/html" in accept


def _has_csrf_proof(scope: Scope) -> bool:
    if _is_page_request(scope):
        return True
    token = origin.header(scope, b"x-csrf-token")
    expected = scope["session"].get("csrf")
    return bool(token and isinstance(expected, str) and hmac.compare_digest(token.encode(), expected.encode()))
