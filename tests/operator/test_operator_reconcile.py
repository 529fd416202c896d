"""The reconcile step as a table: a spec and what the cluster holds, in; the children to apply and prune, out.

No cluster here: :func:`reconcile.desired` is a pure function. Each case reads as "given this
spec on this cluster, the operator applies these children (in this order), removes those, and
reports these reasons". The I/O that carries a plan out is tested end to end against KMock in
test_operator_e2e.py.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest
from cmon_helpers import make_monitor

from celery_monitor_operator import naming, reconcile, spec_reader

BARE = reconcile.Capabilities(service_monitors=False, prometheus_rules=False, http_routes=False)
EVERY_API = reconcile.Capabilities(service_monitors=True, prometheus_rules=True, http_routes=True)
INLINE = {"broker": {"url": "redis://redis:6379/0"}}
FROM_SECRET = {"broker": {"secretKeyRef": {"name": "mq"}}}
RULES = ({"name": "celery-monitor", "rules": [{"alert": "CeleryMonitorDown", "expr": "up == 0"}]},)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token() -> str:
    return "generated"


@dataclasses.dataclass(frozen=True)
class Case:
    spec: dict[str, Any]
    apply: list[str]  # "Kind name" for each child applied, "keep plural name" for one left as it is
    prune: list[str]  # "plural name"
    capabilities: reconcile.Capabilities = BARE
    secrets: dict[str, dict[str, str] | None] = dataclasses.field(default_factory=dict)
    alert_rules_problem: str = ""
    problems: list[str] = dataclasses.field(default_factory=list)  # reasons found before applying
    exposed: str = "ClusterInternal"
    monitoring: str = "NotRequested"
    budget: bool = False  # a PodDisruptionBudget applied; without one, "poddisruptionbudgets demo" is pruned


CORE = ["Secret demo-auth", "Secret demo-metrics", "Service demo", "PersistentVolumeClaim demo-data", "Deployment demo"]
NO_CLAIM = ["Secret demo-auth", "Secret demo-metrics", "Service demo", "Deployment demo"]
PG_SECRET = {"pg": {"url": b64("postgresql://cm:pw@pg:5432/cm")}}
ON_PG = {**INLINE, "database": {"secretKeyRef": {"name": "pg"}}, "replicas": 3}
ON_CNPG = {**INLINE, "database": {"cnpgCluster": "orders-db"}}
CASES = {
    "the least spec on a bare cluster: the monitor, and no Ingress left behind": Case(
        INLINE, apply=CORE, prune=["ingresses demo"]),
    "optional APIs served: whatever of theirs is not asked for is pruned": Case(
        INLINE, capabilities=EVERY_API, apply=CORE,
        prune=["ingresses demo", "httproutes demo", "servicemonitors demo", "prometheusrules demo"]),
    "no persistence: no claim": Case(
        {**INLINE, "persistence": {"enabled": False}},
        apply=["Secret demo-auth", "Secret demo-metrics", "Service demo", "Deployment demo"], prune=["ingresses demo"]),
    "the broker Secret exists: the Deployment reads it": Case(
        FROM_SECRET, secrets={"mq": {"url": b64("amqp://u:p@mq//")}}, apply=CORE, prune=["ingresses demo"]),
    "the broker Secret is missing: the Deployment is left as it is": Case(
        FROM_SECRET, secrets={"mq": None},
        apply=[*CORE[:-1], "keep deployments demo"],
        prune=["ingresses demo"], problems=[reconcile.SECRET_NOT_FOUND]),
    "the broker Secret lacks the key: the Deployment is left as it is": Case(
        FROM_SECRET, secrets={"mq": {"other": b64("x")}},
        apply=[*CORE[:-1], "keep deployments demo"],
        prune=["ingresses demo"], problems=[reconcile.SECRET_KEY_NOT_FOUND]),
    "an Ingress: applied, the HTTPRoute pruned": Case(
        {**INLINE, "ingress": {"enabled": True, "host": "cm.example.com"}}, capabilities=EVERY_API,
        apply=[*CORE, "Ingress demo"],
        prune=["httproutes demo", "servicemonitors demo", "prometheusrules demo"], exposed="IngressConfigured"),
    "an HTTPRoute on a cluster without the Gateway API: reported, not applied": Case(
        {**INLINE, "httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}]}},
        apply=CORE, prune=["ingresses demo"], exposed=reconcile.GATEWAY_API_MISSING),
    "an HTTPRoute with the Gateway API: applied, the Ingress pruned": Case(
        {**INLINE, "httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}]}}, capabilities=EVERY_API,
        apply=[*CORE, "HTTPRoute demo"],
        prune=["ingresses demo", "servicemonitors demo", "prometheusrules demo"], exposed="HTTPRouteConfigured"),
    "monitoring objects without the Prometheus Operator: reported, nothing applied or pruned": Case(
        {**INLINE, "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        apply=CORE, prune=["ingresses demo"], monitoring=reconcile.PROMETHEUS_OPERATOR_MISSING),
    "monitoring objects with the Prometheus Operator: both applied": Case(
        {**INLINE, "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        capabilities=EVERY_API, apply=[*CORE, "ServiceMonitor demo", "PrometheusRule demo"],
        prune=["ingresses demo", "httproutes demo"], monitoring="Configured"),
    "alert rules that cannot be read: no PrometheusRule, and the reason why": Case(
        {**INLINE, "prometheusRule": {"enabled": True}}, capabilities=EVERY_API,
        alert_rules_problem="cannot read celery_monitor.metrics.kit/alert-rules.yaml",
        apply=CORE, prune=["ingresses demo", "httproutes demo", "servicemonitors demo"],
        monitoring=reconcile.ALERT_RULES_UNAVAILABLE),
    "replicas on a database Secret: no claim, and a PodDisruptionBudget": Case(
        ON_PG, secrets=PG_SECRET, apply=[*NO_CLAIM, "PodDisruptionBudget demo"], prune=["ingresses demo"],
        budget=True),
    "one replica on a CloudNativePG cluster: no claim, and no budget (pruned)": Case(
        ON_CNPG, secrets={"orders-db-app": {"uri": b64("postgresql://app:pw@orders-db-rw:5432/app")}},
        apply=NO_CLAIM, prune=["ingresses demo"]),
    "the CloudNativePG cluster's Secret is missing: the Deployment is left as it is": Case(
        ON_CNPG, secrets={"orders-db-app": None}, apply=[*NO_CLAIM[:-1], "keep deployments demo"],
        prune=["ingresses demo"], problems=[reconcile.SECRET_NOT_FOUND]),
    "a database Secret without a PostgreSQL URL: the Deployment is left as it is": Case(
        ON_PG, secrets={"pg": {"url": b64("/data/celery-monitor.db")}},
        apply=[*NO_CLAIM[:-1], "keep deployments demo", "PodDisruptionBudget demo"],
        prune=["ingresses demo"], problems=[reconcile.UNUSABLE_DATABASE], budget=True),
}


def observed(case: Case, auth_secret: dict[str, str] | None = None) -> reconcile.Observed:
    return reconcile.Observed(capabilities=case.capabilities, auth_secret=auth_secret, secrets=case.secrets,
                              alert_groups=() if case.alert_rules_problem else RULES,
                              alert_rules_problem=case.alert_rules_problem)


def described(child: reconcile.Child) -> str:
    if child.body is None:
        return f"keep {child.ref.plural} {child.name}"
    return f"{child.body['kind']} {child.name}"


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_desired_children(case: Case) -> None:
    plan = reconcile.desired(make_monitor(case.spec), observed(case), token)

    assert [described(child) for child in plan.apply] == case.apply
    # The workers' autoscaler, pruned on every pass, has a table of its own (test_operator_autoscaling.py).
    # So is the PodDisruptionBudget whenever the spec asks for none.
    pruned = [f"{removal.ref.plural} {removal.name}" for removal in plan.prune]
    assert [name for name in pruned if name != "poddisruptionbudgets demo"
            and not name.endswith(naming.autoscaler_name("demo"))] == case.prune
    assert ("poddisruptionbudgets demo" in pruned) != case.budget
    assert [problem.reason for child in plan.apply for problem in child.problems] == case.problems
    assert plan.exposed.reason == case.exposed
    assert plan.monitoring.reason == case.monitoring


def deployment_of(plan: reconcile.Plan) -> reconcile.Child:
    (found,) = [child for child in plan.apply if child.ref.plural == "deployments"]
    return found


def checksum_of(plan: reconcile.Plan) -> str:
    body = deployment_of(plan).body
    assert body is not None
    return str(body["spec"]["template"]["metadata"]["annotations"][naming.CHECKSUM_ANNOTATION])


def test_the_deployment_is_applied_only_after_the_generated_secrets_it_reads() -> None:
    plan = reconcile.desired(make_monitor(INLINE), observed(Case(INLINE, [], [])), token)

    assert deployment_of(plan).needs == (("secrets", "demo-auth"), ("secrets", "demo-metrics"))
    assert [described(child) for child in plan.apply][:2] == ["Secret demo-auth", "Secret demo-metrics"]


def test_the_metrics_token_is_made_once_then_kept_and_rolls_the_pod_when_changed() -> None:
    case = Case(INLINE, [], [])
    kept = {"token": b64("cmon_chosen-before")}
    first = reconcile.desired(make_monitor(INLINE), reconcile.Observed(BARE, metrics_secret=kept), token)
    other = reconcile.desired(make_monitor(INLINE), reconcile.Observed(BARE, metrics_secret={"token": b64("cmon_x")}),
                              token)
    fresh = reconcile.desired(make_monitor(INLINE), observed(case), token)

    assert first.apply[1].body is not None and first.apply[1].body["data"]["token"] == b64("cmon_chosen-before")
    assert fresh.apply[1].body is not None and fresh.apply[1].body["data"]["token"] == b64("cmon_generated")
    assert checksum_of(first) != checksum_of(other)


def test_the_generated_login_is_made_once_then_kept() -> None:
    case = Case(INLINE, [], [])
    first = reconcile.desired(make_monitor(INLINE), observed(case), token).apply[0].body
    kept = {"username": b64("admin"), "password": b64("chosen-before"), "cookie-secret": b64("key")}
    later = reconcile.desired(make_monitor(INLINE), observed(case, auth_secret=kept), token).apply[0].body

    assert first is not None and later is not None
    assert first["data"]["password"] == b64("generated")
    assert later["data"] == kept


def test_a_changed_secret_value_changes_the_pod_template_checksum() -> None:
    before = Case(FROM_SECRET, [], [], secrets={"mq": {"url": b64("amqp://a//")}})
    after = Case(FROM_SECRET, [], [], secrets={"mq": {"url": b64("amqp://b//")}})
    login = {"username": b64("admin"), "password": b64("pw"), "cookie-secret": b64("key")}
    new_password = {**login, "password": b64("other")}

    def checksum(case: Case, auth: dict[str, str]) -> str:
        return checksum_of(reconcile.desired(make_monitor(FROM_SECRET), observed(case, auth), token))

    assert checksum(before, login) == checksum(before, dict(login))
    assert checksum(before, login) != checksum(after, login)
    assert checksum(before, login) != checksum(before, new_password)


def applied(*problems: str, deployment: dict[str, Any] | None = None,
            claim: dict[str, Any] | None = None) -> reconcile.Applied:
    live = {("deployments", "demo"): deployment, ("persistentvolumeclaims", "demo-data"): claim}
    return reconcile.Applied(tuple(spec_reader.Problem(reason, f"{reason} happened") for reason in problems), live)


@pytest.mark.parametrize(("spec_data", "outcome", "expected"), [
    (INLINE, applied(), {"Reconciled": "Applied", "Available": "DeploymentMissing",
                         "PersistenceBound": "ClaimMissing"}),
    (INLINE, applied("ChildConflict", "ApplyFailed", deployment={"status": {"availableReplicas": 1}},
                     claim={"status": {"phase": "Bound"}}),
     {"Reconciled": "ChildConflict", "Available": "MinimumReplicasAvailable", "PersistenceBound": "Bound"}),
    (INLINE, applied(deployment={"status": {}}, claim={"status": {"phase": "Lost"}}),
     {"Reconciled": "Applied", "Available": "NoReplicasAvailable", "PersistenceBound": "Lost"}),
    ({**INLINE, "replicas": 0, "persistence": {"enabled": False}}, applied(deployment={}),
     {"Reconciled": "Applied", "Available": "ScaledToZero", "PersistenceBound": "PersistenceDisabled"}),
    ({**ON_PG, "persistence": {"enabled": True}}, applied(deployment={"status": {"availableReplicas": 2}}),
     {"Reconciled": "Applied", "Available": "MinimumReplicasAvailable", "PersistenceBound": "SharedDatabase"}),
], ids=["nothing live yet", "first problem names the reason", "claim lost", "scaled to zero", "shared database"])
def test_conditions_after_applying(spec_data: dict[str, Any], outcome: reconcile.Applied,
                                   expected: dict[str, str]) -> None:
    resource = make_monitor(spec_data)
    plan = reconcile.desired(resource, observed(Case(spec_data, [], [])), token)

    reasons = {condition.type: condition.reason for condition in reconcile.conditions(resource, plan, outcome)}

    assert reasons == {**expected, "MonitoringConfigured": "NotRequested", "Exposed": "ClusterInternal"}


def test_the_status_says_where_to_open_the_monitor_and_how_many_pods_are_ready() -> None:
    resource = make_monitor(INLINE)

    fields = reconcile.status_fields(resource, applied(deployment={"status": {"readyReplicas": 1}}))

    assert fields == {"url": "http://demo.team.svc:5555/", "replicas": 1, "readyReplicas": 1}


@pytest.mark.parametrize(("username", "password", "key"), [
    ("ops:team", "pw", "username"), ("ops,dev", "pw", "username"), ("ops", "a,b", "password")])
def test_a_login_secret_the_monitor_cannot_read_keeps_the_deployment_and_says_which_key(
        username: str, password: str, key: str) -> None:
    data = {**INLINE, "auth": {"basic": {"secretName": "team-login"}}}
    case = Case(data, [], [], secrets={"team-login": {"username": b64(username), "password": b64(password)}})
    plan = reconcile.desired(make_monitor(data), observed(case), token)

    (problem,) = deployment_of(plan).problems
    assert deployment_of(plan).body is None
    assert problem.reason == reconcile.UNUSABLE_LOGIN
    assert "spec.auth.basic.secretName" in problem.message and repr(key) in problem.message
    assert username not in problem.message and password not in problem.message


def test_a_login_with_a_colon_in_the_password_is_fine() -> None:
    data = {**INLINE, "auth": {"basic": {"secretName": "team-login"}}}
    case = Case(data, [], [], secrets={"team-login": {"username": b64("ops"), "password": b64("a:b")}})

    assert deployment_of(reconcile.desired(make_monitor(data), observed(case), token)).body is not None


def test_a_database_secret_that_is_no_postgresql_url_is_named_but_never_quoted() -> None:
    case = Case(ON_PG, [], [], secrets={"pg": {"url": b64("sqlite-file-with-s3cret")}})
    (problem,) = deployment_of(reconcile.desired(make_monitor(ON_PG), observed(case), token)).problems

    assert problem.reason == reconcile.UNUSABLE_DATABASE
    assert "spec.database.secretKeyRef" in problem.message and "'pg'" in problem.message
    assert "s3cret" not in problem.message


def test_the_database_secret_rolls_the_pod_when_it_changes() -> None:
    other = {"pg": {"url": b64("postgresql://cm:other@pg:5432/cm")}}

    def checksum(secrets: dict[str, dict[str, str] | None]) -> str:
        return checksum_of(reconcile.desired(make_monitor(ON_PG), observed(Case(ON_PG, [], [], secrets=secrets)),
                                             token))

    assert checksum(PG_SECRET) != checksum(other)


CLUSTERS = {"clusters": [{"name": "orders", "broker": {"secretKeyRef": {"name": "orders-mq"}}},
                         {"name": "billing", "broker": {"secretKeyRef": {"name": "billing-mq", "key": "amqp"}}}]}
CLUSTER_SECRETS: dict[str, dict[str, str] | None] = {"orders-mq": {"url": b64("redis://:pw@redis:6379/0")},
                                                     "billing-mq": {"amqp": b64("amqp://b:pw@mq:5672/billing\n")}}


def test_the_brokers_of_every_cluster_are_read_and_roll_the_pod_when_one_changes() -> None:
    def checksum(secrets: dict[str, dict[str, str] | None]) -> str:
        return checksum_of(reconcile.desired(make_monitor(CLUSTERS), observed(Case(CLUSTERS, [], [], secrets=secrets)),
                                             token))

    changed = {**CLUSTER_SECRETS, "billing-mq": {"amqp": b64("amqp://b:other@mq:5672/billing")}}
    assert checksum(CLUSTER_SECRETS) == checksum(dict(CLUSTER_SECRETS))
    assert checksum(CLUSTER_SECRETS) != checksum(changed)


def test_a_missing_cluster_secret_keeps_the_deployment_and_names_the_cluster() -> None:
    case = Case(CLUSTERS, [], [], secrets={**CLUSTER_SECRETS, "billing-mq": {"url": b64("amqp://mq//")}})
    plan = reconcile.desired(make_monitor(CLUSTERS), observed(case), token)

    (problem,) = deployment_of(plan).problems
    assert deployment_of(plan).body is None
    assert problem.reason == reconcile.SECRET_KEY_NOT_FOUND
    assert "spec.clusters[1].broker.secretKeyRef" in problem.message and "'amqp'" in problem.message


@pytest.mark.parametrize("value", ["redis://:pw@r:6379/0,redis://:pw@r:6379/1", "redis://:pw@r/0 x", " redis://r/0",
                                   ""])
def test_a_cluster_secret_the_list_of_clusters_cannot_carry_is_named_but_never_quoted(value: str) -> None:
    case = Case(CLUSTERS, [], [], secrets={**CLUSTER_SECRETS, "orders-mq": {"url": b64(value)}})
    plan = reconcile.desired(make_monitor(CLUSTERS), observed(case), token)

    (problem,) = deployment_of(plan).problems
    assert deployment_of(plan).body is None
    assert problem.reason == reconcile.UNUSABLE_CLUSTER
    assert "Secret 'orders-mq' named in spec.clusters[0].broker.secretKeyRef" in problem.message
    assert "pw@" not in problem.message and "redis://" not in problem.message
