"""What went wrong talking to the broker, in words an operator can act on.

The event readers, the inspector, the queue poller and the enable-events broadcast all talk to the
broker, and a broker fault reaches them as whatever the client library raised: an ``OSError``, an
``ssl.SSLError``, a kombu ``OperationalError`` wrapping either, an AMQP ``AccessRefused``, a Redis
error reply. :func:`classify` turns that into one of a few reasons (the label of
``celery_monitor_receiver_errors_total``) and a sentence naming the broker's address (never its
credentials) and the likely fix. Anything else is not a broker fault but a bug of ours, and is
treated as one (counted as a background error, logged with its traceback).
"""

from __future__ import annotations

import errno
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

# The reasons live apart (the reader process needs them without the broker clients); named here too.
from celery_monitor.broker.reasons import AUTH as AUTH
from celery_monitor.broker.reasons import ERROR as ERROR
from celery_monitor.broker.reasons import HANDSHAKE as HANDSHAKE
from celery_monitor.broker.reasons import LOST as LOST
from celery_monitor.broker.reasons import REASONS as REASONS
from celery_monitor.broker.reasons import TLS as TLS
from celery_monitor.broker.reasons import UNREACHABLE as UNREACHABLE

# Where a connection was when it failed: the same timeout means "nothing answers" while connecting
# and "this port does not speak TLS" during the TLS handshake.
CONNECT, TLS_HANDSHAKE, LOGIN, STREAM = "connect", "tls", "login", "stream"

DEFAULT_PORTS = {"amqp": 5672, "pyamqp": 5672, "amqps": 5671, "redis": 6379, "rediss": 6379}
_AUTH_REPLY = re.compile(r"WRONGPASS|NOAUTH|invalid password|invalid username|ACCESS_REFUSED|AUTH failed", re.I)
_UNREACHABLE_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENOENT}


class _NotLoaded(Exception):
    """Stands for a broker client's exception class whose module is not loaded: nothing raised it."""


def _client_error(module: str, name: str) -> type[BaseException]:
    """A broker client's (or ssl's) exception class, looked up only if its module is loaded, so they
    are not imported here: the reader process, which needs none of them (and ssl only for a TLS
    broker: 5 MB of its memory), classifies its faults too."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else _NotLoaded


def _broker_errors() -> tuple[type[BaseException], ...]:
    return (OSError, EOFError, _client_error("kombu.exceptions", "KombuError"),
            _client_error("amqp.exceptions", "AMQPError"), _client_error("redis.exceptions", "RedisError"))


class LoginRefused(ConnectionError):
    """The broker answered the login with an error (a Redis ``AUTH`` reply)."""


class SessionRefused(ConnectionError):
    """The broker answered the session's set-up with an error (a Redis ``PSUBSCRIBE`` reply)."""


@dataclass(frozen=True, slots=True)
class BrokerFault:
    reason: str
    message: str

    @property
    def expected(self) -> bool:
        """A fault of the broker or the network (retrying may help), not a bug of ours."""
        return self.reason != ERROR


def broker_address(url: str) -> str:
    """Where a broker URL points, for messages: host and port (or socket path), never credentials."""
    try:
        parts = urlparse(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return "the broker"
    if not parts.hostname and parts.path and parts.scheme.endswith(("socket", "unix")):
        return parts.path
    host = parts.hostname or "localhost"
    return f"{host}:{port}" if port else host


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _text(exc: BaseException) -> str:
    verify_message = getattr(exc, "verify_message", None)
    if isinstance(exc, _client_error("ssl", "SSLCertVerificationError")) and verify_message:
        return f"certificate verify failed: {verify_message}"
    if isinstance(exc, _client_error("amqp.exceptions", "AMQPError")) and getattr(exc, "reply_text", None):
        return str(exc.reply_text)  # type: ignore[attr-defined]
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _tls_hint(text: str) -> str:
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return " (the port does not speak TLS: use the broker's TLS port, or a non-TLS URL)"
    if "certificate verify failed" in text:
        return " (check ssl_ca_certs in the URL, or broker_use_ssl's ca_certs)"
    return ""


def classify(exc: BaseException, where: str, phase: str = CONNECT) -> BrokerFault:
    """The reason and an actionable sentence for ``exc``, raised at ``where`` (host:port) in ``phase``."""
    chain = list(_chain(exc))
    refused = (LoginRefused, _client_error("amqp.exceptions", "AccessRefused"),
               _client_error("redis.exceptions", "AuthenticationError"))
    replied = (SessionRefused, _client_error("redis.exceptions", "ResponseError"))
    not_allowed = (SessionRefused, _client_error("amqp.exceptions", "NotAllowed"),
                   _client_error("amqp.exceptions", "IrrecoverableChannelError"))
    for item in chain:
        if isinstance(item, refused) or (isinstance(item, replied) and _AUTH_REPLY.search(str(item))):
            return BrokerFault(AUTH, f"the broker at {where} refused the login: {_text(item)} "
                                     "(check the user name and password in the broker URL)")
    for item in chain:
        if isinstance(item, _client_error("ssl", "SSLError")):
            text = _text(item)
            return BrokerFault(TLS, f"TLS handshake with {where} failed: {text}{_tls_hint(text)}")
    for item in chain:
        if isinstance(item, socket.gaierror):
            return BrokerFault(UNREACHABLE, f"cannot resolve the broker's host in {where}: {_text(item)}")
        if isinstance(item, TimeoutError) and phase == TLS_HANDSHAKE:
            return BrokerFault(TLS, f"TLS handshake with {where} timed out: is that port serving TLS?")
        if isinstance(item, FileNotFoundError) and phase == TLS_HANDSHAKE:
            return BrokerFault(TLS, f"TLS set-up for {where} failed: {_text(item)} "
                                    "(check the ssl_ca_certs, ssl_certfile and ssl_keyfile paths)")
        if isinstance(item, OSError) and item.errno in _UNREACHABLE_ERRNOS:
            return BrokerFault(UNREACHABLE, f"cannot reach the broker at {where}: {_text(item)}")
        if isinstance(item, TimeoutError) and phase == LOGIN:
            return BrokerFault(HANDSHAKE, f"{where} accepted the connection but did not answer the login: "
                                          "is it the broker's port (and not a TLS one, with a non-TLS URL)?")
        if isinstance(item, TimeoutError) and phase == CONNECT:
            return BrokerFault(UNREACHABLE, f"no answer from the broker at {where}: {_text(item)}")
        if isinstance(item, not_allowed):
            return BrokerFault(HANDSHAKE, f"the broker at {where} refused the session: {_text(item)}")
    # Libraries that wrap without chaining leave only their message to go by.
    text = _text(exc)
    if _AUTH_REPLY.search(text):
        return BrokerFault(AUTH, f"the broker at {where} refused the login: {text} "
                                 "(check the user name and password in the broker URL)")
    if "SSL" in text or "TLS" in text:
        return BrokerFault(TLS, f"TLS handshake with {where} failed: {text}{_tls_hint(text)}")
    if "Connection refused" in text or "Name or service not known" in text:
        return BrokerFault(UNREACHABLE, f"cannot reach the broker at {where}: {text}")
    if not isinstance(exc, _broker_errors()):
        return BrokerFault(ERROR, f"unexpected {type(exc).__name__} talking to {where}: {text}")
    if phase == STREAM:
        return BrokerFault(LOST, f"the event stream from {where} ended: {text}")
    if phase in (TLS_HANDSHAKE, LOGIN):
        return BrokerFault(HANDSHAKE, f"{where} broke off the connection while it was being set up: {text} "
                                      "(is it a TLS port? then use rediss:// or amqps://)")
    return BrokerFault(UNREACHABLE, f"cannot reach the broker at {where}: {text}")


def is_broker_fault(exc: BaseException) -> bool:
    """Whether ``exc`` says the broker (or the way to it) failed, rather than our code."""
    return classify(exc, "").expected
