"""Every object the operator renders is valid for the API servers it supports and for upstream CRDs.

Built-in kinds go through kubernetes-validate (strict: unknown fields are errors) for every
Kubernetes minor version from 1.28 to the newest it ships; ServiceMonitor, PrometheusRule and
HTTPRoute go through the upstream CRDs' own openAPIV3Schema, made strict the same way.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from cmon_helpers import SUPPORTED_VERSIONS, crd_schema, make_monitor, shared_crd, strict

from celery_monitor_operator import alert_rules, examples, naming
from celery_monitor_operator.renderers import (
    deployment,
    httproute,
    ingress,
    install,
    prometheusrule,
    pvc,
    secret,
    service,
    servicemonitor,
)

UPSTREAM = {
    "ServiceMonitor": ("monitoring.coreos.com_servicemonitors.yaml", "v1"),
    "PrometheusRule": ("monitoring.coreos.com_prometheusrules.yaml", "v1"),
    "HTTPRoute": ("gateway.networking.k8s.io_httproutes.yaml", "v1"),
}

SPECS: dict[str, dict[str, Any]] = {
    "minimal": {"broker": {"url": "redis://redis:6379/0"}},
    "everything": {
        "broker": {"secretKeyRef": {"name": "mq"}, "managementApi": {"secretKeyRef": {"name": "mq", "key": "api"}}},
        "resultBackend": {"secretKeyRef": {"name": "redis"}},
        "imagePullSecrets": [{"name": "registry"}],
        "auth": {"basic": {"secretName": "login"}, "readOnly": True,
                 "oauth2": {"provider": "okta", "clientId": "id", "clientSecretRef": {"name": "oidc"},
                            "redirectUri": "https://cm.example.com/login", "emailRegex": ".*"}},
        "persistence": {"size": "20Gi", "storageClassName": "ssd", "accessMode": "ReadWriteMany",
                        "keepOnDelete": True},
        "retention": {"maxTasks": 1, "maxWorkers": 1, "purgeOfflineWorkers": 60},
        "service": {"type": "NodePort", "port": 80, "annotations": {"a": "b"}},
        "ingress": {"enabled": True, "className": "nginx", "host": "cm.example.com", "pathPrefix": "/cm",
                    "tls": {"secretName": "tls"}, "annotations": {"x": "y"}},
        "serviceMonitor": {"enabled": True, "interval": "10s", "scrapeTimeout": "5s", "labels": {"r": "p"}},
        "prometheusRule": {"enabled": True, "labels": {"r": "p"}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute",
                         "tolerationSeconds": 30}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}},
        "podAnnotations": {"p": "a"}, "podLabels": {"p": "l"},
        "extraArgs": ["--natural_time=true"],
        "extraEnv": [{"name": "TZ", "value": "UTC"},
                     {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    },
    "gateway": {"broker": {"url": "redis://r/0"}, "persistence": {"enabled": False}, "replicas": 3,
                "auth": {"basic": {"enabled": False}},
                "httpRoute": {"enabled": True, "hostnames": ["cm.example.com"], "pathPrefix": "/cm",
                              "parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "web"}]}},
}


def upstream_validator(schema: dict[str, Any]) -> jsonschema.Validator:
    # Not checked as a JSON Schema first: upstream patterns use Go regexp syntax that Python's
    # re rejects (inline flags mid-pattern); they are only compiled for fields we set.
    return jsonschema.Draft202012Validator(schema)


def rendered_children(spec_data: dict[str, Any]) -> list[dict[str, Any]]:
    monitor = make_monitor(spec_data)
    return [
        secret.render_auth_secret(monitor),
        service.render_service(monitor),
        pvc.render_pvc(monitor),
        deployment.render_deployment(monitor, deployment.secrets_checksum({"a/b": "c"})),
        ingress.render_ingress(monitor),
        httproute.render_http_route(monitor),
        servicemonitor.render_service_monitor(monitor),
        prometheusrule.render_prometheus_rule(monitor, alert_rules.load_groups()),
    ]


def built_in(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] not in UPSTREAM and obj["kind"] != "CustomResourceDefinition"]


def example_objects() -> list[dict[str, Any]]:
    return [obj for factory in examples.EXAMPLES.values() for obj in factory() if obj["kind"] != naming.KIND]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_rendered_built_in_children_are_valid(spec_name: str, version: str) -> None:
    for obj in built_in(rendered_children(SPECS[spec_name])):
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_the_operator_install_and_example_objects_are_valid(version: str) -> None:
    objects = install.render_install(namespace="ops", image="registry.example.com/cm:1", namespaces=["a", "b"])
    for obj in [*objects, *example_objects()]:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("kind", sorted(UPSTREAM))
def test_rendered_custom_children_match_the_upstream_crds(spec_name: str, kind: str) -> None:
    filename, version = UPSTREAM[kind]
    schema = strict(crd_schema(shared_crd(filename), version))
    (obj,) = [child for child in rendered_children(SPECS[spec_name]) if child["kind"] == kind]

    upstream_validator(schema).validate(obj)


def test_the_strict_upstream_schema_does_catch_mistakes() -> None:
    schema = strict(crd_schema(shared_crd(UPSTREAM["ServiceMonitor"][0]), "v1"))
    (monitor,) = [c for c in rendered_children(SPECS["minimal"]) if c["kind"] == "ServiceMonitor"]
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "10s"

    with pytest.raises(jsonschema.ValidationError, match="scrapeInterval"):
        upstream_validator(schema).validate(monitor)


def test_kubernetes_validate_does_catch_mistakes() -> None:
    (rendered,) = [c for c in rendered_children(SPECS["minimal"]) if c["kind"] == "Deployment"]
    rendered["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(rendered, SUPPORTED_VERSIONS[-1], strict=True)
