"""Everything that installs the operator itself, apart from the CeleryMonitor CRD.

Used by ``render_cli`` for ``manifests/`` and by the Helm chart, so a plain
``kubectl apply`` and a chart install run the same operator with the same rights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery_monitor_operator import naming
from celery_monitor_operator.renderers import _security, peering, rbac

LIVENESS_PORT = 8080
LIVENESS_PATH = "/healthz"
DEFAULT_IMAGE = naming.DEFAULT_IMAGE


def _labels() -> dict[str, str]:
    return {
        "app.kubernetes.io/name": naming.OPERATOR_NAME,
        "app.kubernetes.io/part-of": "celery-monitor",
    }


def operator_args(namespaces: Sequence[str] | None = None, peering_name: str | None = naming.OPERATOR_NAME
                  ) -> list[str]:
    """Command-line options of the operator: what to watch, its health endpoint and its peering."""
    args = [f"--namespace={ns}" for ns in namespaces] if namespaces else ["--all-namespaces"]
    args.append(f"--liveness=http://0.0.0.0:{LIVENESS_PORT}{LIVENESS_PATH}")
    args.append(f"--peering={peering_name}" if peering_name else "--standalone")
    return args


def render_operator_deployment(namespace: str, image: str, namespaces: Sequence[str] | None = None,
                               replicas: int = 1) -> dict[str, Any]:
    """The operator's own Deployment (the monitor's is :func:`.deployment.render_monitor_deployment`)."""
    probe = {"httpGet": {"path": LIVENESS_PATH, "port": "health"},
             "initialDelaySeconds": 10, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": naming.OPERATOR_NAME, "namespace": namespace, "labels": _labels()},
        "spec": {
            "replicas": replicas,
            # The old pod leaves the peering before the new one starts: never two active at once.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": naming.OPERATOR_NAME}},
            "template": {
                "metadata": {"labels": _labels()},
                "spec": {
                    "serviceAccountName": naming.OPERATOR_NAME,
                    "securityContext": _security.pod_security_context(),
                    "containers": [{
                        "name": "operator",
                        "image": image,
                        "command": ["celery-monitor-operator"],
                        "args": operator_args(namespaces),
                        "env": [{"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "ports": [{"name": "health", "containerPort": LIVENESS_PORT, "protocol": "TCP"}],
                        "livenessProbe": probe,
                        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": _security.container_security_context(),
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def render_rbac(namespace: str, namespaces: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The operator's rights: a Role and RoleBinding in each watched namespace when ``namespaces``
    are given, else one ClusterRole and its binding (see :mod:`.rbac`)."""
    labels = _labels()
    subjects = [{"kind": "ServiceAccount", "name": naming.OPERATOR_NAME, "namespace": namespace}]
    if not namespaces:
        return [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": naming.OPERATOR_NAME, "labels": labels},
             "rules": rbac.operator_rules()},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": naming.OPERATOR_NAME, "labels": labels},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": naming.OPERATOR_NAME},
             "subjects": subjects},
        ]
    objects: list[dict[str, Any]] = []
    for watched in namespaces:
        metadata = {"name": naming.OPERATOR_NAME, "namespace": watched, "labels": labels}
        objects += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata,
             "rules": rbac.operator_rules(namespaced=True)},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(metadata),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": naming.OPERATOR_NAME},
             "subjects": subjects},
        ]
    return objects


def render_install(namespace: str = naming.DEFAULT_OPERATOR_NAMESPACE, image: str = DEFAULT_IMAGE,
                   namespaces: Sequence[str] | None = None, replicas: int = 1) -> list[dict[str, Any]]:
    """Namespace, kopf peering CRDs, ServiceAccount, RBAC, operator Deployment.

    ``namespaces`` limits what the operator watches (default: all namespaces), and its rights with
    it: Roles in those namespaces instead of a ClusterRole. The peering CRDs come right after the
    Namespace because the operator refuses to start without them.
    """
    labels = _labels()
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}},
        *peering.render_peering_crds(),
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": naming.OPERATOR_NAME, "namespace": namespace, "labels": labels}},
        *render_rbac(namespace, namespaces),
        # Watching named namespaces, kopf's replicas meet in a KopfPeering in each, which must exist
        # (watching all, the operator creates its ClusterKopfPeering itself).
        *({"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
           "metadata": {"name": naming.OPERATOR_NAME, "namespace": watched, "labels": labels}}
          for watched in namespaces or ()),
        render_operator_deployment(namespace, image, namespaces, replicas),
    ]
