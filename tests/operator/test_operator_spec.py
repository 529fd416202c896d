"""Reading a CeleryMonitor spec: defaults filled in, every mistake reported with a reason."""

from __future__ import annotations

from typing import Any

import pytest
from cmon_helpers import make_monitor, monitor_body

from celery_monitor_operator import naming, spec, spec_parser, spec_reader


def problems_of(spec_data: dict[str, Any], **metadata: str) -> list[spec_reader.Problem]:
    with pytest.raises(spec_reader.SpecError) as caught:
        spec_parser.parse(monitor_body(spec_data, **metadata))
    return caught.value.problems


def test_a_broker_secret_is_all_a_spec_needs_and_the_rest_is_defaulted() -> None:
    monitor = make_monitor({"broker": {"secretKeyRef": {"name": "broker"}}})

    assert monitor.spec.broker.connection.secret_ref == spec.SecretKeyRef("broker", "url")
    assert monitor.spec.image == naming.DEFAULT_IMAGE
    assert monitor.spec.replicas == 1
    assert monitor.spec.persistence == spec.Persistence(enabled=True, size="1Gi", access_mode="ReadWriteOnce")
    assert monitor.spec.retention.max_tasks == 100_000
    assert monitor.spec.auth.basic.enabled is True
    assert not monitor.spec.ingress.enabled and not monitor.spec.service_monitor.enabled
    assert (monitor.name, monitor.namespace, monitor.generation) == ("demo", "team", 3)


@pytest.mark.parametrize("url", [
    "redis://:s3cret@redis:6379/0",
    "amqp://celery:s3cret@rabbitmq:5672//",
    "redis://redis-a:6379/0;redis://user:s3cret@redis-b:6379/0",
    "sentinel://sentinel:26379/0?password=s3cret",
])
def test_an_inline_broker_url_with_a_password_is_refused_with_a_reason(url: str) -> None:
    problems = problems_of({"broker": {"url": url}})

    assert [problem.reason for problem in problems] == [spec_parser.INLINE_CREDENTIALS]
    assert "spec.broker.secretKeyRef" in problems[0].message
    assert "s3cret" not in problems[0].message


@pytest.mark.parametrize("url", ["redis://redis:6379/0", "amqp://guest@rabbitmq:5672//", "redis://user:@redis/0"])
def test_an_inline_url_without_a_password_is_accepted(url: str) -> None:
    assert make_monitor({"broker": {"url": url}}).spec.broker.connection.url == url


def test_inline_passwords_are_refused_for_the_management_api_and_result_backend_too() -> None:
    problems = problems_of({
        "broker": {"url": "amqp://rabbitmq//", "managementApi": {"url": "http://admin:pw@rabbitmq:15672/api/"}},
        "resultBackend": {"url": "redis://:pw@redis/1"},
    })

    assert [problem.reason for problem in problems] == [spec_parser.INLINE_CREDENTIALS, spec_parser.INLINE_CREDENTIALS]
    assert "spec.broker.managementApi.url" in problems[0].message
    assert "spec.resultBackend.url" in problems[1].message


@pytest.mark.parametrize(("spec_data", "expected"), [
    ({}, "spec.broker: required"),
    ({"broker": {}}, "spec.broker: required"),
    ({"broker": {"url": "redis://r/0", "secretKeyRef": {"name": "b"}}}, "either url or secretKeyRef, not both"),
    ({"broker": {"secretKeyRef": {"key": "url"}}}, "spec.broker.secretKeyRef.name: the Secret's name is required"),
    ({"broker": {"url": "redis://r/0"}, "replicas": -1}, "spec.replicas: must be at least 0"),
    ({"broker": {"url": "redis://r/0"}, "replicas": "two"}, "spec.replicas: expected an integer"),
    ({"broker": {"url": "redis://r/0"}, "replicas": 2}, "spec.replicas: 2 replicas need spec.database"),
    ({"broker": {"url": "redis://r/0"}, "replicas": 2, "persistence": {"enabled": False}},
     "spec.replicas: 2 replicas need spec.database"),
    ({"broker": {"url": "redis://r/0"}, "database": {"cnpgCluster": "pg", "url": "postgresql://pg/cm"}},
     "spec.database: set exactly one of url, secretKeyRef or cnpgCluster"),
    ({"broker": {"url": "redis://r/0"}, "database": {}},
     "spec.database: set exactly one of url, secretKeyRef or cnpgCluster"),
    ({"broker": {"url": "redis://r/0"}, "database": {"secretKeyRef": {"key": "uri"}}},
     "spec.database.secretKeyRef.name: the Secret's name is required"),
    ({"broker": {"url": "redis://r/0"}, "database": {"url": "/data/celery-monitor.db"}},
     "spec.database.url: the shared history is a PostgreSQL URL"),
    ({"broker": {"url": "redis://r/0"}, "database": {"cnpgCluster": "Not_A_Name"}},
     "spec.database.cnpgCluster: 'Not_A_Name' is not a CloudNativePG cluster name"),
    ({"broker": {"url": "redis://r/0"}, "persistence": {"size": "lots"}}, "spec.persistence.size"),
    ({"broker": {"url": "redis://r/0"}, "persistence": {"accessMode": "ReadOnlyMany"}}, "is not one of"),
    ({"broker": {"url": "redis://r/0"}, "ingress": {"enabled": True}, "httpRoute": {"enabled": True,
      "parentRefs": [{"name": "gw"}]}}, "enable one of them, not both"),
    ({"broker": {"url": "redis://r/0"}, "httpRoute": {"enabled": True}}, "name at least one Gateway"),
    ({"broker": {"url": "redis://r/0"}, "ingress": {"pathPrefix": "monitor"}}, "must be an absolute URL path"),
    ({"broker": {"url": "redis://r/0"}, "serviceMonitor": {"interval": "soon"}}, "is not a duration"),
    ({"broker": {"url": "redis://r/0"}, "retention": {"maxTaskAge": "a week"}},
     "spec.retention.maxTaskAge: 'a week' is not a duration (e.g. 7d"),
    ({"broker": {"url": "redis://r/0"}, "retention": {"maxTaskAge": "0.5s"}},
     "spec.retention.maxTaskAge: must be at least 1 second, got '0.5s'"),
    ({"broker": {"url": "redis://r/0"}, "retention": {"maxTaskAge": 604800}},
     "spec.retention.maxTaskAge: expected a string, got 604800"),
    ({"broker": {"url": "redis://r/0"}, "auth": {"oauth2": {"provider": "google"}}}, "clientId: required"),
    ({"broker": {"url": "redis://r/0"}, "extraEnv": [{"value": "x"}]}, "spec.extraEnv[0].name: required"),
    ({"broker": {"url": "redis://r/0"}, "nodeSelector": {"disk": 1}}, "every value must be a string"),
    ({"broker": {"url": "redis://r/0"}, "trustedProxies": ["10.0.0.0/33"]},
     "spec.trustedProxies[0]: '10.0.0.0/33' is not an IP address or a network"),
    ({"broker": {"url": "redis://r/0"}, "trustedProxies": ["10.0.0.0/8", "10.1.2.3/8"]},
     "spec.trustedProxies[1]: '10.1.2.3/8' is not an IP address or a network such as 10.0.0.0/8 (with no host"),
    ({"broker": {"url": "redis://r/0"}, "trustedProxies": ["*"]}, "spec.trustedProxies[0]: '*'"),
    ({"broker": {"url": "redis://r/0"}, "trustedProxies": "10.0.0.0/8"}, "spec.trustedProxies: expected a list"),
    ({"broker": {"url": "redis://r/0"}, "trustedProxies": []}, "spec.trustedProxies: give between 1 and 64"),
])
def test_an_invalid_spec_names_the_field_and_the_fix(spec_data: dict[str, Any], expected: str) -> None:
    problems = problems_of(spec_data)

    assert problems[0].reason == spec_reader.INVALID_SPEC
    assert any(expected in problem.message for problem in problems), problems


def test_every_problem_is_reported_at_once_not_only_the_first() -> None:
    problems = problems_of({"broker": {"url": "redis://:pw@r/0"}, "replicas": "x", "retention": {"maxTasks": 0}})

    assert len(problems) == 3
    assert problems[0].reason == spec_parser.INLINE_CREDENTIALS


@pytest.mark.parametrize("name", ["1st-monitor", "Monitor", "a.b", "x" * 59])
def test_a_name_that_cannot_name_the_children_is_refused(name: str) -> None:
    problems = problems_of({"broker": {"url": "redis://r/0"}}, name=name)

    assert problems[0].reason == "InvalidName"


def test_the_url_prefix_follows_whichever_route_is_enabled() -> None:
    ingress = make_monitor({"broker": {"url": "redis://r/0"}, "ingress": {"enabled": True, "pathPrefix": "/cm/"}})
    route = make_monitor({"broker": {"url": "redis://r/0"}, "httpRoute": {
        "enabled": True, "pathPrefix": "/flower", "parentRefs": [{"name": "gw"}]}})
    disabled = make_monitor({"broker": {"url": "redis://r/0"}, "ingress": {"pathPrefix": "/cm"}})

    assert ingress.spec.url_prefix == "/cm"
    assert route.spec.url_prefix == "/flower"
    assert disabled.spec.url_prefix == "/"


def test_trusted_proxies_default_to_the_private_ranges_and_are_kept_normalised() -> None:
    default = make_monitor({"broker": {"url": "redis://r/0"}})
    narrowed = make_monitor({"broker": {"url": "redis://r/0"}, "trustedProxies": ["10.244.0.0/16", "FD00::1"]})

    assert default.spec.trusted_proxies == spec.DEFAULT_TRUSTED_PROXIES
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"} <= set(default.spec.trusted_proxies)
    assert narrowed.spec.trusted_proxies == ("10.244.0.0/16", "fd00::1/128")


def test_secret_refs_lists_every_secret_key_the_pod_reads() -> None:
    monitor = make_monitor({
        "broker": {"secretKeyRef": {"name": "mq", "key": "amqp"},
                   "managementApi": {"secretKeyRef": {"name": "mq", "key": "api"}}},
        "resultBackend": {"secretKeyRef": {"name": "redis"}},
        "auth": {"basic": {"secretName": "login"},
                 "oauth2": {"provider": "github", "clientId": "id", "clientSecretRef": {"name": "oauth"}}},
    })

    assert [ref for _, ref in monitor.spec.secret_refs()] == [
        spec.SecretKeyRef("mq", "amqp"), spec.SecretKeyRef("mq", "api"), spec.SecretKeyRef("redis", "url"),
        spec.SecretKeyRef("login", "username"), spec.SecretKeyRef("login", "password"),
        spec.SecretKeyRef("oauth", "client-secret"),
    ]


def test_a_database_url_with_a_password_is_refused_like_a_broker_url() -> None:
    problems = problems_of({"broker": {"url": "redis://r/0"}, "database": {"url": "postgresql://cm:s3cret@pg/cm"}})

    assert [problem.reason for problem in problems] == [spec_parser.INLINE_CREDENTIALS]
    assert "spec.database.secretKeyRef" in problems[0].message and "s3cret" not in problems[0].message


@pytest.mark.parametrize(("database", "ref", "field"), [
    ({"secretKeyRef": {"name": "pg"}}, spec.SecretKeyRef("pg", "url"), "spec.database.secretKeyRef"),
    ({"secretKeyRef": {"name": "pg", "key": "dsn"}}, spec.SecretKeyRef("pg", "dsn"), "spec.database.secretKeyRef"),
    ({"cnpgCluster": "orders-db"}, spec.SecretKeyRef("orders-db-app", "uri"), "spec.database.cnpgCluster"),
])
def test_a_database_secret_or_cloudnativepg_cluster_is_read_and_allows_replicas(
        database: dict[str, Any], ref: spec.SecretKeyRef, field: str) -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "database": database, "replicas": 3})

    assert monitor.spec.replicas == 3
    assert monitor.spec.database is not None and monitor.spec.database.connection.secret_ref == ref
    assert (field, ref) in monitor.spec.secret_refs()
    assert not monitor.spec.uses_claim  # persistence stays enabled by default, but no claim is used


def test_an_inline_database_url_without_a_password_is_accepted() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "database": {"url": "postgres://cm@pg:5432/cm"}})

    assert monitor.spec.database == spec.Database(spec.Connection(url="postgres://cm@pg:5432/cm"))


ORDERS = {"name": "orders", "broker": {"secretKeyRef": {"name": "orders-mq"}}}
REPORTS = {"name": "reports", "broker": {"url": "amqp://rabbitmq:5672/reports"}}


def test_a_list_of_clusters_each_with_its_broker_replaces_the_single_broker() -> None:
    monitor = make_monitor({"clusters": [
        {**ORDERS, "resultBackend": {"secretKeyRef": {"name": "orders-mq", "key": "results"}}},
        {"name": "eu_reports-2", "broker": {"url": "amqp://rabbitmq:5672/reports",
                                            "managementApi": {"secretKeyRef": {"name": "mq-api", "key": "api"}}}},
    ]})

    orders, reports = monitor.spec.clusters
    assert monitor.spec.broker is None and monitor.spec.result_backend is None
    assert (orders.name, orders.broker.connection.secret_ref) == ("orders", spec.SecretKeyRef("orders-mq", "url"))
    assert orders.result_backend == spec.Connection(secret_ref=spec.SecretKeyRef("orders-mq", "results"))
    assert (reports.name, reports.broker.connection.url) == ("eu_reports-2", "amqp://rabbitmq:5672/reports")
    assert reports.result_backend is None
    assert monitor.spec.secret_refs()[:3] == [
        ("spec.clusters[0].broker.secretKeyRef", spec.SecretKeyRef("orders-mq", "url")),
        ("spec.clusters[0].resultBackend.secretKeyRef", spec.SecretKeyRef("orders-mq", "results")),
        ("spec.clusters[1].broker.managementApi.secretKeyRef", spec.SecretKeyRef("mq-api", "api")),
    ]


@pytest.mark.parametrize(("spec_data", "expected"), [
    ({"clusters": []}, "spec.clusters: name at least one cluster"),
    ({"clusters": {"orders": ORDERS}}, "spec.clusters: expected a list of objects"),
    ({"clusters": [ORDERS], "broker": {"url": "redis://r/0"}},
     "spec.clusters: give the brokers either as spec.clusters or as spec.broker (one cluster), not both"),
    ({"clusters": [ORDERS], "resultBackend": {"url": "redis://r/1"}},
     "spec.clusters: give the brokers either as spec.clusters or as spec.resultBackend"),
    ({"clusters": [ORDERS, {**REPORTS, "name": "orders"}]},
     "spec.clusters[1].name: 'orders' is already the name of spec.clusters[0]"),
    ({"clusters": [{"broker": {"url": "redis://r/0"}}]}, "spec.clusters[0].name: required"),
    ({"clusters": [{**ORDERS, "name": "Orders"}]}, "spec.clusters[0].name: 'Orders' is not a cluster name"),
    ({"clusters": [{**ORDERS, "name": "orders-"}]}, "spec.clusters[0].name: 'orders-' is not a cluster name"),
    ({"clusters": [{**ORDERS, "name": "o" * 41}]}, "is not a cluster name"),
    ({"clusters": [{"name": "orders"}]}, "spec.clusters[0].broker: required (url or secretKeyRef)"),
    ({"clusters": [{"name": "orders", "broker": {"secretKeyRef": {"key": "url"}}}]},
     "spec.clusters[0].broker.secretKeyRef.name: the Secret's name is required"),
    ({"clusters": [ORDERS, {**REPORTS, "resultBackend": {"url": "redis://r/1", "secretKeyRef": {"name": "r"}}}]},
     "spec.clusters[1].resultBackend: set either url or secretKeyRef, not both"),
    ({"clusters": [{"name": "a", "broker": {"url": "redis://r/0,redis://r/1"}}]},
     "spec.clusters[0].broker.url: a URL in spec.clusters may not contain ',' or whitespace"),
    ({"clusters": [{"name": "a", "broker": {"url": "redis://r/0", "managementApi": {"url": "http://m /api/"}}}]},
     "spec.clusters[0].broker.managementApi.url: a URL in spec.clusters may not contain"),
])
def test_an_invalid_list_of_clusters_names_the_field_and_the_fix(spec_data: dict[str, Any], expected: str) -> None:
    problems = problems_of(spec_data)

    assert problems[0].reason == spec_reader.INVALID_SPEC
    assert any(expected in problem.message for problem in problems), problems


@pytest.mark.parametrize("name", ["a", "0", "prod", "eu_west-1", "a" * 40])
def test_every_name_the_monitor_takes_is_a_cluster_name(name: str) -> None:
    assert make_monitor({"clusters": [{**ORDERS, "name": name}]}).spec.clusters[0].name == name


def test_a_password_in_a_clusters_inline_url_is_refused_and_never_quoted() -> None:
    problems = problems_of({"clusters": [ORDERS, {"name": "b", "broker": {"url": "redis://:hunter2@r:6379/0"}}]})

    assert problems[0].reason == spec_parser.INLINE_CREDENTIALS
    assert "spec.clusters[1].broker.url" in problems[0].message and "secretKeyRef" in problems[0].message
    assert "hunter2" not in problems[0].message


@pytest.mark.parametrize(("value", "fits"), [
    ("redis://:p@r:6379/0", True), ("redis://r/0\n", True), ("amqp://u:p@mq:5672/a;amqp://u:p@mq2:5672/a", True),
    ("", False), ("\n", False), (" redis://r/0", False), ("redis://r/0 x", False), ("redis://a,b/0", False),
    ("redis://r/0\tb", False)])
def test_a_url_fits_the_monitors_list_of_clusters_without_a_comma_or_whitespace_inside(value: str, fits: bool) -> None:
    assert spec.fits_cluster_list(value) is fits
