"""Pull the metric names out of a PromQL expression (and out of Grafana's templated variants).

A small lexer rather than a regular expression: label matchers, strings, ranges, function names,
keywords and the label lists of `by`/`without`/`on`/`ignoring`/`group_*` all look like identifiers
and must not be mistaken for metrics.
"""

from __future__ import annotations

import re

_IDENT_START = re.compile(r"[A-Za-z_:]")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER_OR_DURATION = re.compile(r"[0-9.][0-9A-Za-z_.]*")
_NAME_MATCHER = re.compile(r"""__name__\s*(=~|!=|!~|=)\s*(["'`])((?:\\.|(?!\2).)*)\2""")

# Words that may stand where a metric name could and are not one.
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})
# Modifiers followed by a parenthesised list of label names.
_LABEL_LIST_MODIFIERS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

# Grafana's built-in interval variables stand inside range brackets; any other variable inside
# a string or a label list is harmless once it is an identifier-free placeholder.
_GRAFANA_INTERVAL = re.compile(r"\$__(?:rate_interval|interval_ms|interval|range_s|range_ms|range)\b")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<body>.*)\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\(\s*(?P<body>.*)\)\s*$", re.DOTALL)


class PromQLSyntaxError(ValueError):
    """The expression is not balanced enough to read metric names from it."""


class UncheckableSelector(ValueError):
    """A `__name__` matcher other than equality: the names it selects cannot be listed."""


def without_grafana_variables(expr: str, interval: str = "5m", value: str = "x") -> str:
    """Replace Grafana template variables with values that keep the expression valid PromQL."""
    expr = _GRAFANA_INTERVAL.sub(interval, expr)
    return _GRAFANA_VARIABLE.sub(value, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, by bare name or by a `__name__` matcher."""
    return _scan(without_grafana_variables(expr))


def variable_query_metric_names(query: str) -> set[str]:
    """Metric names in a Grafana Prometheus variable query (`label_values(...)`, `query_result(...)`)."""
    query = without_grafana_variables(query)
    if match := _QUERY_RESULT.match(query):
        return _scan(match["body"])
    if match := _LABEL_VALUES.match(query):
        body = match["body"]
        # label_values(label) names no metric; label_values(selector, label) names the selector's.
        selector, comma, _label = body.rpartition(",")
        return _scan(selector) if comma else set()
    return _scan(query)


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """Index just past the bracket that closes the one at `start`, skipping quoted strings."""
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char in "\"'`":
            i = _string_end(text, i)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise PromQLSyntaxError(f"unclosed {opening!r} at {start} in {text!r}")


def _string_end(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    raise PromQLSyntaxError(f"unterminated string at {start} in {text!r}")


def _next_significant(text: str, i: int) -> str:
    """The next character that is not white space, or the whole word when one starts there."""
    while i < len(text) and text[i].isspace():
        i += 1
    if word := _IDENT.match(text, i):
        return word.group()
    return text[i] if i < len(text) else ""


def _names_in_matchers(matchers: str) -> set[str]:
    names = set()
    for match in _NAME_MATCHER.finditer(matchers):
        if match[1] != "=":
            raise UncheckableSelector(f"__name__{match[1]} selects names by pattern: {matchers}")
        names.add(match[3])
    return names


def _scan(text: str) -> set[str]:
    names: set[str] = set()
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "\"'`":
            i = _string_end(text, i)
        elif char == "{":
            end = _closing(text, i, "{", "}")
            names.update(_names_in_matchers(text[i:end]))
            i = end
        elif char == "[":
            i = _closing(text, i, "[", "]")
        elif char.isdigit() or (char == "." and text[i + 1 : i + 2].isdigit()):
            i = _NUMBER_OR_DURATION.match(text, i).end()  # type: ignore[union-attr]
        elif _IDENT_START.match(char):
            word = _IDENT.match(text, i).group()  # type: ignore[union-attr]
            i += len(word)
            follows = _next_significant(text, i)
            lowered = word.lower()
            if lowered in _LABEL_LIST_MODIFIERS:
                if follows == "(":
                    i = _closing(text, text.index("(", i), "(", ")")
            elif lowered in _KEYWORDS or follows == "(" or follows.lower() in ("by", "without"):
                continue  # an operator, a function, or an aggregation (`sum by (x) (...)`)
            else:
                names.add(word)
        else:
            i += 1
    return names
