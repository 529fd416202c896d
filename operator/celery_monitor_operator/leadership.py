"""Whether this operator process is the active one among its peers, as kopf decides it.

kopf pauses its own handlers on every replica but the one with the highest priority, using the
keep-alives the replicas write into a peering object's status. The operator's resync loop (see
:mod:`.resync`) runs beside kopf, not as a kopf handler, so it reads the same object and applies
the same rule: no live peer with a higher priority, and no other live one with the same.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from celery_monitor_operator import kube, resources


@dataclasses.dataclass(frozen=True)
class Peering:
    """How kopf was told to take part in peering: ``settings.peering`` as it stands after start-up."""

    name: str
    priority: int
    clusterwide: bool
    standalone: bool


def _alive(entry: Mapping[str, Any], now: datetime.datetime) -> bool:
    try:
        seen = datetime.datetime.fromisoformat(str(entry["lastseen"]))
        lifetime = datetime.timedelta(seconds=int(entry.get("lifetime", 60)))
    except (KeyError, TypeError, ValueError):
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=datetime.UTC)
    return seen + lifetime > now


def leads(peers: Mapping[str, Any], priority: int, now: datetime.datetime | None = None) -> bool:
    """kopf's rule on a peering object's ``status`` (peer id: priority, lifetime, last seen).

    The entries do not say which one is ours: ours has our priority, so at most one live entry may
    have it, and none may have a higher one.
    """
    moment = now or datetime.datetime.now(datetime.UTC)
    live = [int(entry.get("priority", 0)) for entry in peers.values()
            if isinstance(entry, Mapping) and _alive(entry, moment)]
    return not any(other > priority for other in live) and live.count(priority) <= 1


def is_active(api: kube.Api, peering: Peering, namespace: str) -> bool:
    """True when this process is the one that works on ``namespace``'s CeleryMonitors now."""
    if peering.standalone:
        return True
    ref, where = ((resources.CLUSTER_PEERINGS, None) if peering.clusterwide
                  else (resources.NAMESPACE_PEERINGS, namespace))
    found = api.get(ref, where, peering.name)
    # Without its peering object kopf runs as if alone (it creates the cluster one at start-up).
    return found is None or leads(found.get("status") or {}, peering.priority)
