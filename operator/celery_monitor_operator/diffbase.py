"""kopf's record of the last handled spec, without the values that may hold a credential.

kopf keeps the spec it last handled in an annotation (``last-handled-configuration``) to tell what
changed. A spec may carry a credential inline, which the operator refuses (a broker URL with a
password) or passes on as given (``extraArgs``, ``extraEnv`` values): the annotation must not keep
a copy where anyone who may read the resource's metadata finds it. So those values are stored as a
keyed digest: a change still shows as a change, and nothing of the value can be read back or
guessed from it. The key is made per process; after a restart every such value looks changed once,
and the operator converges once more, which changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

import kopf

# Paths under spec whose values may be credentials; "*" is every item of a list.
SENSITIVE = (
    ("broker", "url"),
    ("broker", "managementApi", "url"),
    ("resultBackend", "url"),
    ("clusters", "*", "broker", "url"),
    ("clusters", "*", "broker", "managementApi", "url"),
    ("clusters", "*", "resultBackend", "url"),
    ("extraArgs", "*"),
    ("extraEnv", "*", "value"),
)
REDACTED_PREFIX = "redacted:"
_KEY = secrets.token_bytes(32)


def redact(value: str) -> str:
    digest = hmac.new(_KEY, value.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{REDACTED_PREFIX}{digest}"


def _redact_path(node: Any, path: tuple[str, ...]) -> Any:
    if not path:
        return redact(node) if isinstance(node, str) else node
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(node, list):
        return [_redact_path(item, rest) for item in node]
    if isinstance(node, dict) and head in node:
        return {**node, head: _redact_path(node[head], rest)}
    return node


def redact_spec(spec: Any, paths: Iterable[tuple[str, ...]] = SENSITIVE) -> Any:
    """``spec`` with every value at ``paths`` replaced by its digest."""
    for path in paths:
        spec = _redact_path(spec, path)
    return spec


class RedactingDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation storage of the last handled spec, with possible credentials digested."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        if "spec" in essence:
            essence["spec"] = redact_spec(essence["spec"])
        return essence
