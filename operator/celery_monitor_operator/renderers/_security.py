"""The hardened security settings both the monitor pods and the operator pod run with."""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": naming.RUN_AS_USER,
        "runAsGroup": naming.RUN_AS_USER,
        "fsGroup": naming.RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
