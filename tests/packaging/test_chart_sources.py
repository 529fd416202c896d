"""The chart and the operator's code agree: one source for the CRDs, the RBAC rules and the pod."""

from __future__ import annotations

import subprocess
from pathlib import Path

import helm_cli
import pytest
import yaml
from helm_cli import by_kind, one

from celery_monitor_operator import naming
from celery_monitor_operator.renderers import crd, install, peering, rbac

CRDS = helm_cli.CHART / "crds"


def _load_all(path: Path) -> list[object]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_chart_crd_is_the_rendered_crd() -> None:
    assert _load_all(CRDS / "celerymonitors.yaml") == [crd.render_crd()]


def test_chart_peering_crds_are_the_rendered_ones() -> None:
    assert _load_all(CRDS / "kopf-peerings.yaml") == peering.render_peering_crds()


def test_chart_crd_folder_holds_nothing_else() -> None:
    assert sorted(p.name for p in CRDS.iterdir()) == ["celerymonitors.yaml", "kopf-peerings.yaml"]


def test_chart_cluster_role_grants_exactly_the_operator_rules(helm: Path) -> None:
    objects = helm_cli.template(helm)

    assert one(objects, "ClusterRole")["rules"] == rbac.operator_rules()
    assert one(objects, "ClusterRoleBinding")["roleRef"]["kind"] == "ClusterRole"
    assert by_kind(objects, "Role") == by_kind(objects, "RoleBinding") == []


@pytest.mark.parametrize("standalone", [False, True], ids=["peering", "standalone"])
def test_chart_watching_some_namespaces_has_roles_there_and_no_cluster_role(helm: Path, standalone: bool) -> None:
    values = {"watchNamespaces": ["team-a", "team-b"], "peering": {"standalone": standalone}}
    objects = helm_cli.template(helm, values)
    roles, bindings = by_kind(objects, "Role"), by_kind(objects, "RoleBinding")

    assert by_kind(objects, "ClusterRole") == by_kind(objects, "ClusterRoleBinding") == []
    assert [role["metadata"]["namespace"] for role in roles] == ["team-a", "team-b"]
    assert all(role["rules"] == rbac.operator_rules(namespaced=True, peering=not standalone) for role in roles)
    assert [binding["metadata"]["namespace"] for binding in bindings] == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == roles[0]["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": one(objects, "ServiceAccount")[
            "metadata"]["name"], "namespace": helm_cli.NAMESPACE}]


def test_chart_standalone_cluster_role_has_no_peering_rule(helm: Path) -> None:
    rules = one(helm_cli.template(helm, {"peering": {"standalone": True}}), "ClusterRole")["rules"]

    assert rules == rbac.operator_rules(peering=False)


@pytest.mark.parametrize("values", [None, {"watchNamespaces": ["team-a"]}], ids=["cluster role", "role"])
def test_chart_rules_each_say_why(helm: Path, values: dict[str, object] | None) -> None:
    done = helm_cli.run(helm, "template", helm_cli.RELEASE, str(helm_cli.CHART), values=values)
    assert done.returncode == 0, done.stderr
    comments = " ".join(line.strip()[2:] for line in done.stdout.splitlines() if line.strip().startswith("# "))
    for reason, _ in rbac.explained_rules(namespaced=values is not None):
        assert reason in comments


def test_generated_files_are_up_to_date() -> None:
    done = subprocess.run([str(helm_cli.REPO_ROOT / "scripts" / "render-chart-crds"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_chart_runs_the_operator_as_the_raw_manifests_do(helm: Path) -> None:
    """Same command, options, probe, ports, security and volumes as manifests/ (render_install)."""
    values = {"fullnameOverride": naming.OPERATOR_NAME, "watchNamespaces": ["a", "b"]}
    chart_pod = one(helm_cli.template(helm, values), "Deployment")["spec"]["template"]["spec"]
    manifest = install.render_operator_deployment(helm_cli.NAMESPACE, naming.DEFAULT_IMAGE, ["a", "b"])
    manifest_pod = manifest["spec"]["template"]["spec"]
    (chart_container,) = chart_pod["containers"]
    (manifest_container,) = manifest_pod["containers"]
    assert chart_container.pop("imagePullPolicy") == "IfNotPresent"
    assert chart_container == manifest_container
    for key in ("securityContext", "volumes"):
        assert chart_pod[key] == manifest_pod[key]


def test_chart_default_image_is_the_operator_default(helm: Path) -> None:
    (container,) = one(helm_cli.template(helm), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == naming.DEFAULT_IMAGE
