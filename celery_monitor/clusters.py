"""Clusters: the Celery clusters one monitor watches, each named, each with its own broker.

A monitor started the way Flower is (``--broker``, ``--result_backend``, ``--broker_api``) watches
one cluster named ``default``. ``--clusters`` (``CELERY_MONITOR_CLUSTERS``, or ``clusters`` in the
config file) names several instead: comma-separated entries, each ``NAME=BROKER_URL`` followed by
optional ``result_backend=URL``, ``broker_api=URL``, ``beat_db=URL`` and ``redbeat_url=URL`` words
(the cluster's own django-celery-beat database and RedBeat Redis), e.g.::

    prod=redis://r:6379/0 result_backend=redis://r:6379/1, staging=amqp://u:p@mq:5672/staging

Every record the monitor keeps carries its cluster's name. Worker names may repeat across
clusters, so a worker of any cluster but ``default`` is known by its *qualified* name,
``<cluster>:<hostname>`` (:func:`qualified`): in task and worker records, the API's keys and
control URLs, the history. ``default`` keeps bare hostnames, so a one-cluster monitor is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT = "default"
NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9_-]{0,38}[a-z0-9])?")
SEPARATOR = ":"
EXTRA_KEYS = ("result_backend", "broker_api", "beat_db", "redbeat_url")


class BadClusters(ValueError):
    """A cluster entry that cannot be used; the message says which and why, on one line."""


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    name: str
    broker: str
    result_backend: str = ""
    broker_api: str = ""
    beat_db: str = ""
    redbeat_url: str = ""

    def __repr__(self) -> str:
        """Only the name: URLs carry passwords, and a repr ends up in logs."""
        return f"ClusterSpec({self.name!r})"


def parse_entry(entry: str) -> ClusterSpec:
    """One ``NAME=BROKER_URL [result_backend=URL] [broker_api=URL] [beat_db=URL] [redbeat_url=URL]`` entry."""
    words = entry.split()
    if not words:
        raise BadClusters("an empty cluster entry")
    name, has_url, broker = words[0].partition("=")
    check_name(name)
    if not has_url or not broker:
        raise BadClusters(f"cluster {name!r}: expected NAME=BROKER_URL")
    extras: dict[str, str] = {}
    for word in words[1:]:
        key, has_value, value = word.partition("=")
        if key not in EXTRA_KEYS or not has_value or not value:
            raise BadClusters(f"cluster {name!r}: unexpected {key!r} (after the broker URL: "
                              f"{' or '.join(k + '=URL' for k in EXTRA_KEYS)})")
        if key in extras:
            raise BadClusters(f"cluster {name!r}: {key} given twice")
        extras[key] = value
    return ClusterSpec(name, broker, **extras)


def check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise BadClusters(f"cluster name {name!r} must be 1-40 lowercase letters, digits, '-' or '_', "
                          "starting and ending with a letter or digit")


def parse_clusters(entries: Iterable[str]) -> list[ClusterSpec]:
    """The ``--clusters`` entries as specs: at least one, names unique."""
    specs = [parse_entry(entry) for entry in entries]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise BadClusters(f"cluster {spec.name!r} is named twice")
        seen.add(spec.name)
    return specs


def entries_from_config(value: Any) -> list[str]:
    """The config file's ``clusters``: a list of entries, or a mapping of name to a broker URL or to
    ``{"broker": ..., "result_backend": ..., "broker_api": ..., "beat_db": ..., "redbeat_url": ...}``;
    returned as entries."""
    if not isinstance(value, Mapping):
        return value if isinstance(value, list) else [str(value)]
    entries = []
    for name, spec in value.items():
        if isinstance(spec, str):
            entries.append(f"{name}={spec}")
            continue
        if not isinstance(spec, Mapping) or not isinstance(spec.get("broker"), str):
            raise BadClusters(f"cluster {name!r}: expected a broker URL or a dict with 'broker'")
        unknown = set(spec) - {"broker", *EXTRA_KEYS}
        if unknown:
            raise BadClusters(f"cluster {name!r}: unknown key {sorted(unknown)[0]!r}")
        words = [f"{name}={spec['broker']}"] + [f"{key}={spec[key]}" for key in EXTRA_KEYS if spec.get(key)]
        entries.append(" ".join(words))
    return entries


def qualified(cluster: str, hostname: str) -> str:
    """A worker's name in this monitor: its hostname, qualified by its cluster unless ``default``."""
    return hostname if cluster == DEFAULT else f"{cluster}{SEPARATOR}{hostname}"


def split_qualified(name: str, known: Iterable[str]) -> tuple[str, str]:
    """(cluster, hostname) of a worker's name in this monitor, given the clusters it watches."""
    cluster, sep, hostname = name.partition(SEPARATOR)
    if sep and cluster != DEFAULT and cluster in set(known):
        return cluster, hostname
    return DEFAULT, name
