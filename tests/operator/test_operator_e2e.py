"""The real operator process against an emulated Kubernetes API: what a cluster user would see.

One operator (``kopf run -m celery_monitor_operator.handlers``) serves the whole module; each
test works in its own namespace. The emulator has no controllers, so where a real cluster
would bind a volume or start a pod, the test writes that status itself.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kmock_cluster import (
    GATEWAY_API_PREFIX,
    PROMETHEUS_OPERATOR,
    EmulatedCluster,
    kopf_command,
    operator_process,
)
from operator_env import Env
from support.processes import free_port

from celery_monitor_operator import alert_rules, converge, diffbase, naming, reconcile, resources, spec_parser
from celery_monitor_operator.renderers import install, prometheusrule

PEERING = "kopf.dev/v1/clusterkopfpeering"
FAST_LOOPS = {"CELERY_MONITOR_OPERATOR_RESYNC_SECONDS": "2"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("operator-e2e")
    cluster = EmulatedCluster().start()
    kubeconfig = cluster.kubeconfig(tmp / "kubeconfig")
    log = tmp / "operator.log"
    health_url = f"http://127.0.0.1:{free_port()}{install.LIVENESS_PATH}"
    # Peering on, as installed: the operator must create its peering object and take part in it.
    cluster.serve(f"{PEERING}s", "ClusterKopfPeering", namespaced=False)
    command = kopf_command(f"--peering={naming.OPERATOR_NAME}", "--priority=100", "--all-namespaces",
                           "--verbose", f"--liveness={health_url}")
    try:
        with operator_process(command, kubeconfig, log, FAST_LOOPS) as process:
            yield Env(cluster, log, health_url)
            assert process.poll() is None, f"the operator exited early:\n{log.read_text()[-3000:]}"
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _cleanup(env: Env) -> Iterator[None]:
    yield
    env.forget_monitors()


def owner_uids(obj: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences", [])]


def test_a_monitor_gets_its_children_and_becomes_ready(env: Env) -> None:
    ns, name = "e2e-ready", "orders"
    env.create_secret(ns, "broker", {"url": "redis://:pw@redis:6379/0"})
    env.create_monitor(ns, name, {"broker": {"secretKeyRef": {"name": "broker"}}, "retention": {"maxTasks": 1000}})

    deployment = env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment")
    children = [(resources.SERVICES, name), (resources.PVCS, f"{name}-data"), (resources.SECRETS, f"{name}-auth")]
    for ref, child in children:
        found = env.wait(lambda ref=ref, child=child: env.get(ref, ns, child), f"{ref.plural} {child}")
        assert owner_uids(found) == [f"uid-{ns}-{name}"]
    assert owner_uids(deployment) == [f"uid-{ns}-{name}"]
    assert "--max_tasks=1000" in env.args(ns, name)
    assert deployment["spec"]["template"]["metadata"]["annotations"][naming.CHECKSUM_ANNOTATION]

    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    not_ready = env.wait_condition(ns, name, "Ready", "False", "Pending")
    assert not_ready["observedGeneration"] == 1
    assert "orders-data" in not_ready["message"]

    # What the cluster's controllers would do: bind the claim, start the pod.
    env.api.merge_patch(resources.PVCS, ns, f"{name}-data", {"status": {"phase": "Bound"}}, subresource="status")
    env.wait_condition(ns, name, "Ready", "False", "NoReplicasAvailable")
    env.api.merge_patch(resources.DEPLOYMENTS, ns, name, {"status": {
        "replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}, subresource="status")

    env.wait_condition(ns, name, "Ready", "True", "Ready")
    status = env.status(ns, name)
    assert status["url"] == f"http://{name}.{ns}.svc:5555/"
    assert (status["readyReplicas"], status["observedGeneration"]) == (1, 1)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True", "Reconciled": "True", "Available": "True", "PersistenceBound": "True",
        "MonitoringConfigured": "True", "Exposed": "True"}


def test_spec_changes_converge(env: Env) -> None:
    ns, name = "e2e-update", "billing"
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"}, "persistence": {"enabled": False}})
    env.wait(lambda: "--max_tasks=100000" in env.args(ns, name), "the default retention")

    env.update_spec(ns, name, 2, {"ingress": {"enabled": True, "host": "cm.example.com", "pathPrefix": "/cm"}})
    ingress = env.wait(lambda: env.get(resources.INGRESSES, ns, name), "the Ingress")
    assert owner_uids(ingress) == [f"uid-{ns}-{name}"]
    env.wait(lambda: "--url_prefix=cm" in env.args(ns, name), "the new --url_prefix")
    assert "--xheaders=True" in env.args(ns, name)
    env.wait(lambda: env.status(ns, name).get("url") == "http://cm.example.com/cm/", "the Ingress URL")
    assert env.status(ns, name)["observedGeneration"] == 2

    env.update_spec(ns, name, 3, {"retention": {"maxTasks": 2000}})
    env.wait(lambda: "--max_tasks=2000" in env.args(ns, name), "the new --max_tasks")

    env.update_spec(ns, name, 4, {"ingress": {"enabled": False}})
    env.wait(lambda: env.get(resources.INGRESSES, ns, name) is None, "the Ingress to be removed")
    env.wait(lambda: env.status(ns, name).get("url") == f"http://{name}.{ns}.svc:5555/", "the in-cluster URL")
    assert "--url_prefix=cm" not in env.args(ns, name)
    assert not [arg for arg in env.args(ns, name) if arg.startswith(("--xheaders", "--trusted_proxies"))]


def test_children_changed_or_deleted_by_hand_are_put_back(env: Env) -> None:
    ns, name = "e2e-drift", "reports"
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"}})
    env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment")
    env.wait(lambda: env.get(resources.SERVICES, ns, name), "the Service")

    env.api.delete(resources.DEPLOYMENTS, ns, name)
    restored = env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment to come back")
    assert owner_uids(restored) == [f"uid-{ns}-{name}"]

    env.api.merge_patch(resources.SERVICES, ns, name, {"spec": {"ports": [{"name": "http", "port": 1234}]}})
    env.wait(lambda: env.get(resources.SERVICES, ns, name)["spec"]["ports"][0]["port"] == 5555, "the Service port back")

    env.api.delete(resources.PVCS, ns, f"{name}-data")
    env.wait(lambda: env.get(resources.PVCS, ns, f"{name}-data"), "the claim to come back")


def test_an_object_of_someone_else_is_not_taken_over(env: Env) -> None:
    ns, name = "e2e-conflict", "shop"
    env.api.create(resources.SERVICES, ns, {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": name, "namespace": ns, "uid": "uid-theirs", "resourceVersion": "1"},
        "spec": {"ports": [{"port": 80}]}})
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"}})

    conflict = env.wait_condition(ns, name, "Reconciled", "False", converge.CHILD_CONFLICT)
    assert f"Service '{name}' already exists" in conflict["message"]
    assert env.get(resources.SERVICES, ns, name)["spec"]["ports"] == [{"port": 80}]
    assert env.get(resources.DEPLOYMENTS, ns, name) is not None  # the rest still converges


def test_a_missing_broker_secret_is_reported_then_picked_up(env: Env) -> None:
    ns, name = "e2e-secret", "mailer"
    env.create_monitor(ns, name, {"broker": {"secretKeyRef": {"name": "mailer-broker"}}})

    reconciled = env.wait_condition(ns, name, "Reconciled", "False", "SecretNotFound")
    assert "'mailer-broker'" in reconciled["message"] and "spec.broker.secretKeyRef" in reconciled["message"]
    assert env.condition(ns, name, "Ready")["reason"] == "SecretNotFound"
    assert env.get(resources.DEPLOYMENTS, ns, name) is None

    env.create_secret(ns, "mailer-broker", {"url": "amqp://mailer:pw@rabbitmq//"})
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    deployment = env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment")
    checksum = deployment["spec"]["template"]["metadata"]["annotations"][naming.CHECKSUM_ANNOTATION]

    # A changed Secret rolls the pod through the checksum annotation.
    env.api.merge_patch(resources.SECRETS, ns, "mailer-broker", {"data": {"url": base64.b64encode(b"amqp://new//").decode()}})
    env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name)["spec"]["template"]["metadata"]["annotations"][
        naming.CHECKSUM_ANNOTATION] != checksum, "a new checksum after the Secret changed")


def test_monitoring_objects_wait_for_the_prometheus_operator(env: Env) -> None:
    ns, name = "e2e-monitoring", "alerts"
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"},
                                  "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                                  "prometheusRule": {"enabled": True}})

    missing = env.wait_condition(ns, name, "MonitoringConfigured", "False", "PrometheusOperatorNotInstalled")
    assert "monitoring.coreos.com" in missing["message"]
    assert env.condition(ns, name, "Reconciled")["status"] == "True"

    for resource, kind in PROMETHEUS_OPERATOR.items():
        env.cluster.serve(resource, kind)
    try:
        env.wait_condition(ns, name, "MonitoringConfigured", "True", "Configured")
        monitor = env.get(resources.SERVICE_MONITORS, ns, name)
        rule = env.get(resources.PROMETHEUS_RULES, ns, name)
        assert monitor is not None and rule is not None
        assert monitor["metadata"]["labels"]["release"] == "prom"
        matchers = prometheusrule.scope_matchers(spec_parser.parse(env.get(resources.CELERY_MONITORS, ns, name)))
        assert rule["spec"]["groups"] == prometheusrule.scope_groups(alert_rules.load_groups(), matchers)
        assert matchers == f'namespace="{ns}",job="{name}"'
        assert owner_uids(monitor) == owner_uids(rule) == [f"uid-{ns}-{name}"]
        # Prometheus reads a read-only token of its own, kept in a Secret the monitor's pod reads too.
        token_ref = monitor["spec"]["endpoints"][0]["authorization"]["credentials"]
        metrics_secret = env.get(resources.SECRETS, ns, token_ref["name"])
        assert metrics_secret is not None and token_ref["name"] != naming.auth_secret_name(name)
        assert token_ref["key"] in metrics_secret["data"]
        deployment = env.get(resources.DEPLOYMENTS, ns, name)
        assert "--metrics_auth=any" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]

        env.update_spec(ns, name, 2, {"serviceMonitor": {"enabled": False}})
        env.wait(lambda: env.get(resources.SERVICE_MONITORS, ns, name) is None, "the ServiceMonitor to be removed")
        assert env.get(resources.PROMETHEUS_RULES, ns, name) is not None
    finally:
        env.cluster.unserve(lambda key: key in PROMETHEUS_OPERATOR)


def test_an_http_route_waits_for_the_gateway_api(env: Env) -> None:
    ns, name = "e2e-gateway", "web"
    removed = env.cluster.unserve(lambda key: key.startswith(GATEWAY_API_PREFIX))
    try:
        env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"}, "httpRoute": {
            "enabled": True, "hostnames": ["web.example.com"], "parentRefs": [{"name": "public"}]}})
        missing = env.wait_condition(ns, name, "Exposed", "False", reconcile.GATEWAY_API_MISSING)
        assert "gateway.networking.k8s.io" in missing["message"]
        assert env.condition(ns, name, "Ready")["reason"] == reconcile.GATEWAY_API_MISSING
    finally:
        env.cluster.restore(removed)
    env.wait_condition(ns, name, "Exposed", "True", "HTTPRouteConfigured")
    route = env.get(resources.HTTP_ROUTES, ns, name)
    assert route is not None and route["spec"]["hostnames"] == ["web.example.com"]
    assert env.status(ns, name)["url"] == "http://web.example.com/"


def test_an_inline_password_is_refused_until_the_spec_is_fixed(env: Env) -> None:
    ns, name = "e2e-invalid", "leaky"
    env.create_monitor(ns, name, {"broker": {"url": "redis://:hunter2@redis:6379/0"}})

    refused = env.wait_condition(ns, name, "Reconciled", "False", "InlineCredentials")
    assert "secretKeyRef" in refused["message"] and "hunter2" not in refused["message"]
    assert env.condition(ns, name, "Ready")["reason"] == "InlineCredentials"
    assert env.get(resources.SECRETS, ns, f"{name}-auth") is None
    assert env.get(resources.DEPLOYMENTS, ns, name) is None

    env.create_secret(ns, "leaky-broker", {"url": "redis://:hunter2@redis:6379/0"})
    env.update_spec(ns, name, 2, {"broker": {"url": None, "secretKeyRef": {"name": "leaky-broker"}}})
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment once the spec is fixed")


def test_a_spec_the_monitor_would_refuse_is_a_condition_naming_the_field_then_the_fix_converges(env: Env) -> None:
    ns, name = "e2e-oauth", "sso"
    oauth = {"provider": "google", "clientId": "id", "clientSecretRef": {"name": "sso-oauth"}}
    env.create_secret(ns, "sso-oauth", {"client-secret": "s3cr3t-value"})
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"}, "auth": {"oauth2": oauth}})

    refused = env.wait_condition(ns, name, "Reconciled", "False", "InvalidSpec")
    assert refused["message"].startswith("spec.auth.oauth2.emailRegex: the monitor refuses --auth: ")
    assert env.condition(ns, name, "Ready")["reason"] == "InvalidSpec"
    assert env.get(resources.DEPLOYMENTS, ns, name) is None  # no pod to crash-loop

    env.update_spec(ns, name, 2, {"auth": {"oauth2": {**oauth, "emailRegex": ".*@example\\.com"}}})
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    assert "--auth=.*@example\\.com" in env.args(ns, name)


def test_no_credential_lands_in_an_annotation_a_status_or_an_event(env: Env) -> None:
    ns, name, secret_word = "e2e-leaks", "leaky", "hunter2-do-not-copy"
    env.create_monitor(ns, name, {
        "broker": {"url": f"redis://:{secret_word}@redis:6379/0"},
        "extraArgs": [f"--basic_auth=ops:{secret_word}"],
        "extraEnv": [{"name": "FLOWER_OAUTH2_SECRET", "value": secret_word}]})
    env.wait_condition(ns, name, "Reconciled", "False", "InlineCredentials")
    # kopf records what it handled once the handler is done with it (refused for good here).
    key = f"{naming.GROUP}/last-handled-configuration"
    env.wait(lambda: key in (env.get(resources.CELERY_MONITORS, ns, name) or {})["metadata"].get(
        "annotations", {}), "kopf's record of the handled spec")

    monitor = env.get(resources.CELERY_MONITORS, ns, name)
    assert monitor is not None
    # The Events the operator posted about it (one per condition change: InlineCredentials here).
    events = env.wait(lambda: env.events(ns, name), "the Event about the refused spec")
    assert [event["reason"] for event in events] == ["InlineCredentials"]
    for where in (monitor["metadata"].get("annotations"), monitor.get("status"), events):
        assert secret_word not in json.dumps(where)
    recorded = json.loads(monitor["metadata"]["annotations"][key])
    assert recorded["spec"]["broker"]["url"].startswith(diffbase.REDACTED_PREFIX)
    assert recorded["spec"]["extraArgs"][0].startswith(diffbase.REDACTED_PREFIX)

    # A change of a digested value is still a change kopf hands to the operator.
    env.create_secret(ns, "leaky-broker", {"url": f"redis://:{secret_word}@redis:6379/0"})
    env.update_spec(ns, name, 2, {"broker": {"url": None, "secretKeyRef": {"name": "leaky-broker"}},
                                  "extraArgs": [], "extraEnv": []})
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    monitor = env.get(resources.CELERY_MONITORS, ns, name)
    assert monitor is not None and secret_word not in json.dumps(monitor["metadata"].get("annotations"))


def test_a_bad_trusted_proxy_is_a_condition_with_a_reason_then_the_fix_converges(env: Env) -> None:
    ns, name = "e2e-proxies", "edge"
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"}, "ingress": {"enabled": True},
                                  "trustedProxies": ["10.244.0.0/16", "ingress-nginx"]})

    refused = env.wait_condition(ns, name, "Reconciled", "False", "InvalidSpec")
    assert "spec.trustedProxies[1]: 'ingress-nginx' is not an IP address or a network" in refused["message"]
    assert env.get(resources.DEPLOYMENTS, ns, name) is None

    env.update_spec(ns, name, 2, {"trustedProxies": ["10.244.0.0/16"]})
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    env.wait(lambda: "--trusted_proxies=10.244.0.0/16" in env.args(ns, name), "the narrowed trusted proxies")
    assert "--xheaders=True" in env.args(ns, name)


def test_deleting_a_monitor_is_not_blocked_by_the_operator(env: Env) -> None:
    ns, name = "e2e-delete", "temp"
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"}})
    env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment")

    env.api.delete(resources.CELERY_MONITORS, ns, name)

    # The operator holds no finalizer, so the emulator drops the object at once. (A real API
    # server would now garbage-collect the children through their owner references.)
    env.wait(lambda: env.get(resources.CELERY_MONITORS, ns, name) is None, "the CeleryMonitor to be gone")


def test_the_operator_serves_its_health_endpoint(env: Env) -> None:
    with urllib.request.urlopen(env.health_url, timeout=5) as response:
        assert response.status == 200


def test_the_operator_creates_its_peering_object_and_joins_it(env: Env) -> None:
    peering = env.wait(lambda: (env.get(resources.CLUSTER_PEERINGS, None, naming.OPERATOR_NAME) or {}).get("status"),
                       "the operator in its peering object")

    assert [peer["priority"] for peer in peering.values()] == [100]


def pod_spec(env: Env, ns: str, name: str) -> dict[str, Any]:
    return dict((env.get(resources.DEPLOYMENTS, ns, name) or {})["spec"]["template"]["spec"])


def test_replicas_on_a_shared_database_roll_without_a_claim_behind_a_disruption_budget(env: Env) -> None:
    ns, name = "e2e-replicas", "fleet"
    env.create_secret(ns, "fleet-db", {"url": "postgresql://cm:pg-s3cret@pg:5432/cm"})
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"},
                                  "database": {"secretKeyRef": {"name": "fleet-db"}}, "replicas": 3})

    deployment = env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment")
    budget = env.wait(lambda: env.get(resources.PDBS, ns, name), "the PodDisruptionBudget")
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    (container,) = pod_spec(env, ns, name)["containers"]
    assert {"name": "CELERY_MONITOR_DB", "valueFrom": {"secretKeyRef": {"name": "fleet-db", "key": "url"}}} \
        in container["env"]
    assert not [arg for arg in container["args"] if arg.startswith("--db") or "pg-s3cret" in arg]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert "podAntiAffinity" in pod_spec(env, ns, name)["affinity"]
    assert {"name": "data", "emptyDir": {}} in pod_spec(env, ns, name)["volumes"]
    assert (budget["spec"]["minAvailable"], owner_uids(budget)) == (1, [f"uid-{ns}-{name}"])
    assert budget["spec"]["selector"]["matchLabels"] == naming.selector_labels(name)
    assert env.get(resources.PVCS, ns, f"{name}-data") is None
    assert env.condition(ns, name, "PersistenceBound")["reason"] == "SharedDatabase"
    assert "pg-s3cret" not in json.dumps(env.get(resources.CELERY_MONITORS, ns, name))

    env.update_spec(ns, name, 2, {"replicas": 1})
    env.wait(lambda: env.get(resources.PDBS, ns, name) is None, "the PodDisruptionBudget to be removed")
    env.wait(lambda: (env.get(resources.DEPLOYMENTS, ns, name) or {})["spec"]["replicas"] == 1, "one replica")
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    assert env.get(resources.PVCS, ns, f"{name}-data") is None


def test_replicas_without_a_database_are_refused_and_the_deployment_left_as_it_is(env: Env) -> None:
    ns, name = "e2e-replicas-refused", "solo"
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"}, "persistence": {"enabled": False}})
    env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment")
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    before = env.get(resources.DEPLOYMENTS, ns, name)

    env.update_spec(ns, name, 2, {"replicas": 2})
    refused = env.wait_condition(ns, name, "Reconciled", "False", "InvalidSpec")
    assert refused["message"].startswith("spec.replicas: 2 replicas need spec.database")
    assert env.condition(ns, name, "Ready")["reason"] == "InvalidSpec"
    assert env.get(resources.DEPLOYMENTS, ns, name) == before
    assert env.get(resources.PDBS, ns, name) is None

    # A CloudNativePG cluster's application Secret makes the same spec valid.
    env.create_secret(ns, "solo-db-app", {"uri": "postgresql://app:pw@solo-db-rw:5432/app"})
    env.update_spec(ns, name, 3, {"database": {"cnpgCluster": "solo-db"}})
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    env.wait(lambda: env.get(resources.PDBS, ns, name), "the PodDisruptionBudget")
    (container,) = pod_spec(env, ns, name)["containers"]
    assert {"name": "CELERY_MONITOR_DB", "valueFrom": {"secretKeyRef": {"name": "solo-db-app", "key": "uri"}}} \
        in container["env"]
    assert (env.get(resources.DEPLOYMENTS, ns, name) or {})["spec"]["replicas"] == 2


def test_a_monitor_of_several_clusters_reads_each_url_from_its_secret_and_never_copies_it(env: Env) -> None:
    ns, name, secret_word = "e2e-clusters", "fleet", "fleet-s3cret-do-not-copy"
    orders = {"name": "orders", "broker": {"secretKeyRef": {"name": "orders-mq"}},
              "resultBackend": {"secretKeyRef": {"name": "orders-mq", "key": "results"}}}
    billing = {"name": "billing", "broker": {"secretKeyRef": {"name": "billing-mq"},
                                             "managementApi": {"secretKeyRef": {"name": "billing-mq", "key": "api"}}}}
    env.create_secret(ns, "orders-mq", {"url": f"redis://:{secret_word}@redis:6379/0",
                                        "results": f"redis://:{secret_word}@redis:6379/1"})
    env.create_secret(ns, "billing-mq", {"url": f"amqp://billing:{secret_word}@rabbitmq:5672/billing",
                                         "api": f"http://billing:{secret_word}@rabbitmq:15672/api/"})
    env.create_monitor(ns, name, {"clusters": [orders, billing, {"name": "reports",
                                                                  "broker": {"url": "redis://redis:6379/2"}}]})

    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    deployment = env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env_vars = {item["name"]: item for item in container["env"]}
    assert env_vars["CM_CLUSTER_1_BROKER_API"]["valueFrom"] == {"secretKeyRef": {"name": "billing-mq", "key": "api"}}
    assert env_vars["CELERY_MONITOR_CLUSTERS"]["value"] == (
        "orders=$(CM_CLUSTER_0_BROKER) result_backend=$(CM_CLUSTER_0_RESULT_BACKEND), "
        "billing=$(CM_CLUSTER_1_BROKER) broker_api=$(CM_CLUSTER_1_BROKER_API), reports=$(CM_CLUSTER_2_BROKER)")
    assert "CELERY_MONITOR_BROKER" not in env_vars
    monitor = env.get(resources.CELERY_MONITORS, ns, name)
    assert monitor is not None
    for where in (deployment, monitor["metadata"].get("annotations"), monitor.get("status"), env.events(ns, name)):
        assert secret_word not in json.dumps(where)

    # Editing one cluster's Secret rolls the pod through the checksum annotation.
    checksum = deployment["spec"]["template"]["metadata"]["annotations"][naming.CHECKSUM_ANNOTATION]
    env.api.merge_patch(resources.SECRETS, ns, "billing-mq", {"data": {
        "url": base64.b64encode(f"amqp://billing:{secret_word}-2@rabbitmq:5672/billing".encode()).decode()}})
    env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name)["spec"]["template"]["metadata"]["annotations"][
        naming.CHECKSUM_ANNOTATION] != checksum, "a new checksum after a cluster's Secret changed")

    # A Secret value the list of clusters cannot carry stops the rollout, named but never quoted.
    rolled = env.get(resources.DEPLOYMENTS, ns, name)
    env.api.merge_patch(resources.SECRETS, ns, "orders-mq", {"data": {
        "url": base64.b64encode(f"redis://:{secret_word}@a:6379/0,redis://b:6379/0".encode()).decode()}})
    refused = env.wait_condition(ns, name, "Reconciled", "False", "UnusableCluster")
    assert "spec.clusters[0].broker.secretKeyRef" in refused["message"] and secret_word not in refused["message"]
    assert env.get(resources.DEPLOYMENTS, ns, name)["spec"] == rolled["spec"]  # what ran keeps running
    assert secret_word not in env.log.read_text()


def test_a_bad_list_of_clusters_is_a_condition_with_a_reason_then_the_fix_converges(env: Env) -> None:
    ns, name = "e2e-bad-clusters", "fleet"
    twice = [{"name": "orders", "broker": {"url": "redis://redis:6379/0"}},
             {"name": "orders", "broker": {"url": "redis://redis:6379/1"}}]
    env.create_monitor(ns, name, {"broker": {"url": "redis://redis:6379/0"}, "clusters": twice})

    refused = env.wait_condition(ns, name, "Reconciled", "False", "InvalidSpec")
    assert "spec.clusters: give the brokers either as spec.clusters or as spec.broker" in refused["message"]
    assert "spec.clusters[1].name: 'orders' is already the name of spec.clusters[0]" in refused["message"]
    assert env.get(resources.DEPLOYMENTS, ns, name) is None

    env.update_spec(ns, name, 2, {"broker": None, "clusters": [twice[0], {**twice[1], "name": "orders-archive"}]})
    env.wait_condition(ns, name, "Reconciled", "True", "Applied")
    env.wait(lambda: env.get(resources.DEPLOYMENTS, ns, name), "the Deployment once the spec is fixed")
