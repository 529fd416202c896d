"""Notification rules and channels, parsed and checked once from the config file or the API.

The config file holds ``notifications = {"channels": {name: {...}}, "rules": {name: {...}}}``;
the API takes one rule or channel at a time in the same shape. Every bad value raises
:class:`BadConfig` naming the field, on one line.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER
from celery_monitor.clusters import BadClusters, check_name
from celery_monitor.notify import secrets

# What a rule watches. Task rules fire once per matching task; the others are conditions that hold
# for a while (a subject: a worker or a queue) and send a resolve message when they clear.
TASK_KINDS = ("task_failed", "task_lost", "task_runtime", "retries_exhausted")
CONDITION_KINDS = ("worker_offline", "queue_length", "queue_age", "schedule_missed")
RULE_KINDS = TASK_KINDS + CONDITION_KINDS
CHANNEL_KINDS = ("slack", "webhook", "email", "pagerduty")
SEVERITIES = ("critical", "error", "warning", "info")  # PagerDuty's, which the others map onto
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
# The fields of each channel kind that are secrets: masked when shown, never logged.
SECRET_FIELDS = {"slack": ("url",), "webhook": ("url", "secret"), "email": ("password",),
                 "pagerduty": ("routing_key",)}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class BadConfig(ValueError):
    pass


class FromConfigFile(BadConfig):
    """A rule or channel of the config file: the API leaves it alone (it is changed in the file)."""


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str
    options: dict[str, Any]
    source: str = "config"  # "config" (the file: read-only through the API) or "api"

    def shown(self) -> dict[str, Any]:
        """The channel as the API and the pages show it: secrets masked."""
        options = dict(self.options)
        for key in SECRET_FIELDS[self.kind]:
            if options.get(key):
                options[key] = secrets.masked(str(options[key]))
        return {"name": self.name, "kind": self.kind, "source": self.source, **options}


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    channels: tuple[str, ...]
    severity: str = "error"
    window: float = 60.0  # seconds: occurrences of one subject within it make one message
    tasks: tuple[str, ...] = ()  # task name patterns (fnmatch) to include; none: every task
    exclude_tasks: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()  # regular expressions searched in the exception text
    exclude_exceptions: tuple[str, ...] = ()
    threshold: float | None = None  # seconds (task_runtime, queue_age) or messages (queue_length)
    duration: float = 0.0  # seconds a queue condition must hold before it fires
    queues: tuple[str, ...] = ()  # queue name patterns; none: every queue
    workers: tuple[str, ...] = ()  # worker name patterns; none: every worker
    entries: tuple[str, ...] = ()  # schedule_missed: beat entry name patterns; none: every entry
    min_retries: int = 1  # retries_exhausted: the retries a failed task must have had
    clusters: tuple[str, ...] = ()  # the clusters whose tasks, workers, queues and entries it watches; none: all
    enabled: bool = True
    source: str = "config"
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    _compiled_excluded: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    @property
    def stateful(self) -> bool:
        return self.kind in CONDITION_KINDS

    def task_matches(self, name: str | None, exception: str | None) -> bool:
        task = name or ""
        if self.tasks and not any(fnmatch.fnmatchcase(task, p) for p in self.tasks):
            return False
        if any(fnmatch.fnmatchcase(task, p) for p in self.exclude_tasks):
            return False
        text = exception or ""
        if self._compiled and not any(p.search(text) for p in self._compiled):
            return False
        return not any(p.search(text) for p in self._compiled_excluded)

    def cluster_matches(self, cluster: str | None) -> bool:
        return not self.clusters or (cluster or DEFAULT_CLUSTER) in self.clusters

    def subject_matches(self, subject: str) -> bool:
        patterns = (self.queues if self.kind.startswith("queue_")
                    else self.entries if self.kind == "schedule_missed" else self.workers)
        return not patterns or any(fnmatch.fnmatchcase(subject, p) for p in patterns)

    def shown(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "channels": list(self.channels), "severity": self.severity,
                "window": self.window, "tasks": list(self.tasks), "exclude_tasks": list(self.exclude_tasks),
                "exceptions": list(self.exceptions), "exclude_exceptions": list(self.exclude_exceptions),
                "threshold": self.threshold, "duration": self.duration, "queues": list(self.queues),
                "workers": list(self.workers), "entries": list(self.entries), "min_retries": self.min_retries,
                "clusters": list(self.clusters), "enabled": self.enabled,
                "source": self.source}


@dataclass(frozen=True)
class NotifyConfig:
    channels: dict[str, Channel] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)


def _name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BadConfig(f"{where}: name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return name


def _strings(where: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) for v in raw):
        raise BadConfig(f"{where}: expected a list of strings")
    return tuple(raw)


def _number(where: str, raw: Any, minimum: float = 0.0) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < minimum:
        raise BadConfig(f"{where}: expected a number >= {minimum:g}, got {raw!r}")
    return float(raw)


def _text(where: str, raw: Any, required: bool = True) -> str:
    if raw is None and not required:
        return ""
    if not isinstance(raw, str) or (required and not raw):
        raise BadConfig(f"{where}: expected a non-empty string")
    return raw


CHANNEL_FIELDS: dict[str, dict[str, bool]] = {  # field -> required
    "slack": {"url": True},
    "webhook": {"url": True, "secret": True},
    "email": {"host": True, "port": False, "username": False, "password": False, "sender": True, "to": True,
              "starttls": False, "ca_certs": False},
    "pagerduty": {"routing_key": True, "url": False},
}
RULE_FIELDS = frozenset(Rule.__dataclass_fields__) - {"name", "source", "_compiled", "_compiled_excluded"}


def parse_channel(name: Any, raw: Any, source: str = "config") -> Channel:
    where = f"channel {name!r}"
    name = _name(where, name)
    if not isinstance(raw, Mapping):
        raise BadConfig(f"{where}: expected a dict")
    kind = raw.get("kind")
    if kind not in CHANNEL_KINDS:
        raise BadConfig(f"{where}: kind must be one of {', '.join(CHANNEL_KINDS)}")
    allowed = CHANNEL_FIELDS[kind]
    unknown = sorted(set(raw) - set(allowed) - {"kind"})
    if unknown:
        raise BadConfig(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(allowed)})")
    options: dict[str, Any] = {}
    for key, required in allowed.items():
        value = raw.get(key)
        if key == "to":
            options[key] = list(_strings(f"{where}.to", value))
            if not options[key]:
                raise BadConfig(f"{where}.to: at least one address")
        elif key == "port":
            options[key] = int(_number(f"{where}.port", 587 if value is None else value, 1))
        elif key == "starttls":
            if value is not None and not isinstance(value, bool):
                raise BadConfig(f"{where}.starttls: expected true or false")
            options[key] = True if value is None else value
        elif value is not None or required:
            options[key] = _text(f"{where}.{key}", value)
    for key in ("url",):
        url = options.get(key)
        if url and not url.startswith(("env:", "file:", "http://", "https://")):
            raise BadConfig(f"{where}.{key}: expected an http(s):// URL, env:NAME or file:/path")
    return Channel(name, kind, options, source)


def parse_rule(name: Any, raw: Any, channels: Mapping[str, Channel], source: str = "config") -> Rule:
    where = f"rule {name!r}"
    name = _name(where, name)
    if not isinstance(raw, Mapping):
        raise BadConfig(f"{where}: expected a dict")
    unknown = sorted(set(raw) - RULE_FIELDS)
    if unknown:
        raise BadConfig(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(RULE_FIELDS))})")
    kind = raw.get("kind")
    if kind not in RULE_KINDS:
        raise BadConfig(f"{where}: kind must be one of {', '.join(RULE_KINDS)}")
    targets = _strings(f"{where}.channels", raw.get("channels"))
    if not targets:
        raise BadConfig(f"{where}.channels: at least one channel")
    for target in targets:
        if target not in channels:
            raise BadConfig(f"{where}.channels: no channel named {target!r}")
    severity = raw.get("severity", "error")
    if severity not in SEVERITIES:
        raise BadConfig(f"{where}.severity: one of {', '.join(SEVERITIES)}")
    threshold = raw.get("threshold")
    if kind in ("task_runtime", "queue_length", "queue_age"):
        threshold = _number(f"{where}.threshold", threshold)
    elif threshold is not None:
        raise BadConfig(f"{where}.threshold: only for task_runtime, queue_length and queue_age")
    patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
    for key in ("exceptions", "exclude_exceptions"):
        try:
            patterns[key] = tuple(re.compile(p) for p in _strings(f"{where}.{key}", raw.get(key)))
        except re.error as exc:
            raise BadConfig(f"{where}.{key}: bad regular expression: {exc}") from None
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BadConfig(f"{where}.enabled: expected true or false")
    watched = _strings(f"{where}.clusters", raw.get("clusters"))
    for cluster in watched:
        try:
            check_name(cluster)
        except BadClusters as exc:
            raise BadConfig(f"{where}.clusters: {exc}") from None
    return Rule(
        name=name, kind=kind, channels=targets, severity=severity,
        window=_number(f"{where}.window", raw.get("window", 60.0)),
        tasks=_strings(f"{where}.tasks", raw.get("tasks")),
        exclude_tasks=_strings(f"{where}.exclude_tasks", raw.get("exclude_tasks")),
        exceptions=tuple(p.pattern for p in patterns["exceptions"]),
        exclude_exceptions=tuple(p.pattern for p in patterns["exclude_exceptions"]),
        threshold=threshold, duration=_number(f"{where}.duration", raw.get("duration", 0.0)),
        queues=_strings(f"{where}.queues", raw.get("queues")),
        workers=_strings(f"{where}.workers", raw.get("workers")),
        entries=_strings(f"{where}.entries", raw.get("entries")),
        min_retries=int(_number(f"{where}.min_retries", raw.get("min_retries", 1), 1)),
        clusters=watched, enabled=enabled, source=source,
        _compiled=patterns["exceptions"], _compiled_excluded=patterns["exclude_exceptions"],
    )


def parse_config(raw: Any) -> NotifyConfig:
    """The config file's ``notifications`` value."""
    if raw is None:
        return NotifyConfig()
    if not isinstance(raw, Mapping):
        raise BadConfig("expected a dict with 'channels' and 'rules'")
    unknown = sorted(set(raw) - {"channels", "rules"})
    if unknown:
        raise BadConfig(f"unknown key {unknown[0]!r} (known: channels, rules)")
    raw_channels = raw.get("channels") or {}
    raw_rules = raw.get("rules") or {}
    if not isinstance(raw_channels, Mapping) or not isinstance(raw_rules, Mapping):
        raise BadConfig("'channels' and 'rules' are dicts keyed by name")
    channels = {name: parse_channel(name, value) for name, value in raw_channels.items()}
    rules = {name: parse_rule(name, value, channels) for name, value in raw_rules.items()}
    return NotifyConfig(channels, rules)
