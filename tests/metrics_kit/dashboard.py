"""Walk the Grafana dashboard: its panels (rows may nest them) and its queries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from . import tools


def load() -> dict[str, Any]:
    return json.loads(tools.DASHBOARD.read_text())


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every panel target."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def variable_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(variable name, query) for every variable that asks Prometheus."""
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield variable["name"], query["query"] if isinstance(query, dict) else query
