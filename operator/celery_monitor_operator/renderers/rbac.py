"""Least-privilege RBAC: for the operator itself (ClusterRole) and nothing for the monitor pods.

Every verb below is used by the operator; the test suite checks each child kind it renders
is covered, so a new child cannot ship without its permission.
"""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming

CHILD_VERBS = ["get", "create", "patch"]
PRUNABLE_VERBS = [*CHILD_VERBS, "delete"]


def operator_rules() -> list[dict[str, Any]]:
    """ClusterRole rules of the operator."""
    return [
        # The custom resource: watched by kopf, annotated with its progress, status written back.
        {"apiGroups": [naming.GROUP], "resources": [naming.PLURAL], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [naming.GROUP], "resources": [f"{naming.PLURAL}/status"], "verbs": ["get", "patch"]},
        # Owner references with blockOwnerDeletion need update on the owner's finalizers.
        {"apiGroups": [naming.GROUP], "resources": [f"{naming.PLURAL}/finalizers"], "verbs": ["update"]},
        # Children that always exist (never pruned); Secrets are also read for broker URLs.
        {"apiGroups": [""], "resources": ["secrets", "services", "persistentvolumeclaims"], "verbs": CHILD_VERBS},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": CHILD_VERBS},
        # Children the spec can switch off, so the operator deletes them.
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": PRUNABLE_VERBS},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": PRUNABLE_VERBS},
        {"apiGroups": ["monitoring.coreos.com"], "resources": ["servicemonitors", "prometheusrules"],
         "verbs": PRUNABLE_VERBS},
        # kopf: events about what it does, namespaces and CRDs it observes, its peering objects.
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": ["list", "watch"]},
        {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings", "kopfpeerings"],
         "verbs": ["get", "list", "watch", "patch", "create"]},
    ]
