"""The results table: one row per measurement, a column per contender, and the ratios."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

OURS = "celery-monitor"
FLOWER = "flower-2.2"
CEILING = "bare ceiling"
COLUMNS = (CEILING, FLOWER, OURS)


@dataclass
class Row:
    section: str
    metric: str
    values: dict[str, float | str | None] = field(default_factory=dict)
    unit: str = ""
    higher_is_better: bool | None = None  # None: no ratio
    note: str = ""


def _format(value: float | str | None, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if unit == "ms":
        text = f"{value:.1f}" if value < 100 else f"{value:.0f}"
    elif unit == "s":
        text = f"{value:.2f}"
    elif unit == "MB":
        text = f"{value:.0f}"
    elif unit == "KB":
        text = f"{value:.1f}"
    elif unit == "ev/s" or abs(value) >= 1000:
        text = f"{value:,.0f}"
    else:
        text = f"{value:g}"
    return f"{text} {unit}".strip()


def _ratio(row: Row, ours: str, other: str) -> str:
    a, b = row.values.get(ours), row.values.get(other)
    if row.higher_is_better is None or not isinstance(a, int | float) or not isinstance(b, int | float):
        return ""
    # Always "how many times better ours is": above 1 ours is better, below 1 it is worse.
    if row.higher_is_better:
        return f"{a / b:.2f}x" if b else ("∞" if a else "")
    return f"{b / a:.2f}x" if a else ("∞" if b else "")


def _tables(rows: list[Row], header: list[str], head: list[str], cells: Callable[[Row], list[str]]) -> str:
    """One table per section, each opened by ``head``; a row's cells after its measurement."""
    lines = [*header, ""]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines += ["", f"### {section}", "", *head]
        metric = row.metric + (f" ({row.note})" if row.note else "")
        lines.append(f"| {metric} | {' | '.join(cells(row))} |")
    return "\n".join(lines) + "\n"


def render(rows: list[Row], header: list[str]) -> str:
    head = [f"| Measurement | {CEILING} | Flower 2.2 | {OURS} | ours vs Flower (>1: better) | ours ÷ ceiling |",
            "|---|---:|---:|---:|---:|---:|"]
    return _tables(rows, header, head, lambda row: [
        *(_format(row.values.get(c), row.unit) for c in COLUMNS), _ratio(row, OURS, FLOWER),
        _ratio(row, OURS, CEILING) if row.higher_is_better else ""])


def render_ours(rows: list[Row], header: list[str]) -> str:
    """A table of ours alone (sections measured on ours only, as the PostgreSQL one)."""
    return _tables(rows, header, [f"| Measurement | {OURS} |", "|---|---:|"],
                   lambda row: [_format(row.values.get(OURS), row.unit)])
