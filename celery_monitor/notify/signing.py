"""Signatures of generic webhooks: receivers check who sent a message and refuse replays.

The monitor sends ``X-Celery-Monitor-Timestamp`` (seconds since the epoch) and
``X-Celery-Monitor-Signature: v1=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<raw body>"`` under
the channel's secret. A receiver recomputes it, compares in constant time, refuses a timestamp
more than five minutes from its clock, and may remember the ``X-Celery-Monitor-Delivery`` id of
what it accepted within those five minutes to refuse an exact replay.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Celery-Monitor-Timestamp"
SIGNATURE_HEADER = "X-Celery-Monitor-Signature"
DELIVERY_HEADER = "X-Celery-Monitor-Delivery"
TOLERANCE = 300.0
VERSION = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def verify(secret: str, timestamp_header: str, signature_header: str, body: bytes, now: float,
           tolerance: float = TOLERANCE) -> bool:
    """What a receiver does (and the tests do): a fresh timestamp and the same signature."""
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header)
