"""Validate Kubernetes objects as an API server would, without one.

Built-in kinds go through kubernetes-validate in strict mode (unknown fields are errors) for
several Kubernetes versions. Custom kinds go through the openAPIV3Schema of their CRD: ours from
the operator's renderer; the Prometheus Operator's, Gateway API's and KEDA's from the npm packages
of ``tests/k8s-schemas`` (generated from the upstream CRDs; scripts/setup.d/25-k8s-schemas installs
them and extracts their schemas as JSON). Unknown fields are made errors there too, as the server
would prune them silently and a typo would go unnoticed; the CEL rules of a CRD
(x-kubernetes-validations) are evaluated with cel-python, as the server evaluates them.

The npm packages drop the x-kubernetes-* keys of the upstream CRDs, CEL rules among them, so the
upstream kinds are checked without CEL here. The upstream CRD files in ``../shared/k8s-crds``, when
a checkout has them beside it, serve only to cross-check these schemas (tests/operator).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as validate_utils

from celery_monitor_operator.renderers import crd, peering

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PACKAGES = REPO_ROOT / "tests" / "k8s-schemas"
SCHEMA_CACHE = SCHEMA_PACKAGES / "cache" / "crd-schemas.json"
SETUP_STEP = "scripts/setup.d/25-k8s-schemas"
SHARED_CRDS = REPO_ROOT.parent / "shared" / "k8s-crds"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(map(int, version.split(".")))


# Every Kubernetes minor version kubernetes-validate ships schemas for, from 1.28 (the chart's
# kubeVersion) on; and a sample of them for the slower checks of whole charts and examples.
SUPPORTED_VERSIONS = sorted((v for v in validate_utils.all_versions() if _version_key(v)[:2] >= (1, 28)),
                            key=_version_key)
KUBE_VERSIONS = ("1.28.0", "1.30.0", "1.33.0", validate_utils.latest_version())

Obj = dict[str, Any]
Key = tuple[str, str]  # (apiVersion, kind)
# The server accepts these on every object, whether the schema names them or not; metadata is
# checked apart, as the ObjectMeta of a built-in kind.
IMPLICIT = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


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


def crd_schema(definition: Obj, version: str) -> Obj:
    """The openAPIV3Schema of one version of a CustomResourceDefinition."""
    for served in definition["spec"]["versions"]:
        if served["name"] == version:
            return served["schema"]["openAPIV3Schema"]
    raise LookupError(f"{definition['metadata']['name']} has no version {version}")


def strict_root(schema: Obj) -> Obj:
    """The strict schema of a whole object; its metadata (a $ref in the npm schemas) is checked apart."""
    root = copy.deepcopy(schema)
    root["properties"] = {**IMPLICIT, **root.get("properties", {}), "metadata": IMPLICIT["metadata"]}
    return strict(root)


def schemas_of(definitions: Iterable[Obj]) -> dict[Key, Obj]:
    """(apiVersion, kind) -> strict schema, for every version of the given CRDs."""
    found = {}
    for definition in definitions:
        spec = definition["spec"]
        for version in spec["versions"]:
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            found[key] = strict_root(version["schema"]["openAPIV3Schema"])
    return found


def _inputs_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package-lock.json", "extract-schemas.cjs"):
        digest.update((SCHEMA_PACKAGES / name).read_bytes())
    return digest.hexdigest()


@functools.cache
def extracted() -> Obj:
    """The cache the set-up step writes: package versions and each upstream kind's schema.

    Fails the test (never skips it) when the cache is missing or was made from other packages.
    """
    how = f"run scripts/bootstrap (its step {SETUP_STEP} installs tests/k8s-schemas and extracts the schemas)"
    if not SCHEMA_CACHE.is_file():
        pytest.fail(f"upstream CRD schemas are missing at {SCHEMA_CACHE}: {how}", pytrace=False)
    data: Obj = json.loads(SCHEMA_CACHE.read_text())
    if data.get("inputs") != _inputs_digest():
        pytest.fail(f"{SCHEMA_CACHE} was extracted from other packages than the lock file names: {how}",
                    pytrace=False)
    return data


def upstream_schemas() -> dict[Key, Obj]:
    """(apiVersion, kind) -> strict schema, for the upstream kinds of the npm packages."""
    return {(item["apiVersion"], item["kind"]): strict_root(item["schema"]) for item in extracted()["kinds"]}


@functools.cache
def custom_schemas() -> dict[Key, Obj]:
    """(apiVersion, kind) -> strict schema, for every custom kind we know."""
    return {**upstream_schemas(), **schemas_of([crd.render_crd(), *peering.render_peering_crds()])}


def shared_crds() -> dict[Key, Obj]:
    """(apiVersion, kind) -> the raw upstream CRD schema from ../shared/k8s-crds; empty without it."""
    definitions = [doc for path in sorted(SHARED_CRDS.glob("*.yaml"))
                   for doc in yaml.safe_load_all(path.read_text()) if doc]
    return {(f"{d['spec']['group']}/{v['name']}", d["spec"]["names"]["kind"]): v["schema"]["openAPIV3Schema"]
            for d in definitions for v in d["spec"]["versions"]}


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


def apply_defaults(schema: Obj, value: Any) -> Any:
    """What the API server does with a CRD's defaults (structural defaulting) before it validates."""
    if isinstance(value, dict) and isinstance(schema, dict):
        result = dict(value)
        for name, child in schema.get("properties", {}).items():
            if name not in result and "default" in child:
                result[name] = copy.deepcopy(child["default"])
            if name in result:
                result[name] = apply_defaults(child, result[name])
        return result
    if isinstance(value, list) and isinstance(schema, dict) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def schema_errors(schema: Obj, obj: Obj) -> list[str]:
    """What a strict schema and its CEL rules find wrong with ``obj``: messages with their paths.

    In the API server's order: defaults filled in, then the schema, then the CEL rules (which
    may rely on both). Not checked as a JSON Schema first: upstream patterns use Go regexp
    syntax that Python's re may reject; a pattern is compiled only for the fields an object sets.
    """
    defaulted = apply_defaults(schema, obj)
    errors = [f"{error.message} at /{'/'.join(map(str, error.absolute_path))}"
              for error in jsonschema.Draft7Validator(schema).iter_errors(defaulted)]
    return errors or cel_violations(schema, defaulted)


def validate(obj: Obj) -> None:
    """Raise (with the object's kind and name) when the object would not be accepted."""
    where = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
    schema = custom_schemas().get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                raise AssertionError(f"{where} is invalid for Kubernetes {version}: {error}") from None
        return
    errors = schema_errors(schema, obj)
    assert not errors, f"{where} does not match its CRD schema: {'; '.join(errors)}"
    # A CRD's schema says nothing about metadata: check it as the ObjectMeta of a built-in kind.
    validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]})


def validate_all(objects: Iterable[Obj]) -> int:
    """Validate each object; the number validated, so a caller can tell none were skipped."""
    count = 0
    for obj in objects:
        validate(obj)
        count += 1
    return count
