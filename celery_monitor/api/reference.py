"""The API reference in Markdown, generated from the app's own OpenAPI description (docs/api.md)."""

from __future__ import annotations

from typing import Any

from celery_monitor.api.openapi import describe


def _schema_text(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    if "enum" in schema:
        kind = " \\| ".join(str(v) for v in schema["enum"])
    extra = [f"{k} {schema[k]}" for k in ("minimum", "maximum") if k in schema]
    note = schema.get("description", "")
    return ", ".join(part for part in (kind, *extra, note) if part)


def render() -> str:
    from celery_monitor.api.routes import ROUTES
    from celery_monitor.auth.routes import ROUTES as AUTH_ROUTES

    document = describe([*ROUTES, *AUTH_ROUTES])
    lines = [
        "# HTTP API reference",
        "",
        "Generated from the app's OpenAPI description (served at `/api/openapi.json`) by",
        "`celery-monitor-docs api`; do not edit by hand. Every path is relative to `--url_prefix`.",
        "Errors are JSON: `{\"error\": \"reason\"}` with a 4xx or 5xx status.",
        "",
        document["info"]["description"],
        "",
    ]
    operation_labels = {operation["operationId"]: f"{method.upper()} {path}"
                        for path, operations in document["paths"].items() for method, operation in operations.items()}
    for path, operations in sorted(document["paths"].items()):
        for method, operation in operations.items():
            lines += [f"## `{method.upper()} {path}`", "", operation["summary"], ""]
            parameters = operation.get("parameters") or []
            if parameters:
                lines += ["| Parameter | In | Schema |", "| --- | --- | --- |"]
                lines += [f"| `{p['name']}` | {p['in']} | {_schema_text(p['schema'])} |" for p in parameters]
                lines.append("")
            body = operation.get("requestBody")
            if body:
                schema = body["content"]["application/json"]["schema"]
                fields = ", ".join(f"`{name}`" for name in schema.get("properties", {}))
                lines += [f"Body (JSON or form): {fields}", ""]
            lines += _links_text(operation, operation_labels)
    return "\n".join(lines)


def _links_text(operation: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """One line per value of the answer that other operations take (the OpenAPI links)."""
    taken: dict[tuple[str, str], list[str]] = {}
    for link in operation["responses"].get("200", {}).get("links", {}).values():
        for parameter, expression in link["parameters"].items():
            pointer = expression.removeprefix("$response.body#/")
            taken.setdefault((pointer, parameter.removeprefix("query.")), []).append(labels[link["operationId"]])
    if not taken:
        return []
    lines = [f"- `{pointer}` as `{parameter}` of " + ", ".join(f"`{label}`" for label in targets)
             for (pointer, parameter), targets in taken.items()]
    return ["Links (an answer's value, taken by other operations):", "", *lines, ""]
