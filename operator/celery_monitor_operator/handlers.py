"""kopf handlers: thin wiring from cluster events to :func:`converge.converge`.

Run with ``celery-monitor-operator`` or ``kopf run -m celery_monitor_operator.handlers``.
Resume, create and update share one handler; a timer re-converges every resource
periodically, which puts back children changed or deleted by hand and notices Secrets,
CRDs and pods that appeared since.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from celery_monitor_operator import converge, diffbase, kube, naming, resources, spec_parser, spec_reader, worker_costs

RESYNC_SECONDS = float(os.environ.get("CELERY_MONITOR_OPERATOR_RESYNC_SECONDS", "30"))
RETRY_SECONDS = float(os.environ.get("CELERY_MONITOR_OPERATOR_RETRY_SECONDS", "30"))
RESOURCE = (naming.GROUP, naming.VERSION, naming.PLURAL)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Once, before kopf watches anything: where kopf keeps its state, and the cluster client.

    The client goes into kopf's ``memo``, which every handler below receives: they all reach the
    cluster through this one :class:`kube.Api`.
    """
    # Progress and the last handled spec live in annotations under our own group, so the
    # status stays exactly what the CRD's schema describes.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=naming.GROUP)
    # Values that may be credentials are kept there only as digests (see diffbase).
    settings.persistence.diffbase_storage = diffbase.RedactingDiffBaseStorage(
        prefix=naming.GROUP, key="last-handled-configuration")
    # The resync timer makes kopf hold a finalizer, so it can stop the timer before the object
    # goes; name it after our group so `kubectl get -o yaml` says whose it is.
    settings.persistence.finalizer = f"{naming.GROUP}/operator"
    settings.posting.level = logging.WARNING
    if not settings.peering.clusterwide:
        # Watching named namespaces, the operator has Roles there and no ClusterRole: kopf resolves
        # the CRD once through API discovery (open to every account) and takes the namespaces as
        # given, instead of listing namespaces and watching CRDs, which it may not.
        settings.scanning.disabled = True
    memo.api = kube.Api.from_environment()
    if not settings.peering.standalone and settings.peering.clusterwide:
        _ensure_cluster_peering(memo.api, settings.peering.name, logger)


def _ensure_cluster_peering(api: kube.Api, name: str, logger: kopf.Logger) -> None:
    """kopf keeps its peers in an existing object; create it so a fresh install needs no extra step."""
    try:
        if api.get(resources.CLUSTER_PEERINGS, None, name) is None:
            api.create(resources.CLUSTER_PEERINGS, None, {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
                                                     "metadata": {"name": name}})
    except kube.Conflict:
        pass
    except kube.ApiError as error:
        logger.warning("Cannot prepare the peering object %r: %s", name, error)


def _converge(body: kopf.Body, memo: kopf.Memo) -> converge.Outcome:
    """One pass for one resource, status included: what both the event handlers and the timer do."""
    api: kube.Api = memo.api
    raw = dict(body)
    outcome = converge.converge(api, raw)
    converge.write_status(api, raw, outcome.status)
    return outcome


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
def reconcile_monitor(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A CeleryMonitor was created or changed, or the operator (re)started and found it.

    The outcome is told to kopf in its own terms: an invalid spec is a permanent error (kopf
    handles it again only when the spec changes); what can mend without a new spec (a missing
    Secret or CRD, a failed apply) a temporary one (kopf calls again after ``RETRY_SECONDS``).
    """
    outcome = _converge(body, memo)
    summary = outcome.summary
    if outcome.invalid_spec:
        # Retrying cannot help until the spec changes, which calls this handler again.
        raise kopf.PermanentError(f"{summary.reason}: {summary.message}")
    if outcome.needs_retry:
        raise kopf.TemporaryError(f"{summary.reason}: {summary.message}", delay=RETRY_SECONDS)


@kopf.timer(*RESOURCE, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def resync_monitor(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Every ``RESYNC_SECONDS``: converge again, whatever changed meanwhile; never raises for kopf to retry."""
    outcome = _converge(body, memo)
    summary = outcome.summary
    if summary.status is not True:
        logger.info("Not ready: %s: %s", summary.reason, summary.message)


COST_SECONDS = float(os.environ.get("CELERY_MONITOR_OPERATOR_DELETION_COST_SECONDS", "10"))


def _keeps_deletion_costs(spec: kopf.Spec, **_: Any) -> bool:
    autoscaling = spec.get("autoscaling") or {}
    return bool(autoscaling.get("enabled") and (autoscaling.get("podDeletionCost") or {}).get("enabled"))


@kopf.timer(*RESOURCE, interval=COST_SECONDS, initial_delay=COST_SECONDS, when=_keeps_deletion_costs)
def keep_deletion_costs(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """spec.autoscaling.podDeletionCost: every ``COST_SECONDS``, each worker pod's deletion cost
    follows its running tasks (an invalid spec is the reconcile handler's to report).

    ``memo`` is this resource's own: a problem is logged (and posted as an Event) when it starts or
    changes, and once more when the costs are updated again, not on every pass while it lasts.
    """
    try:
        resource = spec_parser.parse(dict(body))
    except spec_reader.SpecError:
        return
    try:
        patched = worker_costs.sync(memo.api, resource)
    except (worker_costs.Unavailable, kube.ApiError) as error:
        if memo.get("deletion_cost_problem") != str(error):
            logger.warning("Pod deletion costs not updated: %s", error)
        memo.deletion_cost_problem = str(error)
        return
    if memo.get("deletion_cost_problem"):
        logger.info("Pod deletion costs updated again")
        memo.deletion_cost_problem = ""
    if patched:
        logger.info("Pod deletion costs updated on %s", ", ".join(patched))
