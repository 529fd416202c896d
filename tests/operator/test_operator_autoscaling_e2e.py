"""spec.autoscaling end to end: the operator process, with only the Role it is installed with, on KMock.

Without KEDA the workers get an HPA; once the keda.sh CRDs are served, a ScaledObject and its
TriggerAuthentication replace it. With podDeletionCost, the worker pods carry their running tasks
as their deletion cost: read by the operator from a real monitor (real Redis, a real worker named
after its pod) with the read-only token of the Secret the operator made. The emulated API server
refuses the operator whatever its Role does not allow, and not one request is refused.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kmock_cluster import EmulatedCluster, RoleEmulator, kopf_command, operator_process, wait_for
from support import k8s_schemas
from support.client import celery_client
from support.processes import free_port, kill9_with_pool, new_monitor, start_worker

from celery_monitor_operator import naming, resources, worker_costs
from celery_monitor_operator.renderers import install, rbac, secret

WATCHED, OTHER = "team-scale", "team-other"
TIMEOUT = 40.0
LOOPS = {"CELERY_MONITOR_OPERATOR_RESYNC_SECONDS": "1", "CELERY_MONITOR_OPERATOR_RETRY_SECONDS": "1",
         "CELERY_MONITOR_OPERATOR_DELETION_COST_SECONDS": "1"}
KEDA = {"keda.sh/v1alpha1/scaledobjects": "ScaledObject",
        "keda.sh/v1alpha1/triggerauthentications": "TriggerAuthentication"}
WORKER_LABELS = {"app": "celery-worker"}
COST = naming.DELETION_COST_ANNOTATION
WARNED = "Pod deletion costs not updated: "


class Cluster:
    def __init__(self, emulated: EmulatedCluster, log: Path, tmp: Path, monitor_port: int) -> None:
        self.monitor_port = monitor_port
        self.emulated = emulated
        self.api = emulated.api()
        self.log = log
        self.tmp = tmp

    def wait(self, check: Any, what: str, timeout: float = TIMEOUT) -> Any:
        return wait_for(check, timeout, what, self.log)

    def create(self, ref: resources.ResourceRef, namespace: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        body["metadata"] |= {"namespace": namespace, "uid": f"uid-{namespace}-{name}", "resourceVersion": "1"}
        self.api.create(ref, namespace, body)

    def create_monitor(self, name: str, spec: dict[str, Any]) -> None:
        self.create(resources.CELERY_MONITORS, WATCHED, {
            "apiVersion": naming.API_VERSION, "kind": naming.KIND, "metadata": {"name": name, "generation": 1},
            "spec": spec})

    def condition(self, name: str, kind: str) -> tuple[str, str] | None:
        found = self.api.get(resources.CELERY_MONITORS, WATCHED, name) or {}
        for item in (found.get("status") or {}).get("conditions") or []:
            if item["type"] == kind:
                return item["status"], item["reason"]
        return None

    def annotation(self, namespace: str, pod: str) -> str | None:
        found = self.api.get(resources.PODS, namespace, pod) or {}
        return ((found.get("metadata") or {}).get("annotations") or {}).get(COST)

    @property
    def refused(self) -> list[str]:
        assert isinstance(self.emulated.emulator, RoleEmulator)
        return self.emulated.emulator.refused


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("operator-autoscaling")
    emulated = EmulatedCluster((rbac.operator_rules(namespaced=True), frozenset({WATCHED}))).start()
    emulated.serve("kopf.dev/v1/kopfpeerings", "KopfPeering")
    (peering,) = [obj for obj in install.render_install(namespaces=[WATCHED]) if obj["kind"] == "KopfPeering"]
    emulated.api().create(resources.ResourceRef("kopf.dev", "v1", "kopfpeerings"), WATCHED, peering)
    log = tmp / "operator.log"
    command = kopf_command(f"--peering={peering['metadata']['name']}", "--priority=100",
                           f"--namespace={WATCHED}", "--verbose")
    # Outside the cluster the monitor's Service does not resolve: the operator reads the test's monitor.
    port = free_port()
    env = {**LOOPS, worker_costs.MONITOR_URL_VARIABLE: f"http://127.0.0.1:{port}/"}
    try:
        with operator_process(command, emulated.kubeconfig(tmp / "kubeconfig"), log, env) as process:
            yield Cluster(emulated, log, tmp, port)
            assert process.poll() is None, f"the operator exited early:\n{log.read_text()[-3000:]}"
    finally:
        emulated.stop()


def test_an_hpa_without_keda_then_a_scaled_object_once_keda_is_served(cluster: Cluster) -> None:
    name = "scaled"
    cluster.create_monitor(name, {"broker": {"url": "redis://redis:6379/0"}, "autoscaling": {
        "enabled": True, "workerDeployment": "celery-worker", "queues": ["celery", "reports"],
        "minReplicas": 1, "maxReplicas": 8, "backlogPerReplica": 20}})
    child = naming.autoscaler_name(name)

    hpa = cluster.wait(lambda: cluster.api.get(resources.HPAS, WATCHED, child), "the HPA")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "celery-worker"
    assert hpa["metadata"]["ownerReferences"][0]["uid"] == f"uid-{WATCHED}-{name}"
    cluster.wait(lambda: cluster.condition(name, "AutoscalingConfigured") == (
        "True", "HorizontalPodAutoscalerConfigured"), "the HPA reported")
    deployment = cluster.api.get(resources.DEPLOYMENTS, WATCHED, name) or {}
    assert "--queues=celery,reports" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]

    for resource, kind in KEDA.items():
        cluster.emulated.serve(resource, kind)
    scaled_object = cluster.wait(lambda: cluster.api.get(resources.SCALED_OBJECTS, WATCHED, child),
                                 "the ScaledObject once KEDA is served")
    authentication = cluster.wait(lambda: cluster.api.get(resources.TRIGGER_AUTHENTICATIONS, WATCHED, child),
                                  "its TriggerAuthentication")
    cluster.wait(lambda: cluster.api.get(resources.HPAS, WATCHED, child) is None, "the HPA pruned")
    cluster.wait(lambda: cluster.condition(name, "AutoscalingConfigured") == ("True", "ScaledObjectConfigured"),
                 "the ScaledObject reported")

    (trigger,) = scaled_object["spec"]["triggers"]
    assert trigger["metadata"]["url"] == (f"http://{name}.{WATCHED}.svc:5555/api/queues/backlog"
                                          "?queue=celery&queue=reports")
    assert authentication["spec"]["secretTargetRef"] == [
        {"parameter": "token", "name": naming.metrics_secret_name(name), "key": secret.METRICS_TOKEN_KEY}]
    assert cluster.api.get(resources.SECRETS, WATCHED, naming.metrics_secret_name(name)) is not None
    # As the API server keeps them, they are valid against KEDA's CRDs.
    for live in (scaled_object, authentication):
        k8s_schemas.validate({key: live[key] for key in ("apiVersion", "kind", "spec")} | {"metadata": {
            key: live["metadata"][key] for key in ("name", "namespace", "labels", "ownerReferences")}})

    cluster.api.merge_patch(resources.CELERY_MONITORS, WATCHED, name,
                            {"metadata": {"generation": 2}, "spec": {"autoscaling": {"enabled": False}}})
    cluster.wait(lambda: cluster.api.get(resources.SCALED_OBJECTS, WATCHED, child) is None, "the ScaledObject pruned")
    cluster.wait(lambda: cluster.api.get(resources.TRIGGER_AUTHENTICATIONS, WATCHED, child) is None,
                 "the TriggerAuthentication pruned")
    assert cluster.refused == [], cluster.log.read_text()[-3000:]


def test_an_autoscaling_spec_it_cannot_use_is_a_condition_naming_the_field(cluster: Cluster) -> None:
    name = "unscalable"
    cluster.create_monitor(name, {"broker": {"url": "redis://redis:6379/0"}, "autoscaling": {
        "enabled": True, "workerDeployment": "celery-worker", "queues": ["a,b"], "minReplicas": 3, "maxReplicas": 2}})

    cluster.wait(lambda: cluster.condition(name, "Reconciled") == ("False", "InvalidSpec"), "the spec refused")
    found = cluster.api.get(resources.CELERY_MONITORS, WATCHED, name) or {}
    (reconciled,) = [c for c in found["status"]["conditions"] if c["type"] == "Reconciled"]
    assert "spec.autoscaling.queues[0]:" in reconciled["message"]
    assert "spec.autoscaling.minReplicas:" in reconciled["message"]
    assert cluster.api.get(resources.HPAS, WATCHED, naming.autoscaler_name(name)) is None


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "worker", "image": "worker:1"}]}}


def worker_deployment() -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "celery-worker"}, "spec": {
        "selector": {"matchLabels": WORKER_LABELS},
        "template": {"metadata": {"labels": WORKER_LABELS},
                     "spec": {"containers": [{"name": "worker", "image": "worker:1"}]}}}}


def warnings(cluster: Cluster) -> list[str]:
    """The deletion-cost problems the operator logged, in order."""
    return [line.split(WARNED, 1)[1] for line in cluster.log.read_text().splitlines() if WARNED in line]


def token_of(cluster: Cluster, name: str) -> str:
    found = cluster.wait(lambda: cluster.api.get(resources.SECRETS, WATCHED, naming.metrics_secret_name(name)),
                         "the metrics Secret")
    return base64.b64decode(found["data"][secret.METRICS_TOKEN_KEY]).decode()


@pytest.mark.redis
def test_worker_pods_carry_their_running_tasks_as_deletion_cost(cluster: Cluster, redis_server: Any) -> None:
    name, queue = "costs", "costly"
    broker, backend = redis_server.url.replace("/0", "/8"), redis_server.url.replace("/0", "/9")
    cluster.create(resources.DEPLOYMENTS, WATCHED, worker_deployment())
    for worker_pod in ("celery-worker-busy", "celery-worker-idle"):
        cluster.create(resources.PODS, WATCHED, pod(worker_pod, WORKER_LABELS))
    cluster.create(resources.PODS, WATCHED, pod("web", {"app": "web"}))
    cluster.create(resources.PODS, OTHER, pod("celery-worker-busy", WORKER_LABELS))
    cluster.create_monitor(name, {"broker": {"url": broker}, "persistence": {"enabled": False}, "autoscaling": {
        "enabled": True, "workerDeployment": "celery-worker", "queues": [queue], "podDeletionCost": {"enabled": True}}})

    # The monitor as the operator deployed it: it admits the read-only token of the operator's Secret.
    token = token_of(cluster, name)
    entry = secret.metrics_token_entry(token)
    monitor = new_monitor(broker, cluster.tmp, "--metrics_auth=any", f"--api_tokens={entry}", f"--queues={queue}",
                          auth=("admin", "s3cret"))
    monitor.port = cluster.monitor_port
    # A worker in the pod "celery-worker-busy": its host name is the pod's name.
    worker = start_worker(broker, "busy", cluster.tmp, "-n", "celery@celery-worker-busy", "-Q", queue,
                          backend=backend)
    try:
        cluster.wait(lambda: "/api/workers did not answer" in "".join(warnings(cluster)),
                     "the operator to say the monitor does not answer yet")
        monitor.start(timeout=40)
        # One sync patches the pods one after the other: both are waited for.
        cluster.wait(lambda: cluster.annotation(WATCHED, "celery-worker-busy") == "0", "the idle worker's pod at 0")
        cluster.wait(lambda: cluster.annotation(WATCHED, "celery-worker-idle") == "0",
                     "the pod without a worker at 0")  # no worker at all: nothing to lose

        with celery_client(broker, backend) as app:
            for _ in range(2):
                app.send_task("tests.hold", args=(12,), queue=queue)
        cluster.wait(lambda: cluster.annotation(WATCHED, "celery-worker-busy") == "2",
                     "the busy pod's cost: its two running tasks")
        assert cluster.annotation(WATCHED, "celery-worker-idle") == "0"
        cluster.wait(lambda: cluster.annotation(WATCHED, "celery-worker-busy") == "0",
                     "back to 0 once they finished", timeout=60)

        # Only the worker Deployment's pods, only in the watched namespace, and nothing refused.
        assert cluster.annotation(WATCHED, "web") is None
        assert cluster.annotation(OTHER, "celery-worker-busy") is None
        assert cluster.refused == [], cluster.log.read_text()[-3000:]
        # The monitor did not answer until it started: said once per reason, not on every pass.
        problems = warnings(cluster)
        assert len(problems) == len(set(problems)), problems
    finally:
        kill9_with_pool(worker)
        monitor.stop()
