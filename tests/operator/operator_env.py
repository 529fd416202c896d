"""The operator's end-to-end tests' view of the emulated cluster: create resources, read conditions, wait."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from kmock_cluster import EmulatedCluster, wait_for

from celery_monitor_operator import naming, resources

TIMEOUT = 30.0  # generous: a busy machine slows the operator, never the assertions


class Env:
    def __init__(self, cluster: EmulatedCluster, log: Path, health_url: str) -> None:
        self.cluster = cluster
        self.api = cluster.api()
        self.log = log
        self.health_url = health_url
        self.created: list[tuple[str, str]] = []

    def wait(self, check: Any, what: str) -> Any:
        return wait_for(check, TIMEOUT, what, self.log)

    def create_monitor(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        # The emulator assigns neither uid nor resourceVersion: seed them as the API server would.
        self.api.create(resources.CELERY_MONITORS, namespace, {
            "apiVersion": naming.API_VERSION, "kind": naming.KIND,
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}",
                         "resourceVersion": "1", "generation": 1},
            "spec": spec,
        })
        self.created.append((namespace, name))

    def forget_monitors(self) -> None:
        """Delete what a test created, so finished tests stop loading the shared operator."""
        while self.created:
            self.api.delete(resources.CELERY_MONITORS, *self.created.pop())

    def update_spec(self, namespace: str, name: str, generation: int, spec: dict[str, Any]) -> None:
        self.api.merge_patch(resources.CELERY_MONITORS, namespace, name,
                             {"metadata": {"generation": generation}, "spec": spec})

    def create_secret(self, namespace: str, name: str, values: dict[str, str]) -> None:
        data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
        self.api.create(resources.SECRETS, namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": name, "namespace": namespace, "uid": f"uid-secret-{name}", "resourceVersion": "1"},
            "data": data})

    def get(self, ref: resources.ResourceRef, namespace: str, name: str) -> dict[str, Any] | None:
        return self.api.get(ref, namespace, name)

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return (self.get(resources.CELERY_MONITORS, namespace, name) or {}).get("status") or {}

    def condition(self, namespace: str, name: str, kind: str) -> dict[str, Any]:
        for item in self.status(namespace, name).get("conditions") or []:
            if item["type"] == kind:
                return dict(item)
        return {}

    def wait_condition(self, namespace: str, name: str, kind: str, status: str, reason: str) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            found = self.condition(namespace, name, kind)
            return found if (found.get("status"), found.get("reason")) == (status, reason) else None
        return self.wait(matches, f"{kind}={status} ({reason}) on {namespace}/{name}")

    def args(self, namespace: str, name: str) -> list[str]:
        found = self.get(resources.DEPLOYMENTS, namespace, name) or {}
        return found.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("args", [])

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The Events posted about the CeleryMonitor, in the order they were posted (the emulator's)."""
        items = self.api.request("GET", f"/api/v1/namespaces/{namespace}/events").get("items", [])
        return [item for item in items if item.get("involvedObject", {}).get("name") == name
                and item.get("involvedObject", {}).get("kind") == naming.KIND]


