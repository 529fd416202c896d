"""One pass of convergence for one CeleryMonitor: validate, render, apply, prune, read back, report.

Every handler (create, update, resume, the resync timer) runs this same function, so there
is exactly one definition of "converged". Missing pieces become conditions with reasons;
nothing the user can fix raises past this module.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from celery_monitor_operator import alert_rules, apply, discovery, kube, naming, spec, spec_parser, spec_reader, status
from celery_monitor_operator.renderers import (
    deployment,
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
APPLY_FAILED = "ApplyFailed"
CHILD_CONFLICT = "ChildConflict"
PROMETHEUS_OPERATOR_MISSING = "PrometheusOperatorNotInstalled"
GATEWAY_API_MISSING = "GatewayAPINotInstalled"
# Conditions the operator itself can change on a later attempt, once the cluster has what is missing.
RETRIED = (status.RECONCILED, status.MONITORING_CONFIGURED, status.EXPOSED)

_locks: collections.defaultdict[tuple[str, str], threading.Lock] = collections.defaultdict(threading.Lock)
_locks_guard = threading.Lock()


@dataclasses.dataclass
class Outcome:
    status: dict[str, Any]
    conditions: list[status.Condition]

    @property
    def invalid_spec(self) -> bool:
        return any(c.type == status.RECONCILED and c.reason in spec_parser.REASONS
                   for c in self.conditions)

    @property
    def needs_retry(self) -> bool:
        return not self.invalid_spec and any(c.type in RETRIED and c.status is False for c in self.conditions)

    @property
    def summary(self) -> status.Condition:
        return status.summarize(self.conditions)


def _lock_for(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks[(namespace, name)]


def _read_secret_values(api: kube.Api, monitor: spec.CeleryMonitorResource
                        ) -> tuple[dict[str, str], list[spec_reader.Problem]]:
    """Every user Secret value the pod reads, or a problem for each one that is missing."""
    values: dict[str, str] = {}
    problems: list[spec_reader.Problem] = []
    fetched: dict[str, dict[str, Any] | None] = {}
    for field, ref in monitor.spec.secret_refs():
        if ref.name not in fetched:
            fetched[ref.name] = api.get(kube.SECRETS, monitor.namespace, ref.name)
        found = fetched[ref.name]
        if found is None:
            problems.append(spec_reader.Problem(SECRET_NOT_FOUND, f"Secret {ref.name!r} named in {field} does not "
                                                                  f"exist in namespace {monitor.namespace!r}"))
        elif ref.key not in (found.get("data") or {}):
            problems.append(spec_reader.Problem(SECRET_KEY_NOT_FOUND, f"Secret {ref.name!r} named in {field} has "
                                                                      f"no key {ref.key!r}"))
        else:
            values[f"{ref.name}/{ref.key}"] = found["data"][ref.key]
    return values, list(dict.fromkeys(problems))


def _url(monitor: spec.CeleryMonitorResource) -> str:
    desired = monitor.spec
    prefix = desired.url_prefix if desired.url_prefix.endswith("/") else f"{desired.url_prefix}/"
    if desired.ingress.enabled and desired.ingress.host:
        scheme = "https" if desired.ingress.tls_secret_name else "http"
        return f"{scheme}://{desired.ingress.host}{prefix}"
    if desired.http_route.enabled and desired.http_route.hostnames:
        return f"http://{desired.http_route.hostnames[0]}{prefix}"
    return f"http://{naming.service_name(monitor.name)}.{monitor.namespace}.svc:{desired.service.port}{prefix}"


class _Pass:
    """The state of one reconcile pass: what was applied and what went wrong, per aspect."""

    def __init__(self, api: kube.Api, monitor: spec.CeleryMonitorResource) -> None:
        self.api = api
        self.monitor = monitor
        self.problems: list[spec_reader.Problem] = []
        self.live_deployment: dict[str, Any] | None = None
        self.live_claim: dict[str, Any] | None = None

    def apply(self, desired: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            return apply.apply(self.api, desired)
        except apply.NotOurs as error:
            self.problems.append(spec_reader.Problem(CHILD_CONFLICT, str(error)))
            return None
        except kube.ApiError as error:
            kind, name = desired["kind"], desired["metadata"]["name"]
            self.problems.append(spec_reader.Problem(APPLY_FAILED, f"{kind} {name!r}: {error.message or error.reason}"))
            return None

    def remove(self, ref: kube.ResourceRef, name: str) -> None:
        try:
            apply.remove(self.api, ref, self.monitor.namespace, name, self.monitor.uid)
        except kube.ApiError as error:
            self.problems.append(spec_reader.Problem(APPLY_FAILED, f"removing {ref.plural} {name!r}: {error.message}"))

    def core(self) -> None:
        """Auth Secret, Service, claim and Deployment: the monitor itself."""
        monitor = self.monitor
        existing = self.api.get(kube.SECRETS, monitor.namespace, naming.auth_secret_name(monitor.name))
        auth = self.apply(secret.render_auth_secret(monitor, (existing or {}).get("data")))
        self.apply(service.render_service(monitor))
        if monitor.spec.persistence.enabled:
            self.live_claim = self.apply(pvc.render_pvc(monitor))
        values, missing = _read_secret_values(self.api, monitor)
        self.problems.extend(missing)
        if missing or auth is None:
            # Without every Secret the pod would crash-loop; keep what runs until they appear.
            self.live_deployment = self.api.get(kube.DEPLOYMENTS, monitor.namespace,
                                                naming.deployment_name(monitor.name))
            return
        for key, value in (auth.get("data") or {}).items():
            values[f"{naming.auth_secret_name(monitor.name)}/{key}"] = value
        checksum = deployment.secrets_checksum(values)
        self.live_deployment = self.apply(deployment.render_deployment(monitor, checksum))

    def exposure(self, capabilities: discovery.Capabilities) -> status.Condition:
        monitor, name = self.monitor, naming.route_name(self.monitor.name)
        desired = monitor.spec
        if desired.ingress.enabled:
            self.apply(ingress.render_ingress(monitor))
        else:
            self.remove(kube.INGRESSES, name)
        if capabilities.http_routes and not desired.http_route.enabled:
            self.remove(kube.HTTP_ROUTES, name)
        if desired.http_route.enabled:
            if not capabilities.http_routes:
                return status.Condition(status.EXPOSED, False, GATEWAY_API_MISSING,
                                        "spec.httpRoute is enabled but the cluster does not serve "
                                        "gateway.networking.k8s.io/v1 httproutes; install the Gateway API CRDs")
            self.apply(httproute.render_http_route(monitor))
            return status.Condition(status.EXPOSED, True, "HTTPRouteConfigured", f"Served at {_url(monitor)}")
        if desired.ingress.enabled:
            return status.Condition(status.EXPOSED, True, "IngressConfigured", f"Served at {_url(monitor)}")
        return status.Condition(status.EXPOSED, True, "ClusterInternal",
                                f"Reachable inside the cluster at {_url(monitor)}")

    def monitoring(self, capabilities: discovery.Capabilities) -> status.Condition:
        monitor, name = self.monitor, naming.route_name(self.monitor.name)
        desired = monitor.spec
        missing: list[str] = []
        if desired.service_monitor.enabled:
            if capabilities.service_monitors:
                self.apply(servicemonitor.render_service_monitor(monitor))
            else:
                missing.append("spec.serviceMonitor")
        elif capabilities.service_monitors:
            self.remove(kube.SERVICE_MONITORS, name)
        rules_problem = ""
        if desired.prometheus_rule.enabled:
            if capabilities.prometheus_rules:
                try:
                    self.apply(prometheusrule.render_prometheus_rule(monitor, alert_rules.load_groups()))
                except alert_rules.AlertRulesError as error:
                    rules_problem = str(error)
            else:
                missing.append("spec.prometheusRule")
        elif capabilities.prometheus_rules:
            self.remove(kube.PROMETHEUS_RULES, name)
        if missing:
            return status.Condition(status.MONITORING_CONFIGURED, False, PROMETHEUS_OPERATOR_MISSING,
                                    f"{' and '.join(missing)} enabled but the cluster does not serve "
                                    "monitoring.coreos.com/v1; install the Prometheus Operator CRDs")
        if rules_problem:
            return status.Condition(status.MONITORING_CONFIGURED, False, "AlertRulesUnavailable", rules_problem)
        if desired.service_monitor.enabled or desired.prometheus_rule.enabled:
            return status.Condition(status.MONITORING_CONFIGURED, True, "Configured",
                                    "Prometheus Operator objects are in place")
        return status.Condition(status.MONITORING_CONFIGURED, True, "NotRequested",
                                "Neither spec.serviceMonitor nor spec.prometheusRule is enabled")

    def availability(self) -> status.Condition:
        replicas = self.monitor.spec.replicas
        if replicas == 0:
            return status.Condition(status.AVAILABLE, False, "ScaledToZero", "spec.replicas is 0")
        if self.live_deployment is None:
            return status.Condition(status.AVAILABLE, False, "DeploymentMissing",
                                    "The Deployment is not created yet")
        observed = self.live_deployment.get("status") or {}
        available = int(observed.get("availableReplicas") or 0)
        if available >= 1:
            return status.Condition(status.AVAILABLE, True, "MinimumReplicasAvailable",
                                    f"{available} of {replicas} pods available")
        return status.Condition(status.AVAILABLE, False, "NoReplicasAvailable",
                                f"0 of {replicas} pods available yet")

    def persistence(self) -> status.Condition:
        if not self.monitor.spec.persistence.enabled:
            return status.Condition(status.PERSISTENCE_BOUND, True, "PersistenceDisabled",
                                    "Task history is kept in an emptyDir and lost when the pod goes")
        claim = naming.pvc_name(self.monitor.name)
        if self.live_claim is None:
            return status.Condition(status.PERSISTENCE_BOUND, False, "ClaimMissing",
                                    f"PersistentVolumeClaim {claim!r} is not created yet")
        phase = (self.live_claim.get("status") or {}).get("phase") or "Pending"
        if phase == "Bound":
            return status.Condition(status.PERSISTENCE_BOUND, True, "Bound",
                                    f"PersistentVolumeClaim {claim!r} is bound")
        return status.Condition(status.PERSISTENCE_BOUND, False, phase,
                                f"PersistentVolumeClaim {claim!r} is {phase}, waiting for a volume")

    def reconciled(self) -> status.Condition:
        if not self.problems:
            return status.Condition(status.RECONCILED, True, "Applied",
                                    "Every child matches the spec")
        return status.Condition(status.RECONCILED, False, self.problems[0].reason,
                                "; ".join(problem.message for problem in self.problems))


def _invalid(error: spec_reader.SpecError) -> list[status.Condition]:
    return [status.Condition(status.RECONCILED, False, error.reason, str(error))]


def converge(api: kube.Api, body: Mapping[str, Any]) -> Outcome:
    """Bring the children of one CeleryMonitor in line with its spec and compute its status."""
    metadata = body.get("metadata") or {}
    generation = int(metadata.get("generation") or 0)
    previous = body.get("status") or {}
    new_status: dict[str, Any] = {"observedGeneration": generation}
    try:
        monitor = spec_parser.parse(body)
    except spec_reader.SpecError as error:
        conditions = _invalid(error)
    else:
        with _lock_for(monitor.namespace, monitor.name):
            current = _Pass(api, monitor)
            capabilities = discovery.detect(api)
            current.core()
            exposed = current.exposure(capabilities)
            monitoring = current.monitoring(capabilities)
            conditions = [current.reconciled(), current.availability(), current.persistence(), monitoring,
                          exposed]
            observed = (current.live_deployment or {}).get("status") or {}
            new_status |= {
                "url": _url(monitor),
                "replicas": monitor.spec.replicas,
                "readyReplicas": int(observed.get("readyReplicas") or 0),
            }
    new_status["conditions"] = status.render_conditions(conditions, previous.get("conditions"), generation)
    return Outcome(new_status, conditions)


def write_status(api: kube.Api, body: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """Patch the status subresource when it changed; False when the resource is gone meanwhile."""
    previous = body.get("status") or {}
    if all(previous.get(key) == value for key, value in new_status.items()):
        return True
    metadata = body["metadata"]
    try:
        api.merge_patch(kube.CELERY_MONITORS, metadata["namespace"], metadata["name"],
                        {"status": dict(new_status)}, subresource="status")
    except kube.NotFound:
        return False
    return True
