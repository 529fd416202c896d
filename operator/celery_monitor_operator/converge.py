"""One pass of convergence for one CeleryMonitor: parse, observe, decide, apply, prune, report.

The deciding is :func:`reconcile.desired`, a pure function; this module does the I/O around it:
it reads what the decision needs from the cluster, applies the children it asks for in order,
prunes the others, writes the status and posts an Event for each condition that changed
(:func:`converge_and_report`, which every handler and the resync loop call). An API error on
one child becomes a problem on the Reconciled condition and the pass goes on with the next child.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from celery_monitor_operator import (
    alert_rules,
    apply,
    discovery,
    events,
    kube,
    naming,
    option_check,
    reconcile,
    resources,
    spec,
    spec_parser,
    spec_reader,
    status,
)

APPLY_FAILED = "ApplyFailed"
CHILD_CONFLICT = "ChildConflict"

_locks: collections.defaultdict[tuple[str, str], threading.RLock] = collections.defaultdict(threading.RLock)
_locks_guard = threading.Lock()


# Outcome's field ``status`` hides the module inside the class body: name the condition type here.
Condition = status.Condition


@dataclasses.dataclass
class Outcome:
    """One pass's result: the status to write, and the conditions it was rendered from."""

    status: dict[str, Any]
    conditions: list[Condition]

    @property
    def invalid_spec(self) -> bool:
        return any(c.type == status.RECONCILED and c.reason in spec_parser.REASONS for c in self.conditions)

    @property
    def summary(self) -> Condition:
        return status.summarize(self.conditions)


def _lock_for(namespace: str, name: str) -> threading.RLock:
    with _locks_guard:
        return _locks[(namespace, name)]


def _secret_data(api: kube.Api, namespace: str, name: str) -> dict[str, str] | None:
    found = api.get(resources.SECRETS, namespace, name)
    return None if found is None else dict(found.get("data") or {})


def observe(api: kube.Api, resource: spec.CeleryMonitorResource) -> reconcile.Observed:
    """Read everything :func:`reconcile.desired` decides on."""
    capabilities = discovery.detect(api)
    named = dict.fromkeys(ref.name for _, ref in resource.spec.secret_refs())
    groups: tuple[dict[str, Any], ...] = ()
    rules_problem = ""
    if resource.spec.prometheus_rule.enabled and capabilities.prometheus_rules:
        try:
            groups = alert_rules.load_groups()
        except alert_rules.AlertRulesError as error:
            rules_problem = str(error)
    return reconcile.Observed(
        capabilities=capabilities,
        auth_secret=_secret_data(api, resource.namespace, naming.auth_secret_name(resource.name)),
        metrics_secret=(_secret_data(api, resource.namespace, naming.metrics_secret_name(resource.name))
                        if resource.spec.auth.metrics_auth else None),
        secrets={name: _secret_data(api, resource.namespace, name) for name in named},
        alert_groups=groups,
        alert_rules_problem=rules_problem,
    )


def _apply_child(api: kube.Api, body: Mapping[str, Any], problems: list[spec_reader.Problem]
                 ) -> dict[str, Any] | None:
    try:
        return apply.apply(api, body)
    except apply.NotOurs as error:
        problems.append(spec_reader.Problem(CHILD_CONFLICT, str(error)))
    except kube.ApiError as error:
        kind, name = body["kind"], body["metadata"]["name"]
        problems.append(spec_reader.Problem(APPLY_FAILED, f"{kind} {name!r}: {error.message or error.reason}"))
    return None


def carry_out(api: kube.Api, resource: spec.CeleryMonitorResource, plan: reconcile.Plan) -> reconcile.Applied:
    """Apply the plan's children in order, then prune; every failure is a problem, not an exception."""
    problems: list[spec_reader.Problem] = []
    live: dict[reconcile.ChildKey, Mapping[str, Any] | None] = {}
    failed: set[reconcile.ChildKey] = set()
    for child in plan.apply:
        problems.extend(child.problems)
        if child.body is None or failed.intersection(child.needs):
            live[child.key] = api.get(child.ref, resource.namespace, child.name)
            continue
        live[child.key] = _apply_child(api, child.body, problems)
        if live[child.key] is None:
            failed.add(child.key)
    for removal in plan.prune:
        try:
            apply.remove(api, removal.ref, resource.namespace, removal.name, resource.uid)
        except kube.ApiError as error:
            problems.append(spec_reader.Problem(
                APPLY_FAILED, f"removing {removal.ref.plural} {removal.name!r}: {error.message}"))
    return reconcile.Applied(tuple(problems), live)


def converge(api: kube.Api, body: Mapping[str, Any]) -> Outcome:
    """Bring the children of one CeleryMonitor in line with its spec and compute its status."""
    metadata = body.get("metadata") or {}
    generation = int(metadata.get("generation") or 0)
    previous = body.get("status") or {}
    new_status: dict[str, Any] = {"observedGeneration": generation}
    try:
        resource = spec_parser.parse(body)
        option_check.check(resource)
    except spec_reader.SpecError as error:
        conditions = [status.Condition(status.RECONCILED, False, error.reason, str(error))]
    else:
        # Handlers and the timer may run for the same resource at once, in kopf's thread pool.
        with _lock_for(resource.namespace, resource.name):
            plan = reconcile.desired(resource, observe(api, resource))
            applied = carry_out(api, resource, plan)
        conditions = reconcile.conditions(resource, plan, applied)
        new_status |= reconcile.status_fields(resource, applied)
    new_status["conditions"] = status.render_conditions(conditions, previous.get("conditions"), generation)
    return Outcome(new_status, conditions)


def write_status(api: kube.Api, body: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """Patch the status subresource when it changed; False when the resource is gone meanwhile."""
    previous = body.get("status") or {}
    if all(previous.get(key) == value for key, value in new_status.items()):
        return True
    metadata = body["metadata"]
    try:
        api.merge_patch(resources.CELERY_MONITORS, metadata["namespace"], metadata["name"],
                        {"status": dict(new_status)}, subresource="status")
    except kube.NotFound:
        return False
    return True


def converge_and_report(api: kube.Api, namespace: str, name: str) -> Outcome | None:
    """Converge the CeleryMonitor as the cluster holds it now, write its status, post what changed.

    It is read afresh under the resource's lock, so of two passes for it at once (a handler and
    a child's event, say) the second sees the status the first wrote and posts no Event twice.
    None when it is gone or on its way out.
    """
    with _lock_for(namespace, name):
        body = api.get(resources.CELERY_MONITORS, namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        outcome = converge(api, body)
        previous = (body.get("status") or {}).get("conditions") or []
        if write_status(api, body, outcome.status):
            events.post(api, body, events.changes(previous, outcome.status["conditions"]))
        return outcome
