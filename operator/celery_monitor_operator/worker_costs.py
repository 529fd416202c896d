"""Safe scale-down: each worker pod's ``controller.kubernetes.io/pod-deletion-cost`` is its running tasks.

When a Deployment scales down, its ReplicaSet deletes the pods of lowest deletion cost first, so
idle workers go before busy ones and fewer tasks are cut short (or, with ``acks_late``, run again).
The monitor knows each worker's running tasks from its heartbeats (``/api/workers``, ``events.active``);
a worker named ``name@host`` runs in the pod whose name (its host name) is ``host``. A pod with no
online worker known to the monitor costs 0. Only pods whose annotation changes are patched.

The monitor is read inside the cluster through its Service, with the read-only metrics token;
``CELERY_MONITOR_OPERATOR_MONITOR_URL`` (``{name}`` and ``{namespace}`` filled in) points elsewhere,
for an operator run outside the cluster (``kubectl port-forward``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from celery_monitor_operator import events, kube, naming, resources, spec, spec_parser, spec_reader
from celery_monitor_operator.renderers import autoscaling, secret

logger = logging.getLogger(__name__)

MONITOR_URL_VARIABLE = "CELERY_MONITOR_OPERATOR_MONITOR_URL"
REQUEST_SECONDS = 10


class Unavailable(Exception):
    """What the costs need could not be read (the Deployment, the token, the monitor): nothing was patched."""


def monitor_url(resource: spec.CeleryMonitorResource) -> str:
    template = os.environ.get(MONITOR_URL_VARIABLE)
    if template:
        base = template.format(name=resource.name, namespace=resource.namespace)
        return base if base.endswith("/") else base + "/"
    return autoscaling.monitor_base_url(resource)


def active_per_host(workers: Mapping[str, Any]) -> dict[str, int]:
    """Running tasks per host name, from the monitor's /api/workers answer (online workers only)."""
    per_host: dict[str, int] = {}
    for name, worker in workers.items():
        if not isinstance(worker, Mapping) or not worker.get("status"):
            continue
        active = (worker.get("events") or {}).get("active") or 0
        host = name.rpartition("@")[2]
        per_host[host] = per_host.get(host, 0) + int(active)
    return per_host


def _token(api: kube.Api, resource: spec.CeleryMonitorResource) -> str:
    name = naming.metrics_secret_name(resource.name)
    found = api.get(resources.SECRETS, resource.namespace, name)
    value = ((found or {}).get("data") or {}).get(secret.METRICS_TOKEN_KEY)
    if not value:
        raise Unavailable(f"Secret {name!r} holds no token yet")
    return base64.b64decode(value).decode()


def read_workers(resource: spec.CeleryMonitorResource, token: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{monitor_url(resource)}api/workers",
                                     headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError) as error:
        raise Unavailable(f"the monitor's /api/workers did not answer: {error}") from None
    if not isinstance(answer, dict):
        raise Unavailable("the monitor's /api/workers answered something else than an object")
    return answer


def _worker_pods(api: kube.Api, resource: spec.CeleryMonitorResource) -> list[dict[str, Any]]:
    name = resource.spec.autoscaling.worker_deployment
    deployment = api.get(resources.DEPLOYMENTS, resource.namespace, name)
    if deployment is None:
        raise Unavailable(f"the worker Deployment {name!r} (spec.autoscaling.workerDeployment) does not exist")
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:
        raise Unavailable(f"the worker Deployment {name!r} selects its pods by no matchLabels")
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    listing = api.request("GET", resources.PODS.path(resource.namespace), query={"labelSelector": selector})
    # Checked here too: whatever the server answered, only the Deployment's pods are ever patched.
    return [pod for pod in listing.get("items") or [] if isinstance(pod, dict)
            and labels.items() <= ((pod.get("metadata") or {}).get("labels") or {}).items()]


def sync(api: kube.Api, resource: spec.CeleryMonitorResource) -> list[str]:
    """Bring every worker pod's deletion cost in line with its running tasks; the pods patched."""
    token = _token(api, resource)
    per_host = active_per_host(read_workers(resource, token))
    patched = []
    for pod in _worker_pods(api, resource):
        metadata = pod.get("metadata") or {}
        cost = str(per_host.get(str(metadata.get("name")), 0))
        if (metadata.get("annotations") or {}).get(naming.DELETION_COST_ANNOTATION) == cost:
            continue
        try:
            api.merge_patch(resources.PODS, resource.namespace, metadata["name"],
                            {"metadata": {"annotations": {naming.DELETION_COST_ANNOTATION: cost}}})
        except kube.NotFound:
            continue  # gone meanwhile: nothing to protect
        patched.append(str(metadata["name"]))
    return patched


def keeps_deletion_costs(spec_data: Mapping[str, Any]) -> bool:
    """Whether a CeleryMonitor's spec asks for deletion costs (read before parsing the whole spec)."""
    autoscaling = spec_data.get("autoscaling") or {}
    return bool(autoscaling.get("enabled") and (autoscaling.get("podDeletionCost") or {}).get("enabled"))


class CostKeeper:
    """spec.autoscaling.podDeletionCost, for one CeleryMonitor per call (the resync loop's ``work``).

    A problem (the monitor unreachable, a pod refused) is logged when it starts or changes, and
    once more when the costs are updated again, not on every pass while it lasts. An invalid spec
    is for the converging pass to report.
    """

    def __init__(self, api: kube.Api) -> None:
        self.api = api
        self._problems: dict[tuple[str, str], str] = {}

    def __call__(self, namespace: str, name: str) -> bool:
        body = self.api.get(resources.CELERY_MONITORS, namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self._problems.pop((namespace, name), None)
            return False
        if not keeps_deletion_costs(body.get("spec") or {}):
            return True
        try:
            resource = spec_parser.parse(body)
        except spec_reader.SpecError:
            return True
        key = (namespace, name)
        try:
            patched = sync(self.api, resource)
        except (Unavailable, kube.ApiError) as error:
            if self._problems.get(key) != str(error):
                logger.warning("Pod deletion costs not updated: %s (%s/%s)", error, namespace, name)
                events.post(self.api, body, [events.Event(events.WARNING, "DeletionCostsNotUpdated",
                                                          f"Pod deletion costs not updated: {error}")])
            self._problems[key] = str(error)
            return True
        if self._problems.pop(key, None):
            logger.info("Pod deletion costs updated again (%s/%s)", namespace, name)
            events.post(self.api, body, [events.Event(events.NORMAL, "DeletionCostsUpdated",
                                                      "Pod deletion costs updated again")])
        if patched:
            logger.info("Pod deletion costs updated on %s (%s/%s)", ", ".join(patched), namespace, name)
        return True
