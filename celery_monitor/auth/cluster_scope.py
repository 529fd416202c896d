"""Access scoped per cluster (``--cluster_access``): who may read, and who may control, which clusters.

Entries ``SUBJECT=CLUSTER:RIGHT`` (comma-separated, repeated for several clusters), where SUBJECT is
a user (a Basic user name or a signed-in email, compared ignoring case) or ``token:NAME`` (an API
token), CLUSTER a cluster's name or ``*`` for all, and RIGHT ``read`` or ``control`` (which
includes read). For example ``alice@example.com=prod:control,alice@example.com=staging:read``.

A subject named in no entry keeps the access it had (every cluster, within its role); a subject
named in some sees only the clusters named for it, and controls only those given ``control`` (and
only if its role may control at all: a read-only identity stays read-only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from celery_monitor import clusters

READ = "read"
CONTROL = "control"
ALL = "*"
TOKEN_PREFIX = "token:"


class BadAccess(ValueError):
    """An entry that cannot be used; the message says which and why, on one line."""


@dataclass(frozen=True, slots=True)
class ClusterScope:
    """The clusters one identity may read and control (``*`` among them: all)."""

    readable: frozenset[str] = field(default_factory=frozenset)
    controllable: frozenset[str] = field(default_factory=frozenset)

    def may_read(self, cluster: str) -> bool:
        return ALL in self.readable or cluster in self.readable

    def may_control(self, cluster: str) -> bool:
        return ALL in self.controllable or cluster in self.controllable

    def readable_of(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if self.may_read(name)]

    def __str__(self) -> str:
        return ", ".join(f"{c}:{CONTROL if self.may_control(c) else READ}" for c in sorted(self.readable))


def parse_access(entries: Iterable[str]) -> dict[str, ClusterScope]:
    """Each subject's scope (subjects lower-cased); BadAccess for an entry that cannot be used."""
    rights: dict[str, dict[str, str]] = {}
    for entry in entries:
        subject, has_scope, grant = entry.strip().rpartition("=")
        cluster, _, right = grant.partition(":")
        if not has_scope or not subject.strip():
            raise BadAccess(f"expected SUBJECT=CLUSTER:RIGHT, got {entry.strip()!r}")
        if right not in (READ, CONTROL):
            raise BadAccess(f"{subject.strip()!r}: the right is 'read' or 'control', not {right!r}")
        if cluster != ALL:
            try:
                clusters.check_name(cluster)
            except clusters.BadClusters as exc:
                raise BadAccess(f"{subject.strip()!r}: {exc}") from None
        given = rights.setdefault(subject.strip().lower(), {})
        if given.get(cluster) != CONTROL:  # the larger right wins when a cluster is named twice
            given[cluster] = right
    return {subject: ClusterScope(frozenset(given), frozenset(c for c, r in given.items() if r == CONTROL))
            for subject, given in rights.items()}


def scope_of(access: dict[str, ClusterScope], user: str | None) -> ClusterScope | None:
    """The scope of an identity (its user, or ``token:NAME``); None when it is not scoped."""
    if not access or user is None:
        return None
    return access.get(user.lower())
