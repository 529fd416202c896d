"""Every object the operator renders is valid for the API servers it supports and for upstream CRDs.

Built-in kinds go through kubernetes-validate (strict: unknown fields are errors) for every
Kubernetes minor version from 1.28 to the newest it ships; ServiceMonitor, PrometheusRule,
HTTPRoute and KEDA's ScaledObject and TriggerAuthentication go through the upstream CRDs'
openAPIV3Schema (from the npm packages of tests/k8s-schemas), made strict the same way.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from cmon_helpers import SPECS, rendered_children
from support import k8s_schemas
from support.k8s_schemas import SUPPORTED_VERSIONS

from celery_monitor_operator import events, examples, naming
from celery_monitor_operator.renderers import install

UPSTREAM = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
}
# Rendered only for the specs that ask for them (spec.autoscaling).
OPTIONAL = {"ScaledObject", "TriggerAuthentication"}


def built_in(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] not in UPSTREAM and obj["kind"] != "CustomResourceDefinition"]


def example_objects() -> list[dict[str, Any]]:
    return [obj for factory in examples.EXAMPLES.values() for obj in factory() if obj["kind"] != naming.KIND]


def upstream_schema(kind: str) -> dict[str, Any]:
    return k8s_schemas.upstream_schemas()[(UPSTREAM[kind], kind)]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_rendered_built_in_children_are_valid(spec_name: str, version: str) -> None:
    for obj in built_in(rendered_children(SPECS[spec_name])):
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_the_operator_install_and_example_objects_are_valid(version: str) -> None:
    objects = install.render_install(namespace="ops", image="registry.example.com/cm:1", namespaces=["a", "b"])
    for obj in [*objects, *example_objects()]:
        if (obj["apiVersion"], obj["kind"]) in k8s_schemas.custom_schemas():
            assert k8s_schemas.schema_errors(k8s_schemas.custom_schemas()[(obj["apiVersion"], obj["kind"])], obj) == []
        else:
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("kind", sorted(UPSTREAM))
def test_rendered_custom_children_match_the_upstream_crds(spec_name: str, kind: str) -> None:
    objects = [child for child in rendered_children(SPECS[spec_name]) if child["kind"] == kind]

    assert len(objects) == 1 or (kind in OPTIONAL and not objects)
    for obj in objects:
        assert obj["apiVersion"] == UPSTREAM[kind]
        assert k8s_schemas.schema_errors(upstream_schema(kind), obj) == []


def test_the_strict_upstream_schema_does_catch_mistakes() -> None:
    (monitor,) = [c for c in rendered_children(SPECS["minimal"]) if c["kind"] == "ServiceMonitor"]
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "10s"
    monitor["spec"]["endpoints"][0]["port"] = 5555

    errors = k8s_schemas.schema_errors(upstream_schema("ServiceMonitor"), monitor)

    assert any("'scrapeInterval' was unexpected" in error for error in errors), errors
    assert any("5555 is not of type 'string' at /spec/endpoints/0/port" in error for error in errors), errors


def test_kubernetes_validate_does_catch_mistakes() -> None:
    (rendered,) = [c for c in rendered_children(SPECS["minimal"]) if c["kind"] == "Deployment"]
    rendered["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(rendered, SUPPORTED_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_the_events_the_operator_posts_are_valid(version: str) -> None:
    body = {"metadata": {"name": "orders", "namespace": "shop", "uid": "0b6f6a8e-1111-4c3a-9c39-6b1f1b5c0d01"}}
    for event in (events.Event(events.NORMAL, "Ready", "ok"), events.Event(events.WARNING, "InvalidSpec", "x" * 2000)):
        kubernetes_validate.validate(events.render(body, event, "2026-01-01T00:00:00Z"), version, strict=True)
