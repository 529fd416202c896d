"""Access scoped per cluster (``--cluster_access``): who may read, and who may control, which clusters.

Entries ``SUBJECT=CLUSTER:RIGHT`` (comma-separated, repeated for several clusters). SUBJECT is a
user (a Basic user name or a signed-in email, compared ignoring case), ``token:NAME`` (an API
token) or ``group:NAME`` (a group the OpenID Connect issuer lists in its ``groups`` claim); CLUSTER
is a cluster's name or ``*`` for all; RIGHT is ``read`` or ``control`` (which includes read). For
example ``alice@example.com=prod:control,alice@example.com=staging:read,group:sre=*:control``.

A subject named in no entry keeps the access it had (every cluster, within its role). One named in
some (itself, or through one of its groups) sees only the clusters named for them, and controls
only those given ``control`` (and only if its role may control at all: read-only stays read-only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from celery_monitor import clusters

READ = "read"
CONTROL = "control"
ALL = "*"
GROUP_PREFIX = "group:"


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


def scope_of(access: dict[str, ClusterScope], user: str | None,
             groups: Iterable[str] = ()) -> ClusterScope | None:
    """The scope of an identity (its user, or ``token:NAME``, and its sign-in groups): what any of
    them is given, together; None when none of them is named (not scoped)."""
    if not access:
        return None
    found = [access[subject] for subject in (user.lower() if user else None,
                                             *(f"{GROUP_PREFIX}{g.lower()}" for g in groups))
             if subject is not None and subject in access]
    if not found:
        return None
    return ClusterScope(frozenset().union(*(s.readable for s in found)),
                        frozenset().union(*(s.controllable for s in found)))


def groups_named(access: dict[str, ClusterScope], groups: Iterable[str]) -> list[str]:
    """Those of a user's groups that some entry names (what a session needs to keep)."""
    return [g for g in groups if f"{GROUP_PREFIX}{g.lower()}" in access]
