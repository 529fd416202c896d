"""kopf handlers: thin wiring from cluster events to :func:`converge.converge_and_report`.

Run with ``celery-monitor-operator`` or ``kopf run -m celery_monitor_operator.handlers``.
Resume, create and update share one handler. Events on the monitor's Deployment and claim
converge their CeleryMonitor again at once, so Ready follows the pod within seconds. A resync
loop beside kopf (:mod:`.resync`) re-converges every resource periodically, which puts back
children changed or deleted by hand and notices Secrets and CRDs that appeared since. No handler
needs a finalizer, so deleting a CeleryMonitor never waits for the operator.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from celery_monitor_operator import converge, diffbase, kube, leadership, naming, resources, resync, worker_costs

RESYNC_SECONDS = float(os.environ.get("CELERY_MONITOR_OPERATOR_RESYNC_SECONDS", "30"))
COST_SECONDS = float(os.environ.get("CELERY_MONITOR_OPERATOR_DELETION_COST_SECONDS", "10"))
# How long a replica's keep-alive in the peering object counts: a replica killed without leaving
# is taken over after this long (kopf's default is 60 s).
PEERING_LIFETIME = int(os.environ.get("CELERY_MONITOR_OPERATOR_PEERING_LIFETIME", "60"))
RESOURCE = (naming.GROUP, naming.VERSION, naming.PLURAL)
# The children whose status the monitor's status sums up: their changes are watched.
CHILD_LABELS = {"app.kubernetes.io/managed-by": naming.OPERATOR_NAME}
WATCHED_CHILDREN = (resources.DEPLOYMENTS, resources.PVCS)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Once, before kopf watches anything: where kopf keeps its state, the cluster client, the resync loop.

    The client goes into kopf's ``memo``, which every handler below receives: they all reach the
    cluster through this one :class:`kube.Api`.
    """
    # Progress and the last handled spec live in annotations under our own group, so the
    # status stays exactly what the CRD's schema describes.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=naming.GROUP)
    # Values that may be credentials are kept there only as digests (see diffbase).
    settings.persistence.diffbase_storage = diffbase.RedactingDiffBaseStorage(
        prefix=naming.GROUP, key="last-handled-configuration")
    # No handler needs a finalizer (kopf adds one only for timers, daemons and deletion handlers,
    # and there are none). Earlier versions had a timer and left this finalizer on every resource:
    # kopf removes it, under this name, from each resource it sees without a handler needing it.
    settings.persistence.finalizer = f"{naming.GROUP}/operator"
    # The operator posts its own Events on condition changes (events.py); kopf's log records are
    # not posted (settings.posting.loggers stays off).
    settings.posting.level = logging.WARNING
    settings.peering.lifetime = PEERING_LIFETIME
    if not settings.peering.clusterwide:
        # Watching named namespaces, the operator has Roles there and no ClusterRole: kopf resolves
        # the CRD once through API discovery (open to every account) and takes the namespaces as
        # given, instead of listing namespaces and watching CRDs, which it may not.
        settings.scanning.disabled = True
    memo.api = kube.Api.from_environment()
    if not settings.peering.standalone and settings.peering.clusterwide:
        _ensure_cluster_peering(memo.api, settings.peering.name, logger)
    memo.known = resync.Known()
    peering = leadership.Peering(name=settings.peering.name, priority=settings.peering.priority,
                                 clusterwide=settings.peering.clusterwide, standalone=settings.peering.standalone)
    memo.resync = resync.Resync(memo.api, memo.known, peering, RESYNC_SECONDS).start()
    # spec.autoscaling.podDeletionCost: the worker pods' costs follow their running tasks, in a
    # loop of the same kind (a kopf timer would put a finalizer on every CeleryMonitor again).
    memo.costs = resync.Resync(memo.api, memo.known, peering, COST_SECONDS,
                               work=worker_costs.CostKeeper(memo.api), name="deletion-costs",
                               done_word="looked at").start()


@kopf.on.cleanup()
def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    """The operator is stopping: no pass may start after kopf has left the peering."""
    memo.resync.stop()
    memo.costs.stop()

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


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
def reconcile_monitor(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A CeleryMonitor was created or changed, or the operator (re)started and found it.

    An invalid spec is a permanent error for kopf (handled again only when the spec changes).
    What can mend without a new spec (a missing Secret or CRD, a failed apply) is no error here:
    the condition says it, and the resync loop looks again quietly, instead of kopf retrying with
    an ERROR in the log every time.
    """
    metadata = body["metadata"]
    memo.known.seen(metadata["namespace"], metadata["name"])
    outcome = converge.converge_and_report(memo.api, metadata["namespace"], metadata["name"])
    if outcome is not None and outcome.invalid_spec:
        summary = outcome.summary
        raise kopf.PermanentError(f"{summary.reason}: {summary.message}")


@kopf.on.event(*RESOURCE)
def track_monitor(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """Keep the resync loop's list of CeleryMonitors: every one kopf lists or hears of, until deleted."""
    metadata = body["metadata"]
    if type == "DELETED":
        memo.known.gone(metadata["namespace"], metadata["name"])
    else:
        memo.known.seen(metadata["namespace"], metadata["name"])


def owner_name(body: kopf.Body) -> str | None:
    """The CeleryMonitor that owns a child, by its owner reference."""
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == naming.KIND and str(ref.get("apiVersion", "")).startswith(f"{naming.GROUP}/"):
            return str(ref.get("name"))
    return None


def child_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Deployment or claim of a CeleryMonitor changed or went: converge its owner now."""
    owner = owner_name(body)
    if owner is not None:
        converge.converge_and_report(memo.api, body["metadata"]["namespace"], owner)


for _child in WATCHED_CHILDREN:
    kopf.on.event(_child.group, _child.version, _child.plural, labels=CHILD_LABELS,
                  id=f"child_changed/{_child.plural}")(child_changed)
