"""Least-privilege RBAC for the operator, and nothing for the monitor pods.

Two modes, as the operator is run:

- **Some namespaces** (``--namespace`` for each, the chart's ``watchNamespaces``): a Role and a
  RoleBinding in each of them, and no ClusterRole at all. kopf then resolves the CRD once at
  start-up through API discovery (open to every account) and takes the namespaces as given, so it
  needs neither the CRDs nor the namespaces (``handlers.configure`` switches its scanning off).
- **All namespaces**: one ClusterRole with the same rules, plus what only that mode uses: watching
  the CRDs (kopf notices the CRD installed after it), and its cluster-wide peering object.

Every rule carries its reason (:func:`explained_rules`); the chart and ``manifests/`` print it
above the rule. Every verb is used by the operator; the tests check each child kind it renders is
covered, so a new child cannot ship without its permission.
"""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming

Rule = dict[str, Any]

CHILD_VERBS = ["get", "create", "patch"]
PRUNABLE_VERBS = [*CHILD_VERBS, "delete"]
WATCHED_CHILD_VERBS = [*CHILD_VERBS, "list", "watch"]
PEERING_VERBS = ["get", "list", "watch", "patch"]


def namespace_rules() -> list[tuple[str, Rule]]:
    """What the operator does inside a namespace it watches, each rule with its reason."""
    return [
        ("The custom resource: listed and watched by kopf, annotated with its progress.",
         {"apiGroups": [naming.GROUP], "resources": [naming.PLURAL], "verbs": ["get", "list", "watch", "patch"]}),
        ("Its status: the conditions, URL and replicas the operator reports.",
         {"apiGroups": [naming.GROUP], "resources": [f"{naming.PLURAL}/status"], "verbs": ["get", "patch"]}),
        ("Owner references with blockOwnerDeletion need update on the owner's finalizers.",
         {"apiGroups": [naming.GROUP], "resources": [f"{naming.PLURAL}/finalizers"], "verbs": ["update"]}),
        ("Secrets: the generated login and metrics token are created and kept (get, create, patch); "
         "the Secrets a spec names are read by name. No list or watch: no other Secret is ever seen.",
         {"apiGroups": [""], "resources": ["secrets"], "verbs": CHILD_VERBS}),
        ("The Service, which always exists while its CeleryMonitor does (never pruned).",
         {"apiGroups": [""], "resources": ["services"], "verbs": CHILD_VERBS}),
        ("The claim (never pruned), watched too: its binding is part of the monitor's status.",
         {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": WATCHED_CHILD_VERBS}),
        ("The monitor's Deployment, watched too: Ready follows its pods' availability within seconds.",
         {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": WATCHED_CHILD_VERBS}),
        ("Children a spec can switch off, so the operator deletes them.",
         {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": PRUNABLE_VERBS}),
        ("The Gateway API route, when spec.httpRoute asks for it (switched off: deleted).",
         {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": PRUNABLE_VERBS}),
        ("The Prometheus Operator objects, when the spec asks for them (switched off: deleted).",
         {"apiGroups": ["monitoring.coreos.com"], "resources": ["servicemonitors", "prometheusrules"],
          "verbs": PRUNABLE_VERBS}),
        ("The workers' autoscaler, when spec.autoscaling asks for it: KEDA's ScaledObject and the "
         "TriggerAuthentication naming the metrics Secret (switched off, or KEDA gone: deleted).",
         {"apiGroups": ["keda.sh"], "resources": ["scaledobjects", "triggerauthentications"],
          "verbs": PRUNABLE_VERBS}),
        ("Without KEDA, the workers' HorizontalPodAutoscaler instead (switched off: deleted).",
         {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": PRUNABLE_VERBS}),
        ("spec.autoscaling.podDeletionCost: the worker pods are listed (by the worker Deployment's selector, "
         "which the Deployment rule above reads) and annotated with their running tasks; nothing else of a "
         "pod is changed, and no pod is created or deleted.",
         {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "patch"]}),
        ("spec.database with more than one replica: a PodDisruptionBudget keeps one pod serving through a "
         "node drain (one replica, or no database: deleted). Only the operator's own, by name; none is listed.",
         {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": PRUNABLE_VERBS}),
        ("Events the operator posts when a CeleryMonitor's conditions change.",
         {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create"]}),
    ]


def cluster_rules() -> list[tuple[str, Rule]]:
    """What only the all-namespaces mode adds (cluster-scoped kinds)."""
    return [
        ("kopf watches the CRDs, so a CeleryMonitor CRD installed after the operator is served at once.",
         {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
          "verbs": ["list", "watch"]}),
    ]


def peering_rule(clusterwide: bool) -> tuple[str, Rule]:
    """kopf's peering object, where replicas elect the active one: cluster-wide or one per namespace."""
    if clusterwide:
        return ("kopf's ClusterKopfPeering, where the replicas elect the active one; the operator "
                "creates it on its first start.",
                {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": [*PEERING_VERBS, "create"]})
    return ("kopf's KopfPeering in this namespace, where the replicas elect the active one (created "
            "with the install).",
            {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"], "verbs": PEERING_VERBS})


def explained_rules(namespaced: bool = False, peering: bool = True) -> list[tuple[str, Rule]]:
    """The rules of the Role (``namespaced``) or of the ClusterRole, each with its reason."""
    rules = namespace_rules() + ([] if namespaced else cluster_rules())
    return rules + ([peering_rule(not namespaced)] if peering else [])


def operator_rules(namespaced: bool = False, peering: bool = True) -> list[Rule]:
    """The rules of the Role in each watched namespace (``namespaced``), or of the ClusterRole."""
    return [rule for _, rule in explained_rules(namespaced, peering)]
