"""The operator watching one namespace with nothing but the Role the install gives it there.

The emulated API server refuses the operator every request its Role does not allow, as a real one
would: no ClusterRole, so no namespaces, no CRDs, no other namespace. With its peering in the
KopfPeering the install puts there, the monitor converges all the same, and not one request is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kmock_cluster import EmulatedCluster, RoleEmulator, kopf_command, operator_process, wait_for

from celery_monitor_operator import naming, resources
from celery_monitor_operator.renderers import install, rbac

WATCHED, OTHER = "team-a", "team-b"
TIMEOUT = 30.0
FAST_LOOPS = {"CELERY_MONITOR_OPERATOR_RESYNC_SECONDS": "2"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatedCluster, Path]]:
    tmp = tmp_path_factory.mktemp("operator-namespaced")
    role = (rbac.operator_rules(namespaced=True), frozenset({WATCHED}))
    emulated = EmulatedCluster(role).start()
    # As installed: peering on, in the KopfPeering the install puts in the watched namespace.
    emulated.serve("kopf.dev/v1/kopfpeerings", "KopfPeering")
    (peering,) = [obj for obj in install.render_install(namespaces=[WATCHED]) if obj["kind"] == "KopfPeering"]
    emulated.api().create(resources.ResourceRef("kopf.dev", "v1", "kopfpeerings"), WATCHED, peering)
    log = tmp / "operator.log"
    command = kopf_command(f"--peering={peering['metadata']['name']}", "--priority=100",
                           f"--namespace={WATCHED}", "--verbose")
    try:
        with operator_process(command, emulated.kubeconfig(tmp / "kubeconfig"), log, FAST_LOOPS) as process:
            yield emulated, log
            assert process.poll() is None, f"the operator exited early:\n{log.read_text()[-3000:]}"
    finally:
        emulated.stop()


def create_monitor(emulated: EmulatedCluster, namespace: str, name: str) -> None:
    emulated.api().create(resources.CELERY_MONITORS, namespace, {
        "apiVersion": naming.API_VERSION, "kind": naming.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "generation": 1},
        "spec": {"broker": {"url": "redis://redis:6379/0"}}})


def reconciled(emulated: EmulatedCluster, namespace: str, name: str) -> bool:
    found = emulated.api().get(resources.CELERY_MONITORS, namespace, name) or {}
    conditions = (found.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Reconciled" and c["status"] == "True" for c in conditions)


def test_the_role_alone_lets_the_operator_converge_its_namespace(cluster: tuple[EmulatedCluster, Path]) -> None:
    emulated, log = cluster
    create_monitor(emulated, WATCHED, "orders")
    create_monitor(emulated, OTHER, "billing")

    wait_for(lambda: reconciled(emulated, WATCHED, "orders"), TIMEOUT, "the watched monitor to converge", log)
    api = emulated.api()
    for ref, name in ((resources.DEPLOYMENTS, "orders"), (resources.SECRETS, "orders-auth"),
                      (resources.SECRETS, "orders-metrics"), (resources.SERVICES, "orders")):
        assert api.get(ref, WATCHED, name) is not None, name
    assert api.get(resources.DEPLOYMENTS, OTHER, "billing") is None
    assert emulated.emulator is not None and isinstance(emulated.emulator, RoleEmulator)
    assert emulated.emulator.refused == [], log.read_text()[-3000:]
