"""Validate Kubernetes objects as an API server would, without one.

Built-in kinds go through kubernetes-validate in strict mode (unknown fields are errors) for
several Kubernetes versions; custom kinds through the openAPIV3Schema of their CRD: ours from
the operator's renderer, the Prometheus Operator's and Gateway API's from the official CRDs in
``../shared/k8s-crds``. Unknown fields are made errors there too, as the server would prune them
silently and a typo would go unnoticed; the CEL rules of a CRD (x-kubernetes-validations) are
evaluated with cel-python, as the server evaluates them.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import yaml

from celery_monitor_operator.renderers import crd, peering

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_CRDS = REPO_ROOT.parent / "shared" / "k8s-crds"
# The oldest version the chart supports (Chart.yaml kubeVersion), some between, the newest known.
KUBE_VERSIONS = ("1.28.0", "1.30.0", "1.33.0", kubernetes_validate.latest_version())

Obj = dict[str, Any]


def strict(schema: Obj) -> Obj:
    """A copy of ``schema`` where objects with declared properties refuse any other field."""
    schema = copy.deepcopy(schema)

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    return schema


def _schemas_of(definitions: Iterable[Obj]) -> dict[tuple[str, str], Obj]:
    found = {}
    for definition in definitions:
        spec = definition["spec"]
        for version in spec["versions"]:
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            root = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            # The server accepts these on every object, whether the schema names them or not.
            implicit = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
            root["properties"] = {**implicit, **root.get("properties", {})}
            found[key] = strict(root)
    return found


@functools.cache
def custom_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> schema, for every custom kind we know."""
    shared = [doc for path in sorted(SHARED_CRDS.glob("*.yaml"))
              for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert shared, f"no CRDs found in {SHARED_CRDS}"
    return _schemas_of([*shared, crd.render_crd(), *peering.render_peering_crds()])


def cel_violations(schema: Obj, value: Any, path: str = "") -> list[str]:
    """Messages of the x-kubernetes-validations rules ``value`` breaks, found depth first."""
    broken = []
    environment = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations", []):
        program = environment.program(environment.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(value)}):
            broken.append(f"{path or '/'}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for key, item in value.items():
            child = schema.get("properties", {}).get(key)
            if child is None and isinstance(schema.get("additionalProperties"), dict):
                child = schema["additionalProperties"]
            if child is not None:
                broken += cel_violations(child, item, f"{path}/{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            broken += cel_violations(schema["items"], item, f"{path}/{index}")
    return broken


def validate(obj: Obj) -> None:
    """Raise (with the object's kind and name) when the object would not be accepted."""
    where = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
    key = (obj["apiVersion"], obj["kind"])
    schema = custom_schemas().get(key)
    if schema is None:
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                raise AssertionError(f"{where} is invalid for Kubernetes {version}: {error}") from None
        return
    try:
        jsonschema.Draft7Validator(schema).validate(obj)
    except jsonschema.ValidationError as error:
        raise AssertionError(f"{where} does not match its CRD schema: {error.message} at "
                             f"{'/'.join(map(str, error.absolute_path))}") from None
    broken = cel_violations(schema, obj)
    assert not broken, f"{where} breaks its CRD's rules: {'; '.join(broken)}"
    # A CRD's schema says nothing about metadata: check it as the ObjectMeta of a built-in kind.
    validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]})


def validate_all(objects: Iterable[Obj]) -> int:
    """Validate each object; the number validated, so a caller can tell none were skipped."""
    count = 0
    for obj in objects:
        validate(obj)
        count += 1
    return count
