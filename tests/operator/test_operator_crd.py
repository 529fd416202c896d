"""The CeleryMonitor CRD: structural, documented, defaulted like the operator, valid for the API server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import kmock
import kubernetes_validate
import pytest
from cmon_helpers import monitor_body
from kubernetes_validate import utils as validate_utils
from support.k8s_schemas import SUPPORTED_VERSIONS, apply_defaults, cel_violations, crd_schema, strict

from celery_monitor_operator import examples, naming, spec_parser, spec_reader
from celery_monitor_operator.renderers import crd


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def test_the_crd_names_the_resource_as_documented() -> None:
    definition = crd.render_crd()

    assert definition["metadata"]["name"] == "celerymonitors.celerymonitor.io"
    names = definition["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("CeleryMonitor", "celerymonitors", ["cmon"])
    version = definition["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Ready", "Reason", "URL", "Age"]


def test_the_short_name_clashes_with_no_built_in_kind() -> None:
    emulator = kmock.KubernetesEmulator()
    emulator.resources.load_bundled()
    taken = {name for resource in emulator.resources for name in emulator.resources[resource].shortnames}
    taken |= {resource.plural for resource in emulator.resources}

    assert len(taken) > 40  # the bundled list is really there: po, svc, deploy, cm, ...
    assert not set(naming.SHORT_NAMES) & taken


def test_every_field_has_a_type_and_a_description() -> None:
    schema = crd_schema(crd.render_crd(), naming.VERSION)
    for path, node in walk(schema):
        if path in (".metadata",) or path.endswith("{}"):
            continue
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert node.get("description"), f"{path} has no description"


def test_every_default_is_valid_against_its_own_field() -> None:
    schema = crd_schema(crd.render_crd(), naming.VERSION)
    defaults = [(path, node) for path, node in walk(schema) if "default" in node]

    assert len(defaults) > 20
    for _path, node in defaults:
        jsonschema.validate(node["default"], {k: v for k, v in node.items() if k != "default"})


@pytest.mark.parametrize("spec_data", [
    {"broker": {"url": "redis://r/0"}},
    {"broker": {"url": "redis://r/0"}, "auth": {}, "ingress": {"enabled": True}, "httpRoute": {}},
    *[obj["spec"] for factory in examples.EXAMPLES.values() for obj in factory() if obj["kind"] == naming.KIND],
])
def test_the_crd_defaults_and_the_operator_defaults_agree(spec_data: dict[str, Any]) -> None:
    spec_schema = crd_schema(crd.render_crd(), naming.VERSION)["properties"]["spec"]
    defaulted = apply_defaults(spec_schema, spec_data)

    assert defaulted != spec_data  # the server really adds something
    assert spec_parser.parse(monitor_body(defaulted)) == spec_parser.parse(monitor_body(spec_data))


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_the_crd_is_a_valid_custom_resource_definition(version: str) -> None:
    kubernetes_validate.validate(crd.render_crd(), version, strict=True)


def test_the_supported_versions_span_1_28_to_the_newest() -> None:
    assert SUPPORTED_VERSIONS[0] == "1.28.0"
    assert SUPPORTED_VERSIONS[-1] == validate_utils.latest_version()


def test_the_examples_are_valid_celery_monitors() -> None:
    schema = strict(crd_schema(crd.render_crd(), naming.VERSION))
    monitors = [obj for factory in examples.EXAMPLES.values() for obj in factory() if obj["kind"] == naming.KIND]

    assert len(monitors) == len(examples.EXAMPLES)
    for obj in monitors:
        jsonschema.validate(obj, schema)
        spec_parser.parse(monitor_body(obj["spec"], name=obj["metadata"]["name"]))


def test_the_schema_catches_a_misspelt_field() -> None:
    schema = strict(crd_schema(crd.render_crd(), naming.VERSION))

    with pytest.raises(jsonschema.ValidationError, match="retension"):
        jsonschema.validate(monitor_body({"broker": {"url": "redis://r/0"}, "retension": {}}), schema)


def verdicts(body: dict[str, Any]) -> tuple[bool, bool]:
    """Whether the CRD's schema (as an API server checks it), and the operator's parser, accept ``body``."""
    schema_accepts = jsonschema.Draft7Validator(strict(crd_schema(crd.render_crd(), naming.VERSION))).is_valid(body)
    try:
        spec_parser.parse(body)
    except spec_reader.SpecError:
        return schema_accepts, False
    return schema_accepts, True


@pytest.mark.parametrize(("value", "accepted"), [
    (["10.0.0.0/8", "::1/128", "fc00::/7", "192.168.1.7", "2001:db8::1", "0.0.0.0/0"], True),
    (["10.0.0.0/33"], False),
    (["256.0.0.0/8"], False),
    (["*"], False),
    (["10.0.0.0/8,10.1.0.0/16"], False),
    (["ingress-nginx"], False),
    ([""], False),
    ([], False),
])
def test_the_schema_and_the_operator_agree_on_trusted_proxies(value: list[str], accepted: bool) -> None:
    assert verdicts(monitor_body({"broker": {"url": "redis://r/0"}, "trustedProxies": value})) == (accepted, accepted)


@pytest.mark.parametrize(("database", "refused"), [
    ({"cnpgCluster": "pg"}, False),
    ({"secretKeyRef": {"name": "pg"}}, False),
    ({"url": "postgresql://pg/cm"}, False),
    ({"url": "postgresql://pg/cm", "cnpgCluster": "pg"}, True),
    ({"secretKeyRef": {"name": "pg"}, "cnpgCluster": "pg"}, True),
    ({}, True),
])
def test_the_api_server_takes_exactly_one_database_source(database: dict[str, Any], refused: bool) -> None:
    schema = crd_schema(crd.render_crd(), naming.VERSION)
    body = monitor_body({"broker": {"url": "redis://r/0"}, "database": database, "replicas": 2})

    broken = cel_violations(schema, body)

    assert any("exactly one of url, secretKeyRef or cnpgCluster" in message for message in broken) == refused, broken


ORDERS = {"name": "orders", "broker": {"secretKeyRef": {"name": "orders-mq"}}}


@pytest.mark.parametrize(("spec_data", "refused"), [
    ({"clusters": [ORDERS]}, ""),
    ({"broker": {"url": "redis://r/0"}}, ""),
    ({}, "set exactly one of spec.broker and spec.clusters"),
    ({"clusters": [ORDERS], "broker": {"url": "redis://r/0"}}, "set exactly one of spec.broker and spec.clusters"),
    ({"clusters": [ORDERS], "resultBackend": {"url": "redis://r/1"}}, "spec.resultBackend goes with spec.broker"),
    ({"clusters": [{**ORDERS, "broker": {"url": "redis://r/0", "secretKeyRef": {"name": "mq"}}}]},
     "set exactly one of url or secretKeyRef"),
])
def test_the_api_server_takes_one_broker_or_a_list_of_clusters(spec_data: dict[str, Any], refused: str) -> None:
    schema = crd_schema(crd.render_crd(), naming.VERSION)

    broken = cel_violations(schema, monitor_body(spec_data))

    assert (any(refused in message for message in broken) if refused else broken == []), broken


@pytest.mark.parametrize(("clusters", "accepted"), [
    ([ORDERS, {**ORDERS, "name": "eu_west-1"}], True),
    ([{**ORDERS, "name": "a" * 40}], True),
    ([{**ORDERS, "name": "a" * 41}], False),
    ([{**ORDERS, "name": "Orders"}], False),
    ([{**ORDERS, "name": "-orders"}], False),
    ([{"name": "orders"}], False),
    ([{"broker": ORDERS["broker"]}], False),
    ([], False),
])
def test_the_schema_and_the_operator_agree_on_clusters(clusters: list[dict[str, Any]], accepted: bool) -> None:
    assert verdicts(monitor_body({"clusters": clusters})) == (accepted, accepted)


def test_each_cluster_is_known_by_its_name_to_the_api_server() -> None:
    clusters = crd_schema(crd.render_crd(), naming.VERSION)["properties"]["spec"]["properties"]["clusters"]

    # A list-map: the API server refuses a name given twice, and server-side apply merges by name.
    assert (clusters["x-kubernetes-list-type"], clusters["x-kubernetes-list-map-keys"]) == ("map", ["name"])
    assert clusters["items"]["required"] == ["name", "broker"]
