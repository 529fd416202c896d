"""The reconcile step, pure: from a CeleryMonitor and what the cluster holds, what to apply and prune.

Every handler (create, update, resume, a watched child's event) and the resync loop converge
through :func:`desired`, so there is exactly one definition of "converged", and a table of cases
tests it without a cluster.
Reading the cluster, applying and pruning belong to :mod:`.converge`; this module decides, and,
once the children are applied, turns what came back into conditions (:func:`conditions`).
Missing pieces become conditions with reasons; nothing the user can fix raises here.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from celery_monitor_operator import naming, resources, spec, spec_reader, status
from celery_monitor_operator.renderers import (
    autoscaling,
    deployment,
    disruption,
    httproute,
    ingress,
    prometheusrule,
    pvc,
    secret,
    service,
    servicemonitor,
)

SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"
UNUSABLE_LOGIN = "UnusableLogin"
UNUSABLE_DATABASE = "UnusableDatabase"
UNUSABLE_CLUSTER = "UnusableCluster"
PROMETHEUS_OPERATOR_MISSING = "PrometheusOperatorNotInstalled"
GATEWAY_API_MISSING = "GatewayAPINotInstalled"
ALERT_RULES_UNAVAILABLE = "AlertRulesUnavailable"

# A child by its resource's plural and its name, as in "deployments", "orders".
ChildKey = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """Which optional APIs the cluster serves: the Prometheus Operator's and the Gateway API's."""

    service_monitors: bool
    prometheus_rules: bool
    http_routes: bool
    scaled_objects: bool = False  # KEDA's keda.sh/v1alpha1 (with its triggerauthentications)


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the cluster held for one CeleryMonitor, read before anything changes."""

    capabilities: Capabilities
    # The base64 ``data`` of the generated auth Secret, when it exists: its login is kept.
    auth_secret: Mapping[str, str] | None = None
    # The same for the generated metrics Secret: its token is kept.
    metrics_secret: Mapping[str, str] | None = None
    # The base64 ``data`` of every Secret the spec names, by name; None for one that does not exist.
    secrets: Mapping[str, Mapping[str, str] | None] = dataclasses.field(default_factory=dict)
    # The monitor's alert rules, read only when a PrometheusRule is wanted and can be created;
    # ``alert_rules_problem`` says why they could not be read.
    alert_groups: tuple[dict[str, Any], ...] = ()
    alert_rules_problem: str = ""


@dataclasses.dataclass(frozen=True)
class Child:
    """One child, in the order it is applied.

    Without a ``body`` the live object is left as it is (``problems`` say why) and only read back
    for the status. A child that ``needs`` others is left as it is too when one of them could not
    be applied: the Deployment refers to the auth Secret, and must not run with someone else's.
    """

    ref: resources.ResourceRef
    name: str
    body: Mapping[str, Any] | None = None
    needs: tuple[ChildKey, ...] = ()
    problems: tuple[spec_reader.Problem, ...] = ()

    @property
    def key(self) -> ChildKey:
        return self.ref.plural, self.name


@dataclasses.dataclass(frozen=True)
class Removal:
    """A child the spec no longer asks for; removed only when this CeleryMonitor owns it."""

    ref: resources.ResourceRef
    name: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """The result of :func:`desired`: children to apply in order, children to prune, and the
    conditions already known before anything is applied."""

    apply: tuple[Child, ...]
    prune: tuple[Removal, ...]
    exposed: status.Condition
    monitoring: status.Condition
    autoscaling: status.Condition | None = None


@dataclasses.dataclass(frozen=True)
class Applied:
    """What applying a :class:`Plan` came to: every problem met, in order, and each child as the
    cluster holds it afterwards (None when it could not be applied or does not exist)."""

    problems: tuple[spec_reader.Problem, ...]
    live: Mapping[ChildKey, Mapping[str, Any] | None]


def _child(body: Mapping[str, Any], needs: tuple[ChildKey, ...] = ()) -> Child:
    return Child(resources.ref_for(body), body["metadata"]["name"], body, needs)


def url(resource: spec.CeleryMonitorResource) -> str:
    """Where to open the monitor: the Ingress or HTTPRoute host, or the Service inside the cluster."""
    desired = resource.spec
    prefix = desired.url_prefix if desired.url_prefix.endswith("/") else f"{desired.url_prefix}/"
    if desired.ingress.enabled and desired.ingress.host:
        scheme = "https" if desired.ingress.tls_secret_name else "http"
        return f"{scheme}://{desired.ingress.host}{prefix}"
    if desired.http_route.enabled and desired.http_route.hostnames:
        return f"http://{desired.http_route.hostnames[0]}{prefix}"
    return f"http://{naming.service_name(resource.name)}.{resource.namespace}.svc:{desired.service.port}{prefix}"


def _secret_values(resource: spec.CeleryMonitorResource, observed: Observed
                   ) -> tuple[dict[str, str], list[spec_reader.Problem]]:
    """Every user Secret value the pod reads, by "secret/key", or a problem for each one that is missing."""
    values: dict[str, str] = {}
    problems: list[spec_reader.Problem] = []
    for field, ref in resource.spec.secret_refs():
        found = observed.secrets.get(ref.name)
        if found is None:
            problems.append(spec_reader.Problem(
                SECRET_NOT_FOUND,
                f"Secret {ref.name!r} named in {field} does not exist in namespace {resource.namespace!r}"))
        elif ref.key not in found:
            problems.append(spec_reader.Problem(
                SECRET_KEY_NOT_FOUND, f"Secret {ref.name!r} named in {field} has no key {ref.key!r}"))
        else:
            values[f"{ref.name}/{ref.key}"] = found[ref.key]
    return values, list(dict.fromkeys(problems))


def _login_problems(resource: spec.CeleryMonitorResource, values: Mapping[str, str]) -> list[spec_reader.Problem]:
    """The user's basic-auth Secret must make one ``user:password`` pair of the monitor's
    --basic_auth: no ':' or ',' in the user name, no ',' in the password (never quoted back)."""
    name = resource.spec.auth.basic.secret_name
    if not resource.spec.auth.basic.enabled or not name:
        return []
    forbidden = {secret.USERNAME_KEY: (":", ","), secret.PASSWORD_KEY: (",",)}
    problems = []
    for key, characters in forbidden.items():
        try:
            value = base64.b64decode(values.get(f"{name}/{key}", ""), validate=True).decode()
        except ValueError:
            value = ""
        if any(character in value for character in characters):
            problems.append(spec_reader.Problem(UNUSABLE_LOGIN, (
                f"Secret {name!r} named in spec.auth.basic.secretName: its {key!r} may not contain "
                f"{' or '.join(repr(c) for c in characters)} (the monitor reads user:password pairs "
                "separated by commas)")))
    return problems


def _database_problems(resource: spec.CeleryMonitorResource, values: Mapping[str, str]
                       ) -> list[spec_reader.Problem]:
    """The Secret behind spec.database must hold a PostgreSQL URL: with anything else (a file path
    would be SQLite in the pod's emptyDir) each replica would keep a history of its own. Its value
    is never quoted back: it holds a password."""
    database = resource.spec.database
    ref = None if database is None else database.connection.secret_ref
    if database is None or ref is None or f"{ref.name}/{ref.key}" not in values:
        return []
    try:
        value = base64.b64decode(values[f"{ref.name}/{ref.key}"], validate=True).decode().strip()
    except ValueError:
        value = ""
    if value.lower().startswith(spec.DATABASE_SCHEMES):
        return []
    return [spec_reader.Problem(UNUSABLE_DATABASE, (
        f"Secret {ref.name!r} named in {database.field}: its key {ref.key!r} does not hold a "
        "postgresql:// URL"))]


def _cluster_problems(resource: spec.CeleryMonitorResource, values: Mapping[str, str]
                      ) -> list[spec_reader.Problem]:
    """Each Secret key behind spec.clusters must hold a URL the monitor's list of clusters can carry
    (:func:`spec.fits_cluster_list`); else the monitor would read another cluster, or refuse to start.
    Its value is never quoted back: it may hold a password."""
    problems = []
    for field, connection in resource.spec.cluster_connections():
        ref = connection.secret_ref
        if ref is None or f"{ref.name}/{ref.key}" not in values:
            continue
        try:
            value = base64.b64decode(values[f"{ref.name}/{ref.key}"], validate=True).decode()
        except ValueError:
            value = ""
        if not spec.fits_cluster_list(value):
            problems.append(spec_reader.Problem(UNUSABLE_CLUSTER, (
                f"Secret {ref.name!r} named in {field}.secretKeyRef: its key {ref.key!r} is empty or holds a "
                "',' or whitespace, which the monitor's list of clusters cannot carry")))
    return problems


def _core(resource: spec.CeleryMonitorResource, observed: Observed, token: Callable[[], str]) -> list[Child]:
    """Auth and metrics Secrets, Service, claim and Deployment: the monitor itself."""
    auth = secret.render_auth_secret(resource, observed.auth_secret, token)
    generated = [(auth, observed.auth_secret)]
    if resource.spec.auth.metrics_auth:
        generated.append((secret.render_metrics_secret(resource, observed.metrics_secret, token),
                          observed.metrics_secret))
    children = [*(_child(body) for body, _ in generated), _child(service.render_service(resource))]
    if resource.spec.uses_claim:
        children.append(_child(pvc.render_pvc(resource)))
    values, missing = _secret_values(resource, observed)
    missing += (_login_problems(resource, values) + _database_problems(resource, values)
                + _cluster_problems(resource, values))
    if missing:
        # Without every Secret the pod would crash-loop; keep what runs until they appear.
        children.append(Child(resources.DEPLOYMENTS, naming.deployment_name(resource.name),
                              problems=tuple(missing)))
        return children
    # The pod rolls when a Secret it reads changes. A generated Secret counts as the cluster will
    # hold it once applied: our keys over whatever else the live one holds.
    for body, live in generated:
        for key, value in {**(live or {}), **body["data"]}.items():
            values[f"{body['metadata']['name']}/{key}"] = value
    rendered = deployment.render_monitor_deployment(resource, deployment.secrets_checksum(values))
    children.append(_child(rendered, needs=tuple(_child(body).key for body, _ in generated)))
    return children


def _disruption(resource: spec.CeleryMonitorResource) -> tuple[list[Child], list[Removal]]:
    """The PodDisruptionBudget of replicas on a shared database; one pod, or no database: none (pruned)."""
    if disruption.wants_budget(resource):
        return [_child(disruption.render_pod_disruption_budget(resource))], []
    return [], [Removal(resources.PDBS, naming.disruption_budget_name(resource.name))]


def _exposure(resource: spec.CeleryMonitorResource, capabilities: Capabilities
              ) -> tuple[list[Child], list[Removal], status.Condition]:
    desired, name = resource.spec, naming.route_name(resource.name)
    children: list[Child] = []
    prune: list[Removal] = []
    if desired.ingress.enabled:
        children.append(_child(ingress.render_ingress(resource)))
    else:
        prune.append(Removal(resources.INGRESSES, name))
    if capabilities.http_routes and not desired.http_route.enabled:
        prune.append(Removal(resources.HTTP_ROUTES, name))
    if desired.http_route.enabled:
        if not capabilities.http_routes:
            return children, prune, status.Condition(
                status.EXPOSED, False, GATEWAY_API_MISSING,
                "spec.httpRoute is enabled but the cluster does not serve gateway.networking.k8s.io/v1 "
                "httproutes; install the Gateway API CRDs")
        children.append(_child(httproute.render_http_route(resource)))
        return children, prune, status.Condition(status.EXPOSED, True, "HTTPRouteConfigured",
                                                 f"Served at {url(resource)}")
    if desired.ingress.enabled:
        return children, prune, status.Condition(status.EXPOSED, True, "IngressConfigured",
                                                 f"Served at {url(resource)}")
    return children, prune, status.Condition(status.EXPOSED, True, "ClusterInternal",
                                             f"Reachable inside the cluster at {url(resource)}")


def _monitoring(resource: spec.CeleryMonitorResource, observed: Observed
                ) -> tuple[list[Child], list[Removal], status.Condition]:
    desired, name, capabilities = resource.spec, naming.route_name(resource.name), observed.capabilities
    children: list[Child] = []
    prune: list[Removal] = []
    missing: list[str] = []
    if desired.service_monitor.enabled:
        if capabilities.service_monitors:
            children.append(_child(servicemonitor.render_service_monitor(resource)))
        else:
            missing.append("spec.serviceMonitor")
    elif capabilities.service_monitors:
        prune.append(Removal(resources.SERVICE_MONITORS, name))
    rules_problem = ""
    if desired.prometheus_rule.enabled:
        if not capabilities.prometheus_rules:
            missing.append("spec.prometheusRule")
        elif observed.alert_rules_problem:
            rules_problem = observed.alert_rules_problem
        else:
            children.append(_child(prometheusrule.render_prometheus_rule(resource, observed.alert_groups)))
    elif capabilities.prometheus_rules:
        prune.append(Removal(resources.PROMETHEUS_RULES, name))
    if missing:
        condition = status.Condition(status.MONITORING_CONFIGURED, False, PROMETHEUS_OPERATOR_MISSING,
                                     f"{' and '.join(missing)} enabled but the cluster does not serve "
                                     "monitoring.coreos.com/v1; install the Prometheus Operator CRDs")
    elif rules_problem:
        condition = status.Condition(status.MONITORING_CONFIGURED, False, ALERT_RULES_UNAVAILABLE, rules_problem)
    elif desired.service_monitor.enabled or desired.prometheus_rule.enabled:
        condition = status.Condition(status.MONITORING_CONFIGURED, True, "Configured",
                                     "Prometheus Operator objects are in place")
    else:
        condition = status.Condition(status.MONITORING_CONFIGURED, True, "NotRequested",
                                     "Neither spec.serviceMonitor nor spec.prometheusRule is enabled")
    return children, prune, condition


def _autoscaling(resource: spec.CeleryMonitorResource, capabilities: Capabilities
                 ) -> tuple[list[Child], list[Removal], status.Condition | None]:
    """The workers' ScaledObject (with KEDA) or HPA (without); the other kind, ours, is pruned.
    The condition is reported only when spec.autoscaling is enabled."""
    settings, name = resource.spec.autoscaling, naming.autoscaler_name(resource.name)
    children: list[Child] = []
    prune: list[Removal] = [Removal(resources.HPAS, name)]
    if capabilities.scaled_objects:
        prune += [Removal(resources.SCALED_OBJECTS, name), Removal(resources.TRIGGER_AUTHENTICATIONS, name)]
    if not settings.enabled:
        return children, prune, None
    target = f"Deployment {settings.worker_deployment!r} on the backlog of {', '.join(settings.queues)}"
    if capabilities.scaled_objects:
        prune = [removal for removal in prune if removal.ref is resources.HPAS]
        if autoscaling.uses_trigger_authentication(resource):
            children.append(_child(autoscaling.render_trigger_authentication(resource)))
        else:
            prune.append(Removal(resources.TRIGGER_AUTHENTICATIONS, name))
        children.append(_child(autoscaling.render_scaled_object(resource)))
        return children, prune, status.Condition(status.AUTOSCALING, True, "ScaledObjectConfigured",
                                                 f"KEDA scales {target} ({settings.source})")
    problem = autoscaling.hpa_problem(resource)
    if problem:
        return children, prune, status.Condition(status.AUTOSCALING, False, "KEDANotInstalled", problem)
    children.append(_child(autoscaling.render_hpa(resource)))
    return children, [], status.Condition(
        status.AUTOSCALING, True, "HorizontalPodAutoscalerConfigured",
        f"An HPA scales {target} through the external metric {autoscaling.BACKLOG_METRIC} (KEDA is not "
        "installed; an external-metrics adapter must serve it)")


def desired(resource: spec.CeleryMonitorResource, observed: Observed,
            token: Callable[[], str] = secret.new_token) -> Plan:
    """The children ``resource`` asks for given what was ``observed``, and the ones to prune.

    ``token`` makes the generated password and cookie key, the first time only.
    """
    children = _core(resource, observed, token)
    budget_children, budget_prune = _disruption(resource)
    exposure_children, exposure_prune, exposed = _exposure(resource, observed.capabilities)
    monitoring_children, monitoring_prune, monitoring = _monitoring(resource, observed)
    scaling_children, scaling_prune, scaling = _autoscaling(resource, observed.capabilities)
    return Plan(
        apply=(*children, *budget_children, *exposure_children, *monitoring_children, *scaling_children),
        prune=(*budget_prune, *exposure_prune, *monitoring_prune, *scaling_prune),
        exposed=exposed,
        monitoring=monitoring,
        autoscaling=scaling,
    )


def _reconciled(problems: tuple[spec_reader.Problem, ...]) -> status.Condition:
    if not problems:
        return status.Condition(status.RECONCILED, True, "Applied", "Every child matches the spec")
    return status.Condition(status.RECONCILED, False, problems[0].reason,
                            "; ".join(problem.message for problem in problems))


def _availability(resource: spec.CeleryMonitorResource, live: Mapping[str, Any] | None) -> status.Condition:
    replicas = resource.spec.replicas
    if replicas == 0:
        return status.Condition(status.AVAILABLE, False, "ScaledToZero", "spec.replicas is 0")
    if live is None:
        return status.Condition(status.AVAILABLE, False, "DeploymentMissing", "The Deployment is not created yet")
    available = int((live.get("status") or {}).get("availableReplicas") or 0)
    if available >= 1:
        return status.Condition(status.AVAILABLE, True, "MinimumReplicasAvailable",
                                f"{available} of {replicas} pods available")
    return status.Condition(status.AVAILABLE, False, "NoReplicasAvailable", f"0 of {replicas} pods available yet")


def _persistence(resource: spec.CeleryMonitorResource, live: Mapping[str, Any] | None) -> status.Condition:
    if resource.spec.database is not None:
        return status.Condition(status.PERSISTENCE_BOUND, True, "SharedDatabase",
                                f"Task history is kept in PostgreSQL ({resource.spec.database.field}); "
                                "no claim is used")
    if not resource.spec.persistence.enabled:
        return status.Condition(status.PERSISTENCE_BOUND, True, "PersistenceDisabled",
                                "Task history is kept in an emptyDir and lost when the pod goes")
    claim = naming.pvc_name(resource.name)
    if live is None:
        return status.Condition(status.PERSISTENCE_BOUND, False, "ClaimMissing",
                                f"PersistentVolumeClaim {claim!r} is not created yet")
    phase = (live.get("status") or {}).get("phase") or "Pending"
    if phase == "Bound":
        return status.Condition(status.PERSISTENCE_BOUND, True, "Bound", f"PersistentVolumeClaim {claim!r} is bound")
    return status.Condition(status.PERSISTENCE_BOUND, False, phase,
                            f"PersistentVolumeClaim {claim!r} is {phase}, waiting for a volume")


def _live_deployment(resource: spec.CeleryMonitorResource, applied: Applied) -> Mapping[str, Any] | None:
    return applied.live.get((resources.DEPLOYMENTS.plural, naming.deployment_name(resource.name)))


def conditions(resource: spec.CeleryMonitorResource, plan: Plan, applied: Applied) -> list[status.Condition]:
    """Every condition but Ready (which :mod:`.status` sums up from these)."""
    claim = applied.live.get((resources.PVCS.plural, naming.pvc_name(resource.name)))
    return [
        _reconciled(applied.problems),
        _availability(resource, _live_deployment(resource, applied)),
        _persistence(resource, claim),
        plan.monitoring,
        plan.exposed,
        *([plan.autoscaling] if plan.autoscaling is not None else []),
    ]


def status_fields(resource: spec.CeleryMonitorResource, applied: Applied) -> dict[str, Any]:
    """The status fields beside the conditions: where to open the monitor, and its pods."""
    observed = (_live_deployment(resource, applied) or {}).get("status") or {}
    return {
        "url": url(resource),
        "replicas": resource.spec.replicas,
        "readyReplicas": int(observed.get("readyReplicas") or 0),
    }
