"""The Helm chart, through the real helm v4: lint, render, and check what it renders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_cli
import pytest
import yaml
from helm_cli import by_kind, one
from support import k8s_schemas

# Every optional part of the chart switched on, with non-default choices where there are some.
ALL_FEATURES: dict[str, Any] = {
    "image": {"digest": "sha256:" + "ab" * 32, "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry"}],
    "replicaCount": 2,
    "watchNamespaces": ["celery-monitor-system", "workers"],
    "peering": {"name": "celery-monitor"},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
    "extraEnv": [{"name": "KOPF_VERBOSE", "value": "1"}],
    "podAnnotations": {"example.com/team": "data"},
    "podLabels": {"team": "data"},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "celery-monitor-operator"}}},
    }]}},
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway",
                                   "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "x"}}}],
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.1/32"]},
    "celeryMonitor": {
        "create": True,
        "name": "orders",
        "labels": {"team": "data"},
        "spec": {
            "broker": {"secretKeyRef": {"name": "celery-broker", "key": "url"}},
            "resultBackend": {"url": "redis://redis:6379/1"},
            "auth": {"basic": {"secretName": "orders-login"}},
            "database": {"cnpgCluster": "orders-db"},
            "replicas": 2,
            "ingress": {"enabled": True, "host": "celery.example.com", "className": "nginx",
                        "tls": {"secretName": "celery-example-tls"}},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "prometheusRule": {"enabled": True},
        },
    },
    "tests": {"image": "python:3.11.13-slim-bookworm"},
}
VALUE_SETS = {"defaults": None, "all-features": ALL_FEATURES}


@pytest.fixture(scope="module", params=VALUE_SETS)
def rendered(request: pytest.FixtureRequest, helm: Path) -> list[dict[str, Any]]:
    return helm_cli.template(helm, VALUE_SETS[request.param])


@pytest.mark.parametrize("values", VALUE_SETS)
def test_chart_passes_helm_lint_strict(helm: Path, values: str) -> None:
    done = helm_cli.run(helm, "lint", "--strict", str(helm_cli.CHART), values=VALUE_SETS[values])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_every_rendered_object_is_valid_kubernetes(rendered: list[dict[str, Any]]) -> None:
    assert k8s_schemas.validate_all(rendered) == len(rendered) >= 8


def test_default_install_is_the_operator_alone(helm: Path) -> None:
    kinds = sorted(obj["kind"] for obj in helm_cli.template(helm))
    assert kinds == sorted(["CustomResourceDefinition"] * 3 + [
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment", "Pod"])


def test_all_features_add_a_budget_a_network_policy_and_a_monitor(helm: Path) -> None:
    objects = helm_cli.template(helm, ALL_FEATURES)
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    monitor = one(objects, "CeleryMonitor")
    assert monitor["metadata"]["name"] == "orders"
    assert monitor["spec"] == ALL_FEATURES["celeryMonitor"]["spec"]
    assert [pod["metadata"]["name"].rsplit("-", 1)[-1] for pod in by_kind(objects, "Pod")] == ["operator", "monitor"]


def test_every_object_carries_the_standard_labels(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        if obj["kind"] == "CustomResourceDefinition":
            continue  # from crds/, which Helm applies verbatim
        labels = obj["metadata"]["labels"]
        for key in ("helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
                    "app.kubernetes.io/part-of"):
            assert labels.get(key), f"{obj['kind']} {obj['metadata']['name']} lacks {key}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_operator_pod_runs_hardened_as_the_image_user(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["celery-monitor-operator"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_liveness_probe_asks_the_endpoint_the_operator_serves(rendered: list[dict[str, Any]]) -> None:
    (container,) = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    liveness = next(arg.split("=", 1)[1] for arg in container["args"] if arg.startswith("--liveness="))
    probe = container["livenessProbe"]["httpGet"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == probe["port"])
    assert liveness == f"http://0.0.0.0:{port}{probe['path']}"


def test_service_reaches_the_operator_pods_and_not_the_test_pods(rendered: list[dict[str, Any]]) -> None:
    service = one(rendered, "Service")
    selector = service["spec"]["selector"].items()
    pod_template = one(rendered, "Deployment")["spec"]["template"]
    assert selector <= pod_template["metadata"]["labels"].items()
    port_names = {p["name"] for p in pod_template["spec"]["containers"][0]["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    for test_pod in by_kind(rendered, "Pod"):
        assert not selector <= test_pod["metadata"]["labels"].items()


def test_helm_test_pods_check_the_operator_and_the_monitor_over_their_services(helm: Path) -> None:
    objects = helm_cli.template(helm, ALL_FEATURES)
    service = one(objects, "Service")
    urls = []
    for pod in by_kind(objects, "Pod"):
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        command = pod["spec"]["containers"][0]["command"]
        assert command[:2] == ["python", "-c"]
        compile(command[2], pod["metadata"]["name"], "exec")  # the script is valid Python
        urls += [var["value"] for var in pod["spec"]["containers"][0]["env"] if var["name"] == "CHECK_URL"]
    assert urls == [
        f"http://{service['metadata']['name']}.{helm_cli.NAMESPACE}.svc:{service['spec']['ports'][0]['port']}/healthz",
        # The spec's Ingress has no pathPrefix: the monitor serves at the root.
        f"http://orders.{helm_cli.NAMESPACE}.svc:5555/readyz",
    ]


def test_network_policy_guards_the_operator_pods_only(helm: Path) -> None:
    objects = helm_cli.template(helm, ALL_FEATURES)
    policy = one(objects, "NetworkPolicy")["spec"]
    selector = policy["podSelector"]["matchLabels"].items()
    assert selector <= one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    api_rule = policy["egress"][1]
    assert [p["port"] for p in api_rule["ports"]] == [443, 6443]
    assert api_rule["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


def test_each_watched_namespace_gets_the_peering_the_operator_joins(helm: Path) -> None:
    objects = helm_cli.template(helm, {"watchNamespaces": ["a", "b"]})
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    peering = next(arg.split("=", 1)[1] for arg in container["args"] if arg.startswith("--peering="))
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in by_kind(objects, "KopfPeering")] == [
        ("a", peering), ("b", peering)]
    assert by_kind(helm_cli.template(helm), "KopfPeering") == []  # cluster-wide: the operator makes its own


def test_watch_namespaces_become_operator_options(helm: Path) -> None:
    objects = helm_cli.template(helm, {"watchNamespaces": ["a", "b"], "peering": {"standalone": True}})
    assert by_kind(objects, "KopfPeering") == []
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--namespace=a", "--namespace=b", "--liveness=http://0.0.0.0:8080/healthz",
                                 "--standalone"]


def test_a_monitor_outside_the_watched_namespaces_is_refused(helm: Path) -> None:
    monitor = {"create": True, "spec": {"broker": {"url": "redis://redis:6379/0"}}}
    error = helm_cli.template_error(helm, {"watchNamespaces": ["workers"], "celeryMonitor": monitor})
    assert 'celeryMonitor.namespace "celery-monitor-system" is not in watchNamespaces' in error


def test_a_monitor_without_a_broker_is_refused(helm: Path) -> None:
    error = helm_cli.template_error(helm, {"celeryMonitor": {"create": True}})
    assert "celeryMonitor.spec.broker (one cluster) or celeryMonitor.spec.clusters (several) is required" in error


CLUSTERS = [
    {"name": "orders", "broker": {"secretKeyRef": {"name": "celery-brokers", "key": "orders"}},
     "resultBackend": {"secretKeyRef": {"name": "celery-brokers", "key": "orders-results"}}},
    {"name": "reports", "broker": {
        "secretKeyRef": {"name": "rabbitmq-reports", "key": "url"},
        "managementApi": {"secretKeyRef": {"name": "rabbitmq-reports", "key": "management"}}}},
]


def test_a_monitor_of_several_clusters_is_rendered_as_given_and_valid(helm: Path) -> None:
    objects = helm_cli.template(helm, {"celeryMonitor": {"create": True, "spec": {"clusters": CLUSTERS}}})

    monitor = one(objects, "CeleryMonitor")
    assert monitor["spec"] == {"clusters": CLUSTERS}
    k8s_schemas.validate(monitor)


@pytest.mark.parametrize("single", [{"broker": {"url": "redis://redis:6379/0"}},
                                    {"resultBackend": {"url": "redis://redis:6379/1"}}])
def test_a_monitor_with_clusters_and_a_single_broker_is_refused(helm: Path, single: dict[str, Any]) -> None:
    error = helm_cli.template_error(helm, {"celeryMonitor": {"create": True, "spec": {"clusters": CLUSTERS,
                                                                                      **single}}})
    assert ("celeryMonitor.spec.clusters replaces celeryMonitor.spec.broker and "
            "celeryMonitor.spec.resultBackend") in error


def test_a_monitor_from_set_flags_alone_is_valid(helm: Path) -> None:
    objects = helm_cli.template(helm, None, "--set", "celeryMonitor.create=true",
                                "--set", "celeryMonitor.spec.broker.url=redis://redis:6379/0")
    monitor = one(objects, "CeleryMonitor")
    assert monitor["spec"] == {"broker": {"url": "redis://redis:6379/0"}}
    k8s_schemas.validate(monitor)


def test_image_digest_wins_over_the_tag(helm: Path) -> None:
    digest = "sha256:" + "0" * 64
    objects = helm_cli.template(helm, {"image": {"tag": "9.9.9", "digest": digest}})
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/celery-monitor/celery-monitor@{digest}"
    objects = helm_cli.template(helm, {"image": {"tag": "9.9.9"}})
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/celery-monitor/celery-monitor:9.9.9"


@pytest.mark.parametrize(("values", "complaint"), [
    ({"replicaCount": -1}, "/replicaCount"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0"),
    ({"networkPolicy": {"apiServerPorts": [70000]}}, "/networkPolicy/apiServerPorts/0"),
    ({"podDisruptionBudget": {"maxUnavailable": "half"}}, "/podDisruptionBudget/maxUnavailable"),
    ({"celeryMonitor": {"create": True, "name": "Orders", "spec": {}}}, "/celeryMonitor/name"),
    ({"replicas": 2}, "additional properties 'replicas' not allowed"),
])
def test_values_outside_the_schema_are_refused(helm: Path, values: dict[str, Any], complaint: str) -> None:
    assert complaint in helm_cli.template_error(helm, values)


def test_chart_refuses_kubernetes_older_than_it_supports(helm: Path) -> None:
    assert "1.27" in helm_cli.template_error(helm, {}, "--kube-version", "1.27.0")
    assert helm_cli.template(helm, None, "--kube-version", "1.28.0")


def _leaves(values: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of values.yaml settings the schema does not describe."""
    missing = []
    if isinstance(values, dict) and "properties" in schema:
        for key, value in values.items():
            child = schema["properties"].get(key)
            if child is None or not child.get("description"):
                missing.append(f"{path}/{key}")
            else:
                missing += _leaves(value, child, f"{path}/{key}")
    return missing


def test_schema_describes_every_value_and_nothing_else() -> None:
    values = yaml.safe_load((helm_cli.CHART / "values.yaml").read_text())
    schema = json.loads((helm_cli.CHART / "values.schema.json").read_text())
    assert _leaves(values, schema) == []
    assert set(schema["properties"]) - set(values) == {"global"}


def test_install_notes_say_what_to_apply_next(helm: Path) -> None:
    done = helm_cli.run(helm, "install", "orders-ops", str(helm_cli.CHART), "--namespace", "ops",
                        "--dry-run=client")
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n ops rollout status deployment/orders-ops-celery-monitor-operator" in notes
    assert "kind: CeleryMonitor" in notes
    assert "helm test orders-ops -n ops" in notes


def test_uninstall_needs_no_hook_and_the_operator_may_watch_what_it_sums_up(rendered: list[dict[str, Any]]) -> None:
    # Nothing the chart renders holds a finalizer, and no hook runs at uninstall: the operator keeps
    # none on its CeleryMonitors (docs/helm.md), so deleting them after the operator never hangs.
    assert not [obj for obj in rendered if obj["metadata"].get("finalizers")]
    hooks = {obj["metadata"].get("annotations", {}).get("helm.sh/hook") for obj in rendered} - {None}
    assert hooks == {"test"}
    roles = [obj for obj in rendered if obj["kind"] in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        watched = {resource for rule in role["rules"] if {"list", "watch"} <= set(rule["verbs"])
                   for resource in rule["resources"]}
        assert {"deployments", "persistentvolumeclaims", "celerymonitors"} <= watched, role["metadata"]
        assert "secrets" not in watched
