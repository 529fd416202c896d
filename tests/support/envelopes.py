"""Event messages as kombu's Redis transport publishes them, for tests that publish events directly."""

from __future__ import annotations

import base64
import json


def kombu_envelope(body: bytes, content_type: str = "application/json") -> bytes:
    """Wrap an (already encoded) event body in kombu's JSON envelope with a base64 body."""
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-encoding": "utf-8", "content-type": content_type,
        "headers": {}, "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "celeryev"}},
    }).encode()
