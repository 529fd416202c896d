"""Two operator replicas against one emulated API: one works, the other waits, and takes over.

Both run as installed (kopf peering through a ClusterKopfPeering), with fixed priorities so the
test knows which one leads. While the leader lives, the standby neither handles a resource nor
runs a resync pass. The leader is killed without leaving the peering (SIGKILL, as when its node
dies): once its keep-alive runs out, the standby goes on with new resources and the old ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kmock_cluster import EmulatedCluster, kopf_command, operator_process
from operator_env import Env

from celery_monitor_operator import naming, resources

PEERING = "kopf.dev/v1/clusterkopfpeerings"
LIFETIME = "5"  # seconds a keep-alive counts: how long a killed leader holds the others back
LOOPS = {"CELERY_MONITOR_OPERATOR_RESYNC_SECONDS": "1", "CELERY_MONITOR_OPERATOR_PEERING_LIFETIME": LIFETIME}
RESYNC_PASS = re.compile(r"Resync pass: [1-9]\d* CeleryMonitors converged")
BROKER = {"url": "redis://redis:6379/0"}


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    cluster = EmulatedCluster().start()
    cluster.serve(PEERING, "ClusterKopfPeering", namespaced=False)
    yield cluster
    cluster.stop()


def replica(priority: int) -> list[str]:
    return kopf_command(f"--peering={naming.OPERATOR_NAME}", f"--priority={priority}", "--all-namespaces",
                        "--verbose")


def peers(env: Env) -> dict[str, dict[str, object]]:
    found = env.get(resources.CLUSTER_PEERINGS, None, naming.OPERATOR_NAME)  # type: ignore[arg-type]
    return dict((found or {}).get("status") or {})


def test_the_standby_waits_then_takes_over_when_the_leader_dies(cluster: EmulatedCluster, tmp_path: Path) -> None:
    ns = "peering"
    kubeconfig = cluster.kubeconfig(tmp_path / "kubeconfig")
    leader_log, standby_log = tmp_path / "leader.log", tmp_path / "standby.log"
    env = Env(cluster, standby_log, "")
    with operator_process(replica(200), kubeconfig, leader_log, LOOPS) as leader:
        # The leader creates the peering object and joins it; the standby comes as a second pod would.
        env.wait(lambda: [int(str(p["priority"])) for p in peers(env).values()] == [200] or None, "the leader")
        with operator_process(replica(100), kubeconfig, standby_log, LOOPS):
            env.wait(lambda: sorted(int(str(p["priority"])) for p in peers(env).values()) == [100, 200] or None,
                     "both replicas in the peering object")
            # kopf starts each replica paused until it has read the peering object; the standby stays so.
            assert "Pausing the watch-stream for celerymonitors" in standby_log.read_text()

            env.create_monitor(ns, "first", {"broker": BROKER})
            env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, "first"), "the leader to converge the first monitor")
            env.wait(lambda: RESYNC_PASS.search(leader_log.read_text()), "a resync pass of the leader")
            standby_said = standby_log.read_text()
            assert f"[{ns}/first]" not in standby_said, "the paused standby handled the resource"
            assert not RESYNC_PASS.search(standby_said), "the paused standby's resync converged"
            assert "Resuming operations" not in standby_said

            leader.kill()  # no goodbye in the peering object: the standby waits out the keep-alive
            leader.wait()

            env.create_monitor(ns, "second", {"broker": BROKER})
            env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, "second"), "the standby to converge a new monitor")
            assert "Resuming operations after the pause" in standby_log.read_text()
            # It has taken the first monitor over too: what is changed by hand is put back, and its
            # resync loop now works (it converged nothing while the leader lived, checked above).
            env.wait(lambda: f"[{ns}/first] Handler 'reconcile_monitor' succeeded" in standby_log.read_text(),
                     "the standby to take the first monitor over")
            env.api.delete(resources.SERVICES, ns, "first")
            env.wait(lambda: env.get(resources.SERVICES, ns, "first"), "the standby to restore the Service")
            env.wait(lambda: RESYNC_PASS.search(standby_log.read_text()), "a resync pass of the new leader")
