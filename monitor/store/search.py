"""The task search syntax shared with Flower: ``foo args:bar kwargs:key=value result:x state:FAILURE``.

Terms are separated by spaces; a value holding spaces is written in double quotes
(``args:"hello world"``). Every term must match (AND); several ``state:`` terms match any of
their states (OR). A bare term matches args, kwargs or result. ``name:`` and ``worker:``
narrow by task name and worker hostname substrings.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

# A term is a run of non-space characters, where a double-quoted part may hold spaces.
_TERM = re.compile(r'(?:[^\s"]|"(?:\\.|[^"\\])*")+')
_PREFIXES = ("args", "kwargs", "result", "state", "name", "worker")


@dataclass(slots=True)
class SearchTerms:
    any: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    kwargs: list[tuple[str, str]] = field(default_factory=list)
    result: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.any, self.args, self.kwargs, self.result, self.states, self.names, self.workers))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1].replace('\\"', '"')
    return value.replace('"', "")


def parse_search(text: str | None) -> SearchTerms:
    terms = SearchTerms()
    if not text:
        return terms
    for raw in _TERM.findall(text):
        prefix, sep, rest = raw.partition(":")
        if not sep or prefix not in _PREFIXES:
            if value := _unquote(raw):
                terms.any.append(value)
            continue
        value = _unquote(rest)
        if not value:
            continue
        if prefix == "kwargs":
            key, eq, expected = value.partition("=")
            if eq:
                terms.kwargs.append((key.strip(), _unquote(expected)))
            else:
                terms.any.append(value)
        elif prefix == "state":
            terms.states.append(value.upper())
        elif prefix == "args":
            terms.args.append(value)
        elif prefix == "result":
            terms.result.append(value)
        elif prefix == "name":
            terms.names.append(value)
        else:
            terms.workers.append(value)
    return terms


def kwargs_match(kwargs_repr: str | None, key: str, expected: str) -> bool:
    """Does the task's kwargs (a repr string) hold ``key`` with a value that prints as ``expected``?"""
    if not kwargs_repr:
        return False
    try:
        kwargs = ast.literal_eval(kwargs_repr)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        kwargs = None
    if isinstance(kwargs, dict):
        if key not in kwargs:
            return False
        value = kwargs[key]
        return expected in (str(value), repr(value))
    return f"'{key}': {expected}" in kwargs_repr or f"'{key}': '{expected}'" in kwargs_repr
