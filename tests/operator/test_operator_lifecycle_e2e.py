"""What a cluster user sees over a CeleryMonitor's life, on the emulated API with the real operator.

Ready follows the Deployment through the watch on the operator's children, not through its resync
(switched off here by a resync period longer than any test); each condition change posts one
Event; an optional API that is missing is told once and looked for again quietly; and a resource
deleted while no operator runs goes at once, as the operator holds no finalizer on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kmock_cluster import PROMETHEUS_OPERATOR, EmulatedCluster, kopf_command, operator_process
from operator_env import Env

from celery_monitor_operator import events, naming, reconcile, resources

NO_RESYNC = {"CELERY_MONITOR_OPERATOR_RESYNC_SECONDS": "3600"}
FAST_RESYNC = {"CELERY_MONITOR_OPERATOR_RESYNC_SECONDS": "1"}
RESYNC_PASS = re.compile(r"Resync pass: [1-9]\d* CeleryMonitors converged")
OLD_FINALIZER = f"{naming.GROUP}/operator"
BROKER = {"url": "redis://redis:6379/0"}


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    cluster = EmulatedCluster().start()
    yield cluster
    cluster.stop()


def operator(cluster: EmulatedCluster, tmp_path: Path, loops: dict[str, str], label: str = "operator"
             ) -> tuple[list[str], Path, Path, dict[str, str]]:
    """The command, kubeconfig, log and environment of one standalone operator process."""
    return (kopf_command("--standalone", "--all-namespaces", "--verbose"), cluster.kubeconfig(tmp_path / "kubeconfig"),
            tmp_path / f"{label}.log", loops)


def set_available(env: Env, namespace: str, name: str, available: int) -> None:
    """What the Deployment controller would write once the pod passes (or fails) its readiness probe."""
    env.api.merge_patch(resources.DEPLOYMENTS, namespace, name, {"status": {
        "replicas": 1, "readyReplicas": available, "availableReplicas": available}}, subresource="status")


def reasons(env: Env, namespace: str, name: str) -> list[tuple[str, str]]:
    return [(event["type"], event["reason"]) for event in env.events(namespace, name)]


def test_ready_follows_the_deployment_at_once_and_each_change_posts_an_event(
        cluster: EmulatedCluster, tmp_path: Path) -> None:
    ns, name = "life-ready", "orders"
    command, kubeconfig, log, loops = operator(cluster, tmp_path, NO_RESYNC)
    with operator_process(command, kubeconfig, log, loops):
        env = Env(cluster, log, "")
        env.create_monitor(ns, name, {"broker": BROKER, "persistence": {"enabled": False}})
        env.wait_condition(ns, name, "Ready", "False", "NoReplicasAvailable")

        set_available(env, ns, name, 1)
        env.wait_condition(ns, name, "Ready", "True", "Ready")
        set_available(env, ns, name, 0)
        env.wait_condition(ns, name, "Ready", "False", "NoReplicasAvailable")
        # A Deployment deleted by hand is put back at once too (its DELETED event).
        env.api.delete(resources.DEPLOYMENTS, ns, name)
        env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment to come back")

        expected = [
            (events.NORMAL, "NoReplicasAvailable"),  # Available, first seen: on its way
            (events.NORMAL, "MinimumReplicasAvailable"),
            (events.NORMAL, events.BECAME_READY),
            (events.NORMAL, "NoReplicasAvailable"),
            (events.WARNING, events.BECAME_NOT_READY),
        ]
        env.wait(lambda: reasons(env, ns, name) == expected or None, f"the Events {expected}")
        for event in env.events(ns, name):
            assert event["involvedObject"]["uid"] == f"uid-{ns}-{name}"
            assert event["source"]["component"] == naming.OPERATOR_NAME
    assert not RESYNC_PASS.search(log.read_text()), "the resync did the work the watch should have"


def test_a_fixed_spec_is_a_warning_then_a_normal_event(cluster: EmulatedCluster, tmp_path: Path) -> None:
    ns, name = "life-events", "mailer"
    command, kubeconfig, log, loops = operator(cluster, tmp_path, NO_RESYNC)
    with operator_process(command, kubeconfig, log, loops):
        env = Env(cluster, log, "")
        env.create_monitor(ns, name, {"broker": BROKER, "ingress": {"enabled": True}, "httpRoute": {
            "enabled": True, "hostnames": ["m.example.com"], "parentRefs": [{"name": "public"}]}})
        env.wait_condition(ns, name, "Reconciled", "False", "InvalidSpec")
        env.update_spec(ns, name, 2, {"httpRoute": {"enabled": False}})
        env.wait_condition(ns, name, "Reconciled", "True", "Applied")

        env.wait(lambda: (events.NORMAL, "Applied") in reasons(env, ns, name) or None, "the Normal Event")
        warning = env.events(ns, name)[0]
        assert (warning["type"], warning["reason"]) == (events.WARNING, "InvalidSpec")
        assert warning["message"].startswith("Reconciled is False: ") and "spec.httpRoute" in warning["message"]


def test_a_missing_prometheus_operator_is_told_once_and_looked_for_quietly(
        cluster: EmulatedCluster, tmp_path: Path) -> None:
    ns, name = "life-quiet", "alerts"
    command, kubeconfig, log, loops = operator(cluster, tmp_path, FAST_RESYNC)
    with operator_process(command, kubeconfig, log, loops):
        env = Env(cluster, log, "")
        env.create_monitor(ns, name, {"broker": BROKER, "serviceMonitor": {"enabled": True}})
        env.wait_condition(ns, name, "MonitoringConfigured", "False", reconcile.PROMETHEUS_OPERATOR_MISSING)
        passes_before = len(RESYNC_PASS.findall(log.read_text()))
        # Several resync passes look again and find it still missing.
        env.wait(lambda: len(RESYNC_PASS.findall(log.read_text())) >= passes_before + 3, "three more resync passes")

        told = [event for event in env.events(ns, name) if event["reason"] == reconcile.PROMETHEUS_OPERATOR_MISSING]
        assert [event["type"] for event in told] == [events.WARNING]
        assert "monitoring.coreos.com" in told[0]["message"]
        assert not [line for line in log.read_text().splitlines() if "ERROR" in line or "Traceback" in line]

        for resource, kind in PROMETHEUS_OPERATOR.items():
            cluster.serve(resource, kind)
        env.wait_condition(ns, name, "MonitoringConfigured", "True", "Configured")
        env.wait(lambda: (events.NORMAL, "Configured") in reasons(env, ns, name) or None, "the Event that it is fixed")
        assert env.get(resources.SERVICE_MONITORS, ns, name) is not None


def test_a_monitor_deleted_after_the_operator_stopped_goes_at_once(cluster: EmulatedCluster, tmp_path: Path) -> None:
    ns, name = "life-uninstall", "orders"
    command, kubeconfig, log, loops = operator(cluster, tmp_path, FAST_RESYNC)
    with operator_process(command, kubeconfig, log, loops):
        env = Env(cluster, log, "")
        env.create_monitor(ns, name, {"broker": BROKER})
        env.wait_condition(ns, name, "Reconciled", "True", "Applied")
        # kopf has recorded the spec it handled: everything it will ever add to the resource is there.
        env.wait(lambda: f"{naming.GROUP}/last-handled-configuration" in (
            env.get(resources.CELERY_MONITORS, ns, name) or {})["metadata"].get("annotations", {}), "kopf's record")
        env.wait(lambda: RESYNC_PASS.search(log.read_text()), "a resync pass over it")
        assert not (env.get(resources.CELERY_MONITORS, ns, name) or {})["metadata"].get("finalizers")

    env.api.delete(resources.CELERY_MONITORS, ns, name)  # as `helm uninstall` does, the operator gone first

    env.wait(lambda: env.get(resources.CELERY_MONITORS, ns, name) is None, "the CeleryMonitor to be gone")


def test_the_finalizer_an_earlier_version_left_is_removed(cluster: EmulatedCluster, tmp_path: Path) -> None:
    ns, name = "life-upgrade", "legacy"
    env = Env(cluster, tmp_path / "operator.log", "")
    env.create_monitor(ns, name, {"broker": BROKER})
    env.api.merge_patch(resources.CELERY_MONITORS, ns, name, {"metadata": {"finalizers": [OLD_FINALIZER]}})
    env.api.delete(resources.CELERY_MONITORS, ns, name)
    # Without an operator the old finalizer holds it, as it did in a real cluster: the trap.
    stuck = env.get(resources.CELERY_MONITORS, ns, name)
    assert stuck is not None and stuck["metadata"].get("deletionTimestamp")

    command, kubeconfig, log, loops = operator(cluster, tmp_path, FAST_RESYNC)
    with operator_process(command, kubeconfig, log, loops):
        env.wait(lambda: env.get(resources.CELERY_MONITORS, ns, name) is None, "the old finalizer to be released")
