"""Installing the operator: least-privilege RBAC, the operator Deployment, and manifests/ kept in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cmon_helpers import REPO_ROOT
from test_operator_schemas import SPECS, rendered_children

from celery_monitor_operator import __main__ as entry
from celery_monitor_operator import handlers, render_cli, resources
from celery_monitor_operator.renderers import install, rbac

PRUNED_KINDS = {"Ingress", "HTTPRoute", "ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication",
                "HorizontalPodAutoscaler", "PodDisruptionBudget"}


CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces", "clusterkopfpeerings", "nodes",
                  "persistentvolumes", "clusterroles", "clusterrolebindings"}


def allowed(group: str, resource: str, namespaced: bool = False) -> set[str]:
    verbs: set[str] = set()
    for rule in rbac.operator_rules(namespaced=namespaced):
        if group in rule["apiGroups"] and resource in rule["resources"]:
            verbs |= set(rule["verbs"])
    return verbs


@pytest.mark.parametrize("namespaced", [False, True], ids=["all namespaces", "some namespaces"])
def test_the_operator_may_do_exactly_what_each_child_needs(namespaced: bool) -> None:
    kinds = {(obj["apiVersion"], obj["kind"]) for spec_data in SPECS.values() for obj in rendered_children(spec_data)}

    assert kinds == set(resources.BY_KIND)
    for api_version, kind in kinds:
        ref = resources.BY_KIND[(api_version, kind)]
        needed = {"get", "create", "patch"} | ({"delete"} if kind in PRUNED_KINDS else set())
        # The children whose status the monitor's sums up are watched (handlers.WATCHED_CHILDREN).
        needed |= {"list", "watch"} if ref in handlers.WATCHED_CHILDREN else set()
        assert allowed(ref.group, ref.plural, namespaced) == needed, kind


@pytest.mark.parametrize("namespaced", [False, True], ids=["all namespaces", "some namespaces"])
def test_the_operator_cannot_touch_what_it_does_not_manage(namespaced: bool) -> None:
    rules = rbac.operator_rules(namespaced=namespaced)
    everything = {verb for rule in rules for verb in rule["verbs"]}

    assert "*" not in everything
    assert all("*" not in rule["resources"] and "*" not in rule["apiGroups"] for rule in rules)
    # Pods: listed and annotated (pod-deletion-cost) only; never created, deleted or read one by one.
    assert allowed("", "pods", namespaced) == {"list", "patch"}
    assert allowed("", "namespaces", namespaced) == set()  # kopf needs no namespace listing in either mode
    # Only the Secrets it names: no list or watch, no update or delete.
    assert allowed("", "secrets", namespaced) == {"get", "create", "patch"}
    assert allowed("celerymonitor.io", "celerymonitors", namespaced) == {"get", "list", "watch", "patch"}
    assert allowed("celerymonitor.io", "celerymonitors/status", namespaced) == {"get", "patch"}


def test_watching_some_namespaces_needs_no_cluster_scoped_kind() -> None:
    namespaced = {resource for rule in rbac.operator_rules(namespaced=True) for resource in rule["resources"]}
    cluster = {resource for rule in rbac.operator_rules() for resource in rule["resources"]}

    assert not namespaced & CLUSTER_SCOPED
    assert "kopfpeerings" in namespaced and "clusterkopfpeerings" not in namespaced
    assert cluster & CLUSTER_SCOPED == {"customresourcedefinitions", "clusterkopfpeerings"}
    assert not any("kopf.dev" in rule["apiGroups"] for rule in rbac.operator_rules(peering=False))


def test_the_install_for_some_namespaces_has_a_role_in_each_and_no_cluster_role() -> None:
    objects = install.render_install(namespace="ops", namespaces=["team-a", "team-b"])
    kinds = [obj["kind"] for obj in objects]
    roles = [obj for obj in objects if obj["kind"] == "Role"]
    bindings = [obj for obj in objects if obj["kind"] == "RoleBinding"]

    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert [role["metadata"]["namespace"] for role in roles] == ["team-a", "team-b"]
    assert all(role["rules"] == rbac.operator_rules(namespaced=True) for role in roles)
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "celery-monitor-operator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "celery-monitor-operator",
                                        "namespace": "ops"}]
    assert [b["metadata"]["namespace"] for b in bindings] == ["team-a", "team-b"]
    peerings = [obj for obj in objects if obj["kind"] == "KopfPeering"]
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings] == [
        ("team-a", "celery-monitor-operator"), ("team-b", "celery-monitor-operator")]


def test_every_rule_in_the_manifests_says_why() -> None:
    text = (REPO_ROOT / "manifests" / "operator.yaml").read_text()
    rules_text = text[text.index("rules:\n"):text.index("---", text.index("rules:\n"))]

    assert rules_text.count("\n- apiGroups:") == len(rbac.operator_rules())
    for line_before, line in zip(rules_text.splitlines(), rules_text.splitlines()[1:], strict=False):
        if line.startswith("- apiGroups:"):
            assert line_before.startswith("# "), f"a rule without its reason after {line_before!r}"


def test_the_install_runs_one_hardened_operator_with_a_health_endpoint() -> None:
    objects = install.render_install(namespace="ops", image="registry.example.com/cm:2")
    kinds = [obj["kind"] for obj in objects]
    (deployment,) = [obj for obj in objects if obj["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]

    assert kinds[0] == "Namespace" and kinds[-1] == "Deployment"
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= set(kinds)
    assert all(obj["metadata"].get("namespace") in (None, "ops") for obj in objects)
    assert container["image"] == "registry.example.com/cm:2"
    assert container["command"] == ["celery-monitor-operator"]
    assert container["args"] == ["--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz",
                                 "--peering=celery-monitor-operator"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "celery-monitor-operator"


def test_the_install_can_watch_a_list_of_namespaces() -> None:
    (deployment,) = [o for o in install.render_install(namespaces=["team-a", "team-b"]) if o["kind"] == "Deployment"]

    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][:2] == [
        "--namespace=team-a", "--namespace=team-b"]


def test_the_command_defaults_to_all_namespaces_and_a_random_priority() -> None:
    first, second = entry.kopf_args([]), entry.kopf_args([])

    assert first[:3] == ["run", "--module", "celery_monitor_operator.handlers"]
    assert "--all-namespaces" in first
    priorities = {arg for arg in first + second if arg.startswith("--priority=")}
    assert len(priorities) == 2  # two replicas never share the top priority, so one of them stays active


def test_the_command_keeps_explicit_choices() -> None:
    args = entry.kopf_args(["--namespace=team-a", "--standalone"])

    assert "--all-namespaces" not in args
    assert not any(arg.startswith("--priority") for arg in args)


def test_manifests_are_what_the_renderers_produce() -> None:
    rendered = render_cli.render_manifests()

    # Only the operator's own files: manifests/examples/<folder>/ hold hand-written examples
    # of running the monitor without the operator.
    root = REPO_ROOT / "manifests"
    on_disk = {str(p.relative_to(root)) for pattern in ("*.yaml", "examples/*.yaml") for p in root.glob(pattern)}
    assert on_disk == set(rendered)
    for name, text in rendered.items():
        assert (REPO_ROOT / "manifests" / name).read_text() == text, (
            f"manifests/{name} is stale: run python -m celery_monitor_operator.render_cli manifests/")


def test_the_crd_reference_is_generated_from_the_schema() -> None:
    from celery_monitor_operator import crd_docs

    assert (REPO_ROOT / "docs" / "crd-reference.md").read_text() == crd_docs.render_reference(), (
        "docs/crd-reference.md is stale: run python -m celery_monitor_operator.render_cli manifests/ "
        "--docs docs/crd-reference.md")


def test_the_manifest_files_apply_in_order() -> None:
    crds = list(yaml.safe_load_all((REPO_ROOT / "manifests" / "crds.yaml").read_text()))
    operator = list(yaml.safe_load_all((REPO_ROOT / "manifests" / "operator.yaml").read_text()))

    assert [obj["kind"] for obj in crds] == ["CustomResourceDefinition"] * 3
    assert [obj["kind"] for obj in operator] == ["Namespace", "ServiceAccount", "ClusterRole",
                                                 "ClusterRoleBinding", "Deployment"]


def test_render_cli_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target, docs = tmp_path / "manifests", tmp_path / "ref.md"

    stale = render_cli.main([str(target), "--check"])
    stale_message = capsys.readouterr().err
    written = render_cli.main([str(target), "--docs", str(docs)])
    fresh = render_cli.main([str(target), "--docs", str(docs), "--check"])

    assert stale == 1 and "out of date" in stale_message
    assert written == 0
    assert (target / "examples" / "minimal.yaml").exists() and docs.exists()
    assert fresh == 0


@pytest.mark.parametrize("args", [[], ["--bogus"]])
def test_render_cli_refuses_bad_usage_with_status_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        render_cli.main(args)

    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_render_cli_refuses_a_file_as_the_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("")

    assert render_cli.main([str(target)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {target} is not a directory"


def test_the_operator_command_refuses_an_unknown_option_with_status_2() -> None:
    result = subprocess.run([sys.executable, "-m", "celery_monitor_operator", "--no-such-option"],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert "No such option '--no-such-option'" in result.stderr
    assert "Traceback" not in result.stderr
