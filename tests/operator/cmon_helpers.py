"""Helpers for the operator tests: CeleryMonitor objects built from a spec, and schema helpers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as validate_utils

from celery_monitor_operator import naming, spec

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_CRDS = REPO_ROOT.parent / "shared" / "k8s-crds"
# Every Kubernetes minor version kubernetes-validate ships schemas for, from 1.28 on.
SUPPORTED_VERSIONS = sorted({v for v in validate_utils.all_versions() if tuple(map(int, v.split(".")[:2])) >= (1, 28)},
                            key=lambda v: tuple(map(int, v.split("."))))


def monitor_body(spec_data: dict[str, Any], name: str = "demo", namespace: str = "team",
                 uid: str = "0b6f6a8e-1111-4c3a-9c39-6b1f1b5c0d01") -> dict[str, Any]:
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 3},
        "spec": copy.deepcopy(spec_data),
    }


def make_monitor(spec_data: dict[str, Any] | None = None, **metadata: str) -> spec.Monitor:
    data = {"broker": {"secretKeyRef": {"name": "broker"}}} if spec_data is None else spec_data
    return spec.parse(monitor_body(data, **metadata))


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI schema that refuses unknown fields, as a typo check (the API server prunes them)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (schema.get("type") == "object" and "properties" in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in schema):
        result["additionalProperties"] = False
    return result


def crd_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            return served["schema"]["openAPIV3Schema"]
    raise LookupError(f"{crd['metadata']['name']} has no version {version}")


def shared_crd(filename: str) -> dict[str, Any]:
    path = SHARED_CRDS / filename
    if not path.exists():
        pytest.skip(f"upstream CRD {path} is not present next to the repository")
    return yaml.safe_load(path.read_text())
