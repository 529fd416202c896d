"""Decoding of Celery event messages: kombu's envelope around a JSON body of one event or a batch.

Only JSON bodies are accepted: events come from the network, and unpickling them would let any
sender run code in the monitor.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

Event = dict[str, Any]


class MalformedMessage(ValueError):
    """A message that is not a Celery event (bad JSON, wrong shape, unsupported encoding)."""


_JSON_TYPES = frozenset({"application/json", "application/x-json", "text/json"})


def decode_body(body: bytes | str, content_type: str | None) -> list[Event]:
    """Decode an event body (one event or a list of events) into event dicts."""
    if content_type and content_type.split(";")[0].strip() not in _JSON_TYPES:
        raise MalformedMessage(f"unsupported content type {content_type!r}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from None
    events = payload if isinstance(payload, list) else [payload]
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise MalformedMessage("event without a type")
    return events


def decode_envelope(raw: bytes) -> list[Event]:
    """Decode a message as the Redis transport stores it: a JSON envelope with an encoded body."""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"envelope is not JSON: {exc}") from None
    if not isinstance(envelope, dict) or "body" not in envelope:
        raise MalformedMessage("envelope without a body")
    body = envelope["body"]
    properties = envelope.get("properties") or {}
    if isinstance(properties, dict) and properties.get("body_encoding") == "base64":
        try:
            body = binascii.a2b_base64(body)
        except (binascii.Error, TypeError, ValueError):
            raise MalformedMessage("body is not valid base64") from None
    return decode_body(body, envelope.get("content-type"))
