"""Where a browser request comes from: the Origin and Sec-Fetch-Site checks behind CSRF protection.

A browser names the page that made a request in ``Origin`` (every cross-origin request, every POST,
every WebSocket) and, in current browsers, in ``Sec-Fetch-Site``. A request is same-origin when its
Origin's scheme, host and port equal the request's own (or an origin the configuration names, such
as the public URL of --oauth2_redirect_uri). Scripts send neither header and are judged by their credentials.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Scope

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
WEB_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` of an absolute URL, default port filled in (ws as http); None if unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    port = port or DEFAULT_PORTS[scheme]
    return f"{WEB_SCHEMES[scheme]}://{parts.hostname.lower()}:{port}"


def own_origins(scope: Scope, extra: Iterable[str]) -> set[str]:
    """The origins this request may call its own.

    Behind a trusted proxy the scope already holds the browser's scheme and Host (auth/proxy.py).
    """
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    host = header(scope, b"host")
    found = {n for n in (origin_of(f"{scheme}://{host}"),) if n} if host else set()
    found |= {n for n in (origin_of(url) for url in extra) if n}
    return found


def is_cross_site(scope: Scope, extra: Iterable[str] = ()) -> bool:
    """True when browser headers say another site (or an unreadable origin) made this request."""
    fetch_site = header(scope, b"sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return True
    origin = header(scope, b"origin")
    if origin is None:
        return False
    found = origin_of(origin)  # "null" (sandboxed frames, file: pages) is never ours
    return found is None or found not in own_origins(scope, extra)


PROXY_HINT = "behind a proxy, start the monitor with --xheaders and the proxy's address in --trusted_proxies"


def proxy_hint(scope: Scope) -> str | None:
    """When the page's origin names our host with another scheme or port, the likely cause: a proxy
    (TLS, another port) whose forwarding headers the monitor does not use."""
    try:
        theirs = urlsplit(header(scope, b"origin") or "").hostname
        ours = urlsplit("//" + (header(scope, b"host") or "")).hostname
    except ValueError:
        return None
    return PROXY_HINT if theirs and theirs == ours else None
