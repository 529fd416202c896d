"""Decoding of Celery event messages: kombu's envelope around a JSON body of one event or a batch.

Only JSON bodies are accepted, whatever the app's ``accept_content`` says: events come from the
network, and unpickling them would let any sender run code in the monitor. What comes out is the
list of items the body holds, unchecked: :mod:`celery_monitor.applier.boundary` checks each one on
its own, so one bad event never costs the others of its message.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any

import orjson


class MalformedMessage(ValueError):
    """A message that cannot hold events at all; ``reason`` is the rejection's metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_TYPES = frozenset({"application/json", "application/x-json", "text/json"})


def _loads(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # Python's json (which Celery's kombu writes with) accepts what orjson refuses: NaN, Infinity
    # and integers wider than 64 bits. Parsing them here lets the boundary refuse the one event that
    # holds them instead of the whole message.
    # It also lets through escaped lone surrogates ("\\ud800"), which no UTF-8 text can hold: they
    # become U+FFFD, so everything stored stays encodable.
    try:
        return _without_lone_surrogates(json.loads(body))
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage("not_json", f"the body is not JSON: {str(exc)[:80]}") from None


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    return value


def decode_body(body: bytes | str, content_type: str | None) -> list[Any]:
    """The items of an event body: one event, or the list of a batch."""
    if content_type and content_type.split(";")[0].strip().lower() not in _JSON_TYPES:
        raise MalformedMessage("unsupported_content_type",
                               f"content type {content_type[:60]!r} refused: only JSON events are read")
    payload = _loads(body)
    return payload if isinstance(payload, list) else [payload]


def decode_envelope(raw: bytes) -> list[Any]:
    """Decode a message as the Redis transport stores it: a JSON envelope with an encoded body."""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedMessage("not_json", "the message is not a kombu JSON envelope") from None
    if not isinstance(envelope, dict) or "body" not in envelope:
        raise MalformedMessage("not_an_event", "the envelope has no body")
    body = envelope["body"]
    properties = envelope.get("properties") or {}
    if isinstance(properties, dict) and properties.get("body_encoding") == "base64":
        try:
            body = binascii.a2b_base64(body)
        except (binascii.Error, TypeError, ValueError):
            raise MalformedMessage("not_json", "the body is not valid base64") from None
    if not isinstance(body, str | bytes):
        raise MalformedMessage("not_an_event", "the envelope's body is not text")
    content_type = envelope.get("content-type")
    if content_type is not None and not isinstance(content_type, str):
        raise MalformedMessage("unsupported_content_type", "the envelope's content type is not text")
    return decode_body(body, content_type)
