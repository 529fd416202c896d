"""Celery task messages as a broker holds them: which task each one is, and what it was sent with.

A queued message is input from anyone who can publish to the broker, so it is read defensively:
only headers are looked at to list it (the body stays undecoded), text is cut to a preview, and a
body is decoded only when asked for (a re-run), and only when it is JSON, as everywhere else in
the monitor. Celery's protocol 2 keeps the task's id, name, ``argsrepr`` and ``kwargsrepr`` in the
headers and ``[args, kwargs, embed]`` in the body; protocol 1 keeps everything in the body.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass
from typing import Any

from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import loads

JSON = "application/json"
PREVIEW = 2048  # characters of args/kwargs kept for a listing (Celery cuts its argsrepr at 1,024)
MAX_NAME = 1024
MAX_ID = 255
PROTOCOL1_PREVIEW_BYTES = 64 * 1024  # a protocol 1 body is decoded for a listing only when this small


class Undecodable(ValueError):
    """The message's body cannot be turned back into the call it carries (the reason says why)."""


@dataclass(slots=True)
class Envelope:
    """One message, whatever the transport: its body still encoded, its headers and properties."""

    body: bytes
    content_type: str
    content_encoding: str
    headers: dict[str, Any]
    priority: int | None = None


@dataclass(slots=True)
class QueuedTask:
    """What a listing shows of a waiting task; ``position`` 0 is the next one out."""

    uuid: str
    name: str | None
    args: str | None
    kwargs: str | None
    eta: str | None
    expires: str | None
    retries: int | None
    priority: int | None
    position: int
    size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…[cut: {len(text) - limit:,} more characters]"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def redis_envelope(raw: bytes | str) -> Envelope | None:
    """kombu's Redis transport keeps each message as a JSON object; None for anything else."""
    try:
        data = loads(raw, JSON, "utf-8", accept=[JSON])
    except Exception:  # damaged or foreign: not a message kombu wrote
        return None
    if not isinstance(data, dict) or not isinstance(data.get("body"), str):
        return None
    properties: dict[str, Any] = data["properties"] if isinstance(data.get("properties"), dict) else {}
    body_text: str = data["body"]
    if properties.get("body_encoding") == "base64":
        try:
            body = base64.b64decode(body_text, validate=False)
        except (binascii.Error, ValueError):
            return None
    else:
        body = body_text.encode("utf-8", "surrogatepass")
    headers: dict[str, Any] = data["headers"] if isinstance(data.get("headers"), dict) else {}
    return Envelope(body, str(data.get("content-type") or ""), str(data.get("content-encoding") or "utf-8"),
                    headers, _int(properties.get("priority")))


def amqp_envelope(message: Any) -> Envelope:
    """A message py-amqp handed over (basic.get)."""
    properties = getattr(message, "properties", None) or {}
    headers = properties.get("application_headers") or {}
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode("utf-8")
    return Envelope(body, str(properties.get("content_type") or ""), str(properties.get("content_encoding") or
                    "utf-8"), headers if isinstance(headers, dict) else {}, _int(properties.get("priority")))


def _protocol1_body(envelope: Envelope) -> dict[str, Any] | None:
    if envelope.content_type != JSON or len(envelope.body) > PROTOCOL1_PREVIEW_BYTES:
        return None
    try:
        body = loads(envelope.body, JSON, envelope.content_encoding, accept=[JSON])
    except Exception:
        return None
    return body if isinstance(body, dict) else None


def summary(envelope: Envelope, position: int) -> QueuedTask | None:
    """The task a message carries, for a listing; None when it is not a Celery task message."""
    headers = envelope.headers
    if isinstance(headers.get("id"), str) and isinstance(headers.get("task"), str):
        source = headers
        args, kwargs = headers.get("argsrepr"), headers.get("kwargsrepr")
    else:
        body = _protocol1_body(envelope)
        if body is None or not isinstance(body.get("id"), str) or not isinstance(body.get("task"), str):
            return None
        source = body
        args, kwargs = body.get("args"), body.get("kwargs")
    uuid = source["id"]
    if not uuid or len(uuid) > MAX_ID:
        return None
    return QueuedTask(
        uuid=uuid, name=_text(source.get("task"), MAX_NAME), args=_text(args, PREVIEW),
        kwargs=_text(kwargs, PREVIEW), eta=_text(source.get("eta"), 64), expires=_text(source.get("expires"), 64),
        retries=_int(source.get("retries")), priority=envelope.priority, position=position, size=len(envelope.body),
    )


def task_id(envelope: Envelope) -> str | None:
    """The task id alone, without decoding a body when the headers carry it (protocol 2)."""
    header_id = envelope.headers.get("id")
    if isinstance(header_id, str):
        return header_id
    body = _protocol1_body(envelope)
    return body.get("id") if body and isinstance(body.get("id"), str) else None


def exact_call(envelope: Envelope) -> tuple[list[Any], dict[str, Any]]:
    """The args and kwargs exactly as the message carries them (what a worker would get)."""
    if envelope.headers.get("compression"):
        raise Undecodable(f"its message is compressed ({envelope.headers['compression']}), and the monitor "
                          "does not decompress message bodies")
    if envelope.content_type != JSON:
        raise Undecodable(f"its message is {envelope.content_type or 'of no content type'}, and the monitor "
                          "decodes only JSON")
    try:
        body = loads(envelope.body, JSON, envelope.content_encoding, accept=[JSON])
    except (ContentDisallowed, DecodeError, ValueError, UnicodeDecodeError) as exc:
        raise Undecodable(f"its message body is not valid JSON ({exc})") from None
    if isinstance(body, list) and len(body) >= 2:  # protocol 2: [args, kwargs, embed]
        args, kwargs = body[0], body[1]
    elif isinstance(body, dict):  # protocol 1
        args, kwargs = body.get("args", []), body.get("kwargs", {})
    else:
        raise Undecodable("its message body is not a Celery task call")
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise Undecodable("its message body does not hold a list of args and a dict of kwargs")
    return list(args), kwargs
