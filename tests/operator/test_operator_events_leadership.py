"""The operator's Events and its peering check: the pure parts by table, the reading on the emulated API."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
from kmock_cluster import EmulatedCluster

from celery_monitor_operator import events, leadership, resources

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def cond(kind: str, status: str, reason: str, message: str = "why") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def told(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(event.type, event.reason) for event in events.changes(previous, current)]


def test_nothing_changed_posts_nothing() -> None:
    conditions = [cond("Ready", "False", "SecretNotFound"), cond("Reconciled", "False", "SecretNotFound")]
    assert told(conditions, conditions) == []


def test_a_new_resource_is_told_what_is_not_true_and_not_what_is() -> None:
    current = [cond("Ready", "False", "SecretNotFound"), cond("Reconciled", "False", "SecretNotFound"),
               cond("Available", "False", "DeploymentMissing"), cond("Exposed", "True", "ClusterInternal")]
    assert told([], current) == [(events.WARNING, "SecretNotFound"), (events.NORMAL, "DeploymentMissing")]


def test_ready_is_told_last_when_it_turns_true_and_when_it_leaves_true() -> None:
    before = [cond("Ready", "False", "NoReplicasAvailable"), cond("Available", "False", "NoReplicasAvailable")]
    after = [cond("Ready", "True", "Ready"), cond("Available", "True", "MinimumReplicasAvailable")]
    assert told(before, after) == [(events.NORMAL, "MinimumReplicasAvailable"), (events.NORMAL, events.BECAME_READY)]
    assert told(after, before) == [(events.NORMAL, "NoReplicasAvailable"), (events.WARNING, events.BECAME_NOT_READY)]


def test_a_changed_reason_is_a_change_and_its_message_says_which_condition() -> None:
    before = [cond("Reconciled", "False", "SecretNotFound")]
    after = [cond("Reconciled", "False", "ChildConflict", "Service 'x' already exists")]
    (event,) = events.changes(before, after)
    assert (event.type, event.reason) == (events.WARNING, "ChildConflict")
    assert event.message == "Reconciled is False: Service 'x' already exists"


def test_the_rendered_event_points_at_the_resource_and_is_bounded() -> None:
    body = {"metadata": {"name": "orders", "namespace": "shop", "uid": "u-1"}}
    rendered = events.render(body, events.Event(events.WARNING, "InvalidSpec", "x" * 5000), "2026-01-01T00:00:00Z")

    assert rendered["involvedObject"] == {"apiVersion": "celerymonitor.io/v1alpha1", "kind": "CeleryMonitor",
                                          "name": "orders", "namespace": "shop", "uid": "u-1"}
    assert rendered["metadata"]["name"].startswith("orders.") and rendered["metadata"]["namespace"] == "shop"
    assert len(rendered["message"]) == events.MESSAGE_LIMIT


def peer(priority: int, seconds_ago: float, lifetime: int = 60) -> dict[str, Any]:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


@pytest.mark.parametrize(("peers", "leads"), [
    ({}, True),  # our keep-alive not written yet: kopf is not paused either
    ({"us": peer(100, 1)}, True),
    ({"us": peer(100, 1), "other": peer(50, 1)}, True),
    ({"us": peer(100, 1), "other": peer(200, 1)}, False),  # a higher one lives
    ({"us": peer(100, 1), "other": peer(200, 61)}, True),  # ... and is dead now
    ({"us": peer(100, 1), "other": peer(100, 1)}, False),  # kopf pauses both of a tie
    ({"us": peer(100, 1), "other": peer(200, 1, lifetime=0)}, True),  # it left (kopf writes lifetime 0)
    ({"us": peer(100, 1), "broken": {"priority": 300}}, True),  # no lastseen: not a live peer
])
def test_leads_applies_kopfs_rule(peers: dict[str, Any], leads: bool) -> None:
    assert leadership.leads(peers, 100, NOW) is leads


def test_is_active_reads_the_peering_object_of_the_mode_it_runs_in() -> None:
    cluster = EmulatedCluster().start()
    try:
        cluster.serve("kopf.dev/v1/kopfpeerings", "KopfPeering")
        cluster.serve("kopf.dev/v1/clusterkopfpeerings", "ClusterKopfPeering", namespaced=False)
        api = cluster.api()
        now = datetime.datetime.now(datetime.UTC)
        higher = {"other": {"priority": 200, "lifetime": 60, "lastseen": now.isoformat()}}
        api.create(resources.NAMESPACE_PEERINGS, "team", {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
                                                          "metadata": {"name": "ops", "namespace": "team"},
                                                          "status": higher})
        namespaced = leadership.Peering(name="ops", priority=100, clusterwide=False, standalone=False)
        clusterwide = leadership.Peering(name="ops", priority=100, clusterwide=True, standalone=False)

        assert leadership.is_active(api, namespaced, "team") is False  # a live replica with priority 200 there
        assert leadership.is_active(api, namespaced, "other-team") is True  # no peering object: kopf runs alone
        assert leadership.is_active(api, clusterwide, "team") is True  # the cluster one does not exist
        assert leadership.is_active(api, dataclasses.replace(namespaced, standalone=True), "team") is True
    finally:
        cluster.stop()
