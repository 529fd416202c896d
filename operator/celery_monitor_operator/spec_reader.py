"""Reading an untyped spec field by field, collecting problems instead of stopping at the first.

The API server validates a CeleryMonitor against the CRD schema, but the operator must not
trust that (an emulator or an old CRD does not); so every field is read through a
:class:`Reader`, and the user gets the whole list of mistakes at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# The reason of a problem, as it appears on the Reconciled condition, unless a reader names another.
INVALID_SPEC = "InvalidSpec"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec (or met while applying it): a CamelCase reason and a message for people."""

    reason: str
    message: str


class SpecError(Exception):
    """The spec cannot be rendered; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems

    @property
    def reason(self) -> str:
        return self.problems[0].reason


class Reader:
    """Reads one untyped mapping, records problems under dotted paths instead of raising."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, message: str, reason: str = INVALID_SPEC) -> None:
        self.problems.append(Problem(reason, message))

    def mapping(self, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(f"{path}.{key}: expected an object")
            return {}
        return value

    def string(self, data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str | None:
        value = data.get(key)
        if value is None or value == "":
            return default
        if not isinstance(value, str):
            self.problem(f"{path}.{key}: expected a string, got {value!r}")
            return default
        return value

    def choice(self, data: Mapping[str, Any], key: str, path: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.string(data, key, path, default) or default
        if value not in allowed:
            self.problem(f"{path}.{key}: {value!r} is not one of {', '.join(allowed)}")
            return default
        return value

    def boolean(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}: expected true or false, got {value!r}")
            return default
        return value

    def integer(self, data: Mapping[str, Any], key: str, path: str, default: int | None,
                minimum: int = 0, maximum: int | None = None) -> int | None:
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{path}.{key}: expected an integer, got {value!r}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            self.problem(f"{path}.{key}: must be {bounds}, got {value}")
            return default
        return value

    def string_map(self, data: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
        value = self.mapping(data, key, path)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            self.problem(f"{path}.{key}: every value must be a string")
            return {}
        return dict(value)

    def objects(self, data: Mapping[str, Any], key: str, path: str) -> tuple[Mapping[str, Any], ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            self.problem(f"{path}.{key}: expected a list of objects")
            return ()
        return tuple(value)

    def strings(self, data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(f"{path}.{key}: expected a list of strings")
            return ()
        return tuple(value)

