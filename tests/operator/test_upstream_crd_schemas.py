"""The upstream CRD schemas the tests validate against: from pinned npm packages, cross-checked.

scripts/setup.d/25-k8s-schemas installs the npm packages of tests/k8s-schemas and extracts each
kind's schema as JSON. A missing or stale extraction fails the tests that need it, with the fix.
Where ../shared/k8s-crds (exact copies of the upstream CRD files) sits beside the checkout, the
tests marked ``shared_crds`` check that both sources accept what the project renders and refuse
the same mistakes; elsewhere they are deselected (see conftest.py).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cmon_helpers import SPECS, rendered_children
from support import k8s_schemas

from celery_monitor_operator import examples

Obj = dict[str, Any]
Key = tuple[str, str]

SERVICE_MONITOR = ("monitoring.coreos.com/v1", "ServiceMonitor")
PROMETHEUS_RULE = ("monitoring.coreos.com/v1", "PrometheusRule")
HTTP_ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
SCALED_OBJECT = ("keda.sh/v1alpha1", "ScaledObject")
TRIGGER_AUTHENTICATION = ("keda.sh/v1alpha1", "TriggerAuthentication")

# The KEDA objects a user writes by hand to scale Celery workers on a Redis list (beside those the
# operator renders for spec.autoscaling, from the example specs).
KEDA_SAMPLES: list[Obj] = [
    {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "workers"},
     "spec": {"scaleTargetRef": {"name": "celery-worker"}, "minReplicaCount": 1, "maxReplicaCount": 20,
              "pollingInterval": 15, "cooldownPeriod": 300,
              "triggers": [{"type": "redis", "metadata": {"address": "redis:6379", "listName": "celery",
                                                          "listLength": "50"},
                            "authenticationRef": {"name": "redis-login"}}]}},
    {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "redis-login"},
     "spec": {"secretTargetRef": [{"parameter": "password", "name": "redis", "key": "password"}]}},
]


def rendered(key: Key) -> list[Obj]:
    """Every object of that kind the operator renders for the test specs and the examples."""
    objects = [child for spec_data in SPECS.values() for child in rendered_children(spec_data)]
    objects += [obj for factory in examples.EXAMPLES.values() for obj in factory()]
    objects += KEDA_SAMPLES
    return [obj for obj in objects if (obj["apiVersion"], obj["kind"]) == key]


def _set(path: list[str | int], value: Any) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        node: Any = obj
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return change


def _drop(path: list[str | int]) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        node: Any = obj
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]
    return change


# Per kind: mistakes an API server refuses (or, for unknown fields, prunes without a word).
MISTAKES: dict[Key, dict[str, Callable[[Obj], None]]] = {
    SERVICE_MONITOR: {
        "unknown field": _set(["spec", "endpoints", 0, "scrapeInterval"], "10s"),
        "wrong type": _set(["spec", "endpoints", 0, "port"], 5555),
        "missing required": _drop(["spec", "selector"]),
    },
    PROMETHEUS_RULE: {
        "unknown field": _set(["spec", "groups", 0, "alerts"], []),
        "wrong type": _set(["spec", "groups", 0, "rules"], "CeleryWorkerDown"),
        "missing required": _drop(["spec", "groups", 0, "name"]),
    },
    HTTP_ROUTE: {
        "unknown field": _set(["spec", "rules", 0, "backends"], []),
        "wrong type": _set(["spec", "hostnames"], "cm.example.com"),
        "bad value": _set(["spec", "rules", 0, "matches", 0, "path", "type"], "Prefix"),
    },
    SCALED_OBJECT: {
        "unknown field": _set(["spec", "maxReplicas"], 3),
        "wrong type": _set(["spec", "maxReplicaCount"], "ten"),
        "missing required": _drop(["spec", "scaleTargetRef"]),
    },
    TRIGGER_AUTHENTICATION: {
        "unknown field": _set(["spec", "secretTargetRef", 0, "secret"], "redis"),
        "wrong type": _set(["spec", "secretTargetRef"], {"parameter": "password"}),
        "missing required": _drop(["spec", "secretTargetRef", 0, "key"]),
    },
}


def test_the_schemas_come_from_the_pinned_packages() -> None:
    manifest = json.loads((k8s_schemas.SCHEMA_PACKAGES / "package.json").read_text())
    lock = json.loads((k8s_schemas.SCHEMA_PACKAGES / "package-lock.json").read_text())
    pinned = manifest["dependencies"]

    assert k8s_schemas.extracted()["packages"] == pinned
    assert {name: lock["packages"][f"node_modules/{name}"]["version"] for name in pinned} == pinned
    assert all(version[0].isdigit() for version in pinned.values()), "pin exact versions, not ranges"


def test_every_upstream_kind_the_project_knows_has_a_strict_schema() -> None:
    schemas = k8s_schemas.upstream_schemas()

    assert set(schemas) == set(MISTAKES)
    for key, schema in schemas.items():
        assert schema["properties"]["kind"].get("enum") == [key[1]]
        assert schema["properties"]["spec"]["additionalProperties"] is False, key


@pytest.mark.parametrize("key", sorted(MISTAKES), ids="/".join)
def test_the_npm_schemas_accept_what_we_render_and_refuse_mistakes(key: Key) -> None:
    schema = k8s_schemas.upstream_schemas()[key]
    objects = rendered(key)

    assert objects, f"nothing renders a {key[1]}"
    for obj in objects:
        assert k8s_schemas.schema_errors(schema, obj) == [], obj["metadata"]["name"]
        for mistake, change in MISTAKES[key].items():
            broken = copy.deepcopy(obj)
            change(broken)
            assert k8s_schemas.schema_errors(schema, broken), f"{mistake} passed in {key[1]}"


@pytest.mark.parametrize("problem", ["missing", "stale"])
def test_a_missing_or_stale_extraction_fails_with_the_fix(problem: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "crd-schemas.json"
    if problem == "stale":
        cache.write_text(json.dumps({"inputs": "0" * 64, "packages": {}, "kinds": []}))
    monkeypatch.setattr(k8s_schemas, "SCHEMA_CACHE", cache)
    k8s_schemas.extracted.cache_clear()
    try:
        with pytest.raises(pytest.fail.Exception, match=r"scripts/setup\.d/25-k8s-schemas"):
            k8s_schemas.extracted()
    finally:
        k8s_schemas.extracted.cache_clear()


@pytest.mark.shared_crds
@pytest.mark.parametrize("key", sorted(MISTAKES), ids="/".join)
def test_the_npm_and_the_upstream_files_judge_alike(key: Key) -> None:
    """Both accept every object we render, CEL rules of the upstream file included; both refuse the mistakes."""
    npm = k8s_schemas.upstream_schemas()[key]
    upstream_files = k8s_schemas.shared_crds()
    assert key in upstream_files, f"{k8s_schemas.SHARED_CRDS} has no {key[1]} {key[0]}"
    upstream = k8s_schemas.strict_root(upstream_files[key])

    for obj in rendered(key):
        assert k8s_schemas.schema_errors(upstream, obj) == [], obj["metadata"]["name"]
        assert k8s_schemas.schema_errors(npm, obj) == [], obj["metadata"]["name"]
        for mistake, change in MISTAKES[key].items():
            broken = copy.deepcopy(obj)
            change(broken)
            judged = (bool(k8s_schemas.schema_errors(npm, broken)), bool(k8s_schemas.schema_errors(upstream, broken)))
            assert judged == (True, True), f"{mistake} in {key[1]}: refused by (npm, upstream file) = {judged}"
