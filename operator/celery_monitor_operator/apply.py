"""Idempotent create-or-update of children, and removal of those the spec no longer asks for.

A child is sent only when it differs from what the cluster holds: either someone changed
it (the live object no longer contains the desired fields) or the spec changed (the
digest of the desired object, kept in an annotation, differs). Updates use server-side
apply, so fields dropped from the desired object are dropped from the live one too.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kubernetes.utils import quantity

from celery_monitor_operator import kube, naming, resources

APPLIED_HASH_ANNOTATION = f"{naming.GROUP}/applied-hash"


class NotOurs(Exception):
    """An object with the child's name exists but belongs to someone else: it is not taken over."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} already exists and is not managed by this CeleryMonitor; "
                         f"rename or remove it")


def contains(live: Any, desired: Any) -> bool:
    """True when every field of ``desired`` is in ``live`` with the same value (extra live fields are fine)."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and contains(live[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (isinstance(live, list) and len(live) == len(desired)
                and all(contains(have, want) for have, want in zip(live, desired, strict=True)))
    return bool(live == desired)


def digest(obj: Mapping[str, Any]) -> str:
    """A short, stable hash of a desired object: equal objects, equal digests, whatever the key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def with_applied_hash(desired: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``desired`` annotated with its own digest, so the next pass sees whether the spec changed."""
    body = copy.deepcopy(dict(desired))
    body["metadata"].setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = digest(desired)
    return body


def _identity(obj: Mapping[str, Any]) -> tuple[resources.ResourceRef, str | None, str]:
    return resources.ref_for(dict(obj)), obj["metadata"].get("namespace"), obj["metadata"]["name"]


def _create(api: kube.Api, body: dict[str, Any]) -> dict[str, Any]:
    ref, namespace, name = _identity(body)
    try:
        return api.server_side_apply(ref, namespace, name, body)
    except kube.NotFound:
        # API servers that do not create on apply (such as test emulators) need an explicit create.
        return api.create(ref, namespace, body)


def is_ours(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Owned by the same CeleryMonitor, or labelled as its child (a claim kept on delete, then adopted)."""
    owners = {ref.get("uid") for ref in desired["metadata"].get("ownerReferences") or []}
    if any(ref.get("uid") in owners for ref in live.get("metadata", {}).get("ownerReferences") or []):
        return True
    labels = live.get("metadata", {}).get("labels") or {}
    wanted = desired["metadata"].get("labels") or {}
    keys = ("app.kubernetes.io/managed-by", "app.kubernetes.io/instance")
    return all(key in wanted and labels.get(key) == wanted[key] for key in keys)


def apply(api: kube.Api, desired: Mapping[str, Any]) -> dict[str, Any]:
    """Make the cluster hold ``desired``; returns the live object. Raises :class:`NotOurs`."""
    ref, namespace, name = _identity(desired)
    live = api.get(ref, namespace, name)
    if live is not None and not is_ours(live, desired):
        raise NotOurs(desired["kind"], name)
    if desired["kind"] == "PersistentVolumeClaim":
        return _apply_claim(api, desired, live)
    body = with_applied_hash(desired)
    if live is None:
        try:
            return _create(api, body)
        except kube.Conflict:
            live = api.get(ref, namespace, name)
    if live is not None and contains(live, body):
        return live
    return api.server_side_apply(ref, namespace, name, body)


def _apply_claim(api: kube.Api, desired: Mapping[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    """Claims are mostly immutable: after creation only metadata changes and the size may grow."""
    ref, namespace, name = _identity(desired)
    if live is None:
        return _create(api, copy.deepcopy(dict(desired)))
    meta = desired["metadata"]
    patch: dict[str, Any] = {"metadata": {key: meta[key] for key in ("labels", "annotations", "ownerReferences")
                                          if key in meta}}
    wanted = desired["spec"]["resources"]["requests"]["storage"]
    current = ((live.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
    if current is None or quantity.parse_quantity(wanted) > quantity.parse_quantity(current):
        patch["spec"] = {"resources": {"requests": {"storage": wanted}}}
    if contains(live, patch):
        return live
    return api.merge_patch(ref, namespace, name, patch)


def is_owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def remove(api: kube.Api, ref: resources.ResourceRef, namespace: str, name: str, owner_uid: str) -> bool:
    """Delete a child the spec no longer asks for; objects we do not own are left alone."""
    live = api.get(ref, namespace, name)
    if live is None or not is_owned_by(live, owner_uid):
        return False
    api.delete(ref, namespace, name)
    return True
