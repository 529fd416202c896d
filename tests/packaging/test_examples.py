"""The operator-free examples: the monitor as a sidecar of a worker, and as a plain Deployment.

Each is valid for every supported Kubernetes version, its parts point at one another, and the
monitor container, run here with the environment Kubernetes would give it, does what the
manifests promise: probes pass, the Secret's login guards the API, /metrics answers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support import k8s_schemas
from support.processes import BIN, RedisServer, free_port, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
IMAGE = "ghcr.io/celery-monitor/celery-monitor:0.1.0"
Obj = dict[str, Any]


def load(folder: str) -> list[Obj]:
    return [doc for path in sorted((EXAMPLES / folder).rglob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''} in the example, found {len(found)}"
    return found[0]


def monitor_container(deployment: Obj) -> Obj:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["image"] == IMAGE)


def secret_value(objects: list[Obj], ref: Obj) -> str:
    secret = find(objects, "Secret", ref["name"])
    assert ref["key"] in secret["stringData"], f"Secret {ref['name']} has no key {ref['key']}"
    return str(secret["stringData"][ref["key"]])


def environment(objects: list[Obj], container: Obj) -> dict[str, str]:
    """The container's variables as the kubelet would set them, Secrets resolved from the example."""
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = secret_value(objects, var["valueFrom"]["secretKeyRef"])
    return env


@pytest.mark.parametrize(("folder", "kinds"), [
    ("sidecar", ["Deployment", "Secret", "Secret", "Service"]),
    ("plain", ["Deployment", "PersistentVolumeClaim", "Secret", "Service", "ServiceMonitor"]),
])
def test_example_is_valid_kubernetes(folder: str, kinds: list[str]) -> None:
    objects = load(folder)
    assert sorted(o["kind"] for o in objects) == kinds
    assert k8s_schemas.validate_all(objects) == len(kinds)


@pytest.mark.parametrize("folder", ["sidecar", "plain"])
def test_monitor_container_is_probed_for_liveness_and_readiness_and_hardened(folder: str) -> None:
    container = monitor_container(find(load(folder), "Deployment"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        check = container[probe]["httpGet"]
        assert check["path"] == path and ports[check["port"]] == 5555, probe
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/data", "/tmp"}


@pytest.mark.parametrize("folder", ["sidecar", "plain"])
def test_login_and_broker_come_from_secrets(folder: str) -> None:
    objects = load(folder)
    container = monitor_container(find(objects, "Deployment"))
    from_secrets = {v["name"] for v in container["env"] if "secretKeyRef" in v.get("valueFrom", {})}
    assert {"CELERY_MONITOR_BROKER", "CELERY_MONITOR_BASIC_AUTH", "CELERY_MONITOR_COOKIE_SECRET"} <= from_secrets
    environment(objects, container)  # every reference resolves to a key of a Secret in the example


def test_sidecar_reads_the_broker_secret_the_worker_uses() -> None:
    pod = find(load("sidecar"), "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 2
    worker = next(c for c in pod["containers"] if c["name"] == "worker")
    monitor = monitor_container(find(load("sidecar"), "Deployment"))
    def secret_refs(container: Obj) -> dict[str, Obj]:
        return {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"] if "valueFrom" in v}

    assert secret_refs(monitor)["CELERY_MONITOR_BROKER"] == secret_refs(worker)["CELERY_BROKER_URL"]
    assert "-E" in worker["command"]
    assert "securityContext" not in pod, "the worker's pod settings are the user's, not the example's"


@pytest.mark.parametrize("folder", ["sidecar", "plain"])
def test_service_reaches_the_monitor_port(folder: str) -> None:
    objects = load(folder)
    deployment = find(objects, "Deployment")
    service = find(objects, "Service")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    port_names = {p["name"] for p in monitor_container(deployment)["ports"]}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [next(iter(port_names))]


def test_plain_monitor_keeps_history_on_its_claim_and_never_runs_twice() -> None:
    objects = load("plain")
    deployment = find(objects, "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "Recreate" and deployment["spec"]["replicas"] == 1
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    container = monitor_container(deployment)
    data = next(m for m in container["volumeMounts"] if m["mountPath"] == "/data")
    claim = volumes[data["name"]]["persistentVolumeClaim"]["claimName"]
    assert find(objects, "PersistentVolumeClaim")["metadata"]["name"] == claim
    assert environment(objects, container)["CELERY_MONITOR_DB"].startswith("/data/")


def test_plain_service_monitor_scrapes_the_metrics_port() -> None:
    objects = load("plain")
    service = find(objects, "Service")
    service_monitor = find(objects, "ServiceMonitor")
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = service_monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


@pytest.fixture(params=["sidecar", "plain"])
def running_example(request: pytest.FixtureRequest, redis_server: RedisServer,
                    tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The example's monitor container started here: its env, with the broker and /data made local."""
    objects = load(request.param)
    env = environment(objects, monitor_container(find(objects, "Deployment")))
    env["CELERY_MONITOR_DB"] = env["CELERY_MONITOR_DB"].replace("/data/", f"{tmp_path}/", 1)
    env["CELERY_MONITOR_BROKER"] = redis_server.url
    port = free_port()
    process = subprocess.Popen([str(BIN / "celery-monitor")], cwd=tmp_path, stdout=(tmp_path / "log").open("wb"),
                               stderr=subprocess.STDOUT,
                               env={"PATH": str(BIN), "HOME": str(tmp_path), **env,
                                    "CELERY_MONITOR_PORT": str(port), "CELERY_MONITOR_ADDRESS": "127.0.0.1"})
    try:
        yield f"http://127.0.0.1:{port}", env
    finally:
        process.terminate()
        process.wait(15)


def test_example_monitor_answers_probes_and_guards_its_api(running_example: tuple[str, dict[str, str]]) -> None:
    url, env = running_example
    wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, 30, message="the startup probe to pass")
    assert httpx.get(f"{url}/livez").json()["live"] is True  # the probes need no password
    assert httpx.get(f"{url}/api/workers").status_code == 401
    user, password = env["CELERY_MONITOR_BASIC_AUTH"].split(",")[0].split(":", 1)
    assert httpx.get(f"{url}/api/workers", auth=(user, password)).status_code == 200
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200 and "celery_monitor_" in metrics.text
    assert Path(env["CELERY_MONITOR_DB"]).exists()
