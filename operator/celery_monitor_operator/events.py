"""Kubernetes Events on a CeleryMonitor when its conditions change, for ``kubectl describe``.

Posted only on a change, never on a pass that finds things as they were, so a condition that
stays False (a Prometheus Operator that is not installed) is told once. The text is the
condition's own, which never holds a credential (the conditions are built to be shown).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from celery_monitor_operator import kube, naming, resources, status

NORMAL = "Normal"
WARNING = "Warning"
# A condition that is False for one of these reasons is on its way, not in trouble.
UNDER_WAY = frozenset({"Pending", "ClaimMissing", "DeploymentMissing", "NoReplicasAvailable", "ScaledToZero"})
BECAME_READY = "Ready"
BECAME_NOT_READY = "NotReady"
MESSAGE_LIMIT = 1024  # what the API server keeps of an Event's message

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


def _state(condition: Mapping[str, Any] | None) -> tuple[Any, Any]:
    return (None, None) if condition is None else (condition.get("status"), condition.get("reason"))


def changes(previous: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]) -> list[Event]:
    """The Events that tell what changed between two ``status.conditions`` lists.

    A condition gets one when its status or reason changed; one seen for the first time only
    when it is not True (a new resource is not told that all is well five times over). Ready
    gets its own when it turns True, and when it leaves True (its cause has its own Event).
    """
    before = {item.get("type"): item for item in previous}
    found: list[Event] = []
    # Ready last: it sums up the others, so it reads best after what made it change.
    for condition in sorted(current, key=lambda item: item["type"] == status.READY):
        kind, state, earlier = condition["type"], condition["status"], before.get(condition["type"])
        if _state(earlier) == _state(condition):
            continue
        if kind == status.READY:
            if state == "True":
                found.append(Event(NORMAL, BECAME_READY, condition["message"]))
            elif earlier is not None and earlier.get("status") == "True":
                found.append(Event(WARNING, BECAME_NOT_READY, f"{condition['reason']}: {condition['message']}"))
            continue
        if earlier is None and state == "True":
            continue
        kind_of_event = NORMAL if state == "True" or condition["reason"] in UNDER_WAY else WARNING
        found.append(Event(kind_of_event, condition["reason"], f"{kind} is {state}: {condition['message']}"))
    return found


def render(body: Mapping[str, Any], event: Event, timestamp: str) -> dict[str, Any]:
    """A core/v1 Event about the CeleryMonitor ``body``, as ``kubectl describe`` lists them."""
    metadata = body["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{metadata['name']}.{secrets.token_hex(8)}", "namespace": metadata["namespace"]},
        "involvedObject": {"apiVersion": naming.API_VERSION, "kind": naming.KIND, "name": metadata["name"],
                           "namespace": metadata["namespace"], "uid": metadata.get("uid", "")},
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:MESSAGE_LIMIT],
        "source": {"component": naming.OPERATOR_NAME},
        "reportingComponent": naming.OPERATOR_NAME,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }


def post(api: kube.Api, body: Mapping[str, Any], found: Sequence[Event]) -> None:
    """Post each Event; one that cannot be posted is logged and dropped (the status says it all)."""
    for event in found:
        try:
            api.create(resources.EVENTS, body["metadata"]["namespace"], render(body, event, status.now()))
        except kube.ApiError as error:
            logger.warning("Cannot post the Event %s for %s/%s: %s", event.reason,
                           body["metadata"]["namespace"], body["metadata"]["name"], error.reason)
