"""The chart and the operator's code agree: one source for the CRDs, the RBAC rules and the pod."""

from __future__ import annotations

import subprocess
from pathlib import Path

import helm_cli
import yaml
from helm_cli import one

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
    assert one(helm_cli.template(helm), "ClusterRole")["rules"] == rbac.operator_rules()


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
