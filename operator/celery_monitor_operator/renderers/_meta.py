"""Metadata every child carries: its name, our labels and the owner reference to the CeleryMonitor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery_monitor_operator import naming, spec


def owner_reference(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    """Makes the child garbage-collected with the CeleryMonitor and lets kopf-less tools find its owner."""
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "name": monitor.name,
        "uid": monitor.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(monitor: spec.CeleryMonitorResource, name: str, *, labels: Mapping[str, str] | None = None,
             annotations: Mapping[str, str] | None = None, owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": monitor.namespace,
        # User labels first: they must not replace the ones the operator selects by.
        "labels": {**(labels or {}), **naming.child_labels(monitor.name)},
        # Always sent, even empty, so that turning keepOnDelete on removes the reference.
        "ownerReferences": [owner_reference(monitor)] if owned else [],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta
