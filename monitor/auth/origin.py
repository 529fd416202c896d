"""Where a browser request comes from: the Origin and Sec-Fetch-Site checks behind CSRF protection.

A browser names the page that made a request in ``Origin`` (every cross-origin request, every POST,
every WebSocket) and, in current browsers, in ``Sec-Fetch-Site``. A request is same-origin when its
Origin's host and port equal the Host it was sent to (or an origin the configuration names, such
as the public URL behind a proxy). Scripts send neither header and are judged by their credentials.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Scope

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def netloc_of(url: str) -> str | None:
    """``host:port`` of an absolute URL, with the scheme's default port filled in; None if unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    port = port or DEFAULT_PORTS.get(parts.scheme.lower())
    return f"{parts.hostname.lower()}:{port}"


def own_netlocs(scope: Scope, trusted_forwarded: bool, extra: Iterable[str]) -> set[str]:
    """The host:port values this request may call its own origin."""
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    hosts = [header(scope, b"host")]
    if trusted_forwarded:
        forwarded = header(scope, b"x-forwarded-host")
        if forwarded:
            hosts.append(forwarded.split(",")[0].strip())
    found = {netloc for host in hosts if host for netloc in (netloc_of(f"{scheme}://{host}"),) if netloc}
    if trusted_forwarded:
        # Behind a TLS-terminating proxy the browser's origin is https while we see http.
        found |= {n for host in hosts if host for n in (netloc_of(f"https://{host}"),) if n}
    found |= {n for n in (netloc_of(url) for url in extra) if n}
    return found


def is_cross_site(scope: Scope, trusted_forwarded: bool = False, extra: Iterable[str] = ()) -> bool:
    """True when browser headers say another site (or an unreadable origin) made this request."""
    fetch_site = header(scope, b"sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return True
    origin = header(scope, b"origin")
    if origin is None:
        return False
    netloc = netloc_of(origin)  # "null" (sandboxed frames, file: pages) is never ours
    return netloc is None or netloc not in own_netlocs(scope, trusted_forwarded, extra)
