"""Small builders for OpenAPI v3 schema fragments, so the CRD reads like a table of fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Schema = dict[str, Any]


def string(description: str, *, default: str | None = None, enum: Iterable[str] | None = None,
           pattern: str | None = None, fmt: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "description": description}
    if enum is not None:
        schema["enum"] = list(enum)
    if pattern is not None:
        schema["pattern"] = pattern
    if fmt is not None:
        schema["format"] = fmt
    if default is not None:
        schema["default"] = default
    return schema


def integer(description: str, *, default: int | None = None, minimum: int | None = None,
            maximum: int | None = None, fmt: str = "int32") -> Schema:
    schema: Schema = {"type": "integer", "format": fmt, "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    return schema


def boolean(description: str, *, default: bool | None = None) -> Schema:
    schema: Schema = {"type": "boolean", "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def obj(description: str, properties: Mapping[str, Schema], *, required: Iterable[str] = (),
        defaulted: bool = False, rules: Iterable[tuple[str, str]] = ()) -> Schema:
    """An object with known fields; ``defaulted`` makes the API server fill its defaults when absent."""
    schema: Schema = {"type": "object", "description": description, "properties": dict(properties)}
    required = list(required)
    if required:
        schema["required"] = required
    validations = [{"rule": rule, "message": message} for rule, message in rules]
    if validations:
        schema["x-kubernetes-validations"] = validations
    if defaulted:
        schema["default"] = {}
    return schema


def string_map(description: str) -> Schema:
    return {"type": "object", "description": description, "additionalProperties": {"type": "string"}}


def quantity_map(description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?"
                       r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
            "x-kubernetes-int-or-string": True,
        },
    }


def array(description: str, items: Schema) -> Schema:
    return {"type": "array", "description": description, "items": items}


def free_object(description: str) -> Schema:
    """A Kubernetes type passed through as is (affinity, a toleration, an env var)."""
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}
