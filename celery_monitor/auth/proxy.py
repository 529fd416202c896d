"""Requests that came through a proxy: the browser's scheme, host and address, from trusted proxies only.

A TLS-terminating proxy (nginx, an Ingress controller, Traefik) talks plain HTTP to the monitor and
says what the browser used in headers: ``X-Forwarded-Proto``, ``-Host``, ``-Port`` and ``-For`` (or
the ``X-Scheme`` and ``X-Real-Ip`` Flower's Tornado read), or RFC 7239's ``Forwarded``. Anyone can
send those headers, so with ``--xheaders`` they count only when the peer is in ``--trusted_proxies``.
The scope is rewritten once, here, so everything behind sees the browser's view: the Origin check,
the session cookie's Secure flag, redirects, the OAuth callback URL and the login rate limiter.

Proxies in a row each append to ``X-Forwarded-For`` (or ``Forwarded``). Read from the right, the
client is the first address that is not itself a trusted proxy, and the scheme and host are the
ones recorded by the proxy that met it. A value that does not parse is ignored, never an error.

A proxy passes on untouched the forwarding headers it does not write itself, so those are the
client's word. Nearly every proxy writes X-Forwarded-For (nginx, Ingress controllers, Traefik,
HAProxy, cloud load balancers) and few write Forwarded: X-Forwarded-* are read whenever present, and
Forwarded only without them, so a client's own Forwarded header cannot pass for the proxy's.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("celery_monitor.auth")

ANY = "*"
SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
DEFAULT_PORTS = {"http": 80, "https": 443}
X_HEADERS = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
                       b"x-real-ip", b"x-scheme"})
FORWARDING_HEADERS = X_HEADERS | {b"forwarded"}
PROXIED = "celery_monitor.proxied"  # scope key: set on requests rewritten from a trusted proxy's headers
WARNED_PEERS = 64  # distinct untrusted peers logged, then silence (a client can send these at will)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?")  # a name or address, a port
_PORT = re.compile(r"[0-9]{1,5}")
# One parameter of a Forwarded element: a token, "=", then a token or a quoted string. Unquoted
# values may hold ":" and brackets too: some proxies forget the quotes around an IPv6 node.
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]"
_PAIR = re.compile(rf"""[ \t]*([A-Za-z]{_TOKEN}*)=("(?:[^"\\]|\\.)*"|(?:{_TOKEN}|[:\[\]])*)[ \t]*""")
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class TrustedProxies:
    """The peers whose forwarding headers count: networks, or everyone (``*``)."""

    networks: tuple[Network, ...] = ()
    everyone: bool = False

    @classmethod
    def parse(cls, items: Iterable[str]) -> TrustedProxies:
        """From ``--trusted_proxies`` items; ValueError naming the first one that is not a network."""
        networks: list[Network] = []
        everyone = False
        for item in items:
            text = item.strip()
            if text == ANY:
                everyone = True
            elif text:
                try:
                    networks.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    raise ValueError(f"{text!r} is not an IP address or CIDR network "
                                     "(give addresses and networks such as 10.0.0.0/8, or * for any)") from None
        return cls(tuple(networks), everyone)

    def trusts(self, address: str | None) -> bool:
        """Whether ``address`` is a trusted proxy; None is a peer on the UNIX socket, a local process,
        trusted as loopback is."""
        if self.everyone:
            return True
        if address is None:
            return any(network.network_address.is_loopback for network in self.networks)
        ip = ip_of(address)
        return ip is not None and any(ip in network for network in self.networks)


def ip_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # an IPv4 client of a dual-stack socket
    return ip


def parse_node(value: str) -> str | None:
    """The IP address in a node (``10.0.0.1``, ``10.0.0.1:5555``, ``[2001:db8::1]:80``, ``::1``);
    None for ``unknown``, obfuscated names (``_proxy1``) and garbage."""
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1:] and not re.fullmatch(r":[0-9]{1,5}", text[end + 1:])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not _PORT.fullmatch(port):
            return None
    ip = ip_of(text)
    return str(ip) if ip is not None else None


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded`` elements, left to right, as {parameter: value}; ValueError if malformed."""
    elements: list[dict[str, str]] = [{}]
    position = 0
    while True:
        match = _PAIR.match(value, position)
        if match is None:
            raise ValueError("malformed Forwarded header")
        name, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = _ESCAPE.sub(r"\1", raw[1:-1])
        if name in elements[-1]:
            raise ValueError(f"parameter {name} twice in one Forwarded element")
        elements[-1][name] = raw
        position = match.end()
        if position == len(value):
            return elements
        if value[position] == ",":
            elements.append({})
        elif value[position] != ";":
            raise ValueError("malformed Forwarded header")
        position += 1


@dataclass(frozen=True, slots=True)
class Hop:
    """What one proxy recorded: the address it was reached from, and the scheme, Host and port used."""

    client: str | None
    scheme: str | None
    host: str | None
    port: str | None = None


def hops_from_forwarded(value: str) -> list[Hop] | None:
    try:
        elements = parse_forwarded(value)
    except ValueError:
        return None
    return [Hop(parse_node(e["for"]) if "for" in e else None, e.get("proto"), e.get("host")) for e in elements]


def hops_from_x_headers(headers: dict[bytes, str]) -> list[Hop]:
    """The X-Forwarded-* lists lined up from the right, one hop per X-Forwarded-For entry.

    A list shorter than X-Forwarded-For (one proxy set the scheme, every proxy appended an address)
    lends its leftmost value to the hops further out.
    """
    def items(*names: bytes) -> list[str]:
        for name in names:
            if name in headers:
                return [item.strip() for item in headers[name].split(",")]
        return []

    clients = items(b"x-forwarded-for", b"x-real-ip")
    schemes = items(b"x-forwarded-proto", b"x-scheme")
    hosts = items(b"x-forwarded-host")
    ports = items(b"x-forwarded-port")
    count = max(len(clients), 1 if schemes or hosts or ports else 0)

    def nth_from_right(values: list[str], index: int) -> str | None:
        if not values:
            return None
        return values[max(len(values) - 1 - index, 0)]

    hops = [Hop(parse_node(nth_from_right(clients, i) or ""), nth_from_right(schemes, i),
                nth_from_right(hosts, i), nth_from_right(ports, i)) for i in range(count)]
    return hops[::-1]


@dataclass(frozen=True, slots=True)
class BrowserView:
    """The request as the browser made it: scheme (http/https), Host header value, client address."""

    scheme: str
    host: str | None
    client: str | None


def browser_view(headers: dict[bytes, str], peer: str | None, scheme: str, host: str | None,
                 trusted: TrustedProxies) -> BrowserView:
    """Follow the hops from the right while they lead through trusted proxies."""
    if X_HEADERS.intersection(headers) or b"forwarded" not in headers:
        hops = hops_from_x_headers(headers)
    else:
        hops = hops_from_forwarded(headers[b"forwarded"]) or []
    client = peer
    met: Hop | None = None  # the hop recorded by the proxy the browser (or untrusted client) reached
    for hop in reversed(hops):
        if not trusted.trusts(client):
            break
        met = hop
        if hop.client is None:
            break
        client = hop.client
    if met is None:
        return BrowserView(scheme, host, peer)
    if met.scheme is not None and met.scheme.strip().lower() in SCHEMES:
        scheme = SCHEMES[met.scheme.strip().lower()]
    forwarded_host = False
    if met.host is not None and is_host(met.host):
        host, forwarded_host = met.host, True
    if met.port is not None and is_port(met.port) and host:
        host = with_port(host, int(met.port), scheme, keep_own=forwarded_host)
    return BrowserView(scheme, host, client)


def is_port(text: str) -> bool:
    return _PORT.fullmatch(text) is not None and 0 < int(text) <= 65535


def is_host(text: str) -> bool:
    """A Host header value: a name, IPv4 or [IPv6] address, and an optional port."""
    match = _HOST.fullmatch(text)
    return match is not None and (match.group(2) is None or is_port(match.group(2)))


def with_port(host: str, port: int, scheme: str, keep_own: bool) -> str:
    """``host`` with the port the browser used, omitted when it is the scheme's default.

    A forwarded Host that names its own port keeps it; the Host the proxy sent upstream (which may
    name the upstream's port) takes the forwarded one.
    """
    match = _HOST.fullmatch(host)
    if match is None or (keep_own and match.group(2) is not None):
        return host
    name = match.group(1)
    return name if port == DEFAULT_PORTS[scheme] else f"{name}:{port}"


class ForwardedHeaders:
    """ASGI middleware: rewrites scheme, Host, server and client from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted
        self.warned: set[str | None] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = self.rewrite(scope)
        await self.app(scope, receive, send)

    def rewrite(self, scope: Scope) -> Scope:
        headers: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in FORWARDING_HEADERS or name == b"host":
                text = value.decode("latin-1")
                headers[name] = f"{headers[name]},{text}" if name in headers else text
        if not FORWARDING_HEADERS.intersection(headers):
            return scope
        client = scope.get("client")
        peer = str(client[0]) if client else None
        if not self.trusted.trusts(peer):
            self.warn(peer)
            return scope
        websocket = scope["type"] == "websocket"
        own_scheme = SCHEMES.get(str(scope.get("scheme", "http")), "http")
        view = browser_view(headers, peer, own_scheme, headers.get(b"host"), self.trusted)
        rewritten = dict(scope)
        rewritten[PROXIED] = True  # the browser's view, as a trusted proxy told it
        rewritten["scheme"] = {"http": "ws", "https": "wss"}[view.scheme] if websocket else view.scheme
        if view.host is not None and view.host != headers.get(b"host"):
            rewritten["headers"] = [(b"host", view.host.encode("latin-1")),
                                    *((name, value) for name, value in scope["headers"] if name != b"host")]
        if view.host is not None:
            match = _HOST.fullmatch(view.host)
            if match is not None:
                name = match.group(1).strip("[]")
                rewritten["server"] = (name, int(match.group(2) or DEFAULT_PORTS[view.scheme]))
        if view.client is not None and view.client != peer:
            rewritten["client"] = (view.client, 0)
        return rewritten

    def warn(self, peer: str | None) -> None:
        if peer in self.warned or len(self.warned) >= WARNED_PEERS:
            return
        self.warned.add(peer)
        log.warning("ignoring X-Forwarded-*/Forwarded headers from %s: not in --trusted_proxies", peer or "unknown")
