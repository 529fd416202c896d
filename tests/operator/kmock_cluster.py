"""A Kubernetes API for the operator to talk to: KMock's emulator on a loopback port.

No kube-apiserver can run on the test machines, so the operator runs, unchanged, against
KMock's in-memory emulator. It keeps objects and serves discovery, lists, watches and
merge patches, but assigns no uid or resourceVersion, applies no schema or defaults and
collects no garbage: the tests seed what they need and assert owner references instead.

The emulator lives on its own event loop in a background thread, so tests stay plain
synchronous code talking HTTP to it, like kubectl would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import kmock
import kubernetes
import yaml

from celery_monitor_operator import kube, naming

T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_OPERATOR = {
    "monitoring.coreos.com/v1/servicemonitors": "ServiceMonitor",
    "monitoring.coreos.com/v1/prometheusrules": "PrometheusRule",
}
GATEWAY_API_PREFIX = "gateway.networking.k8s.io/"
POLL_SECONDS = 0.1


class ShortMemoryEmulator(kmock.KubernetesEmulator):
    """The emulator without its unbounded request log.

    KMock records every request for assertions and matches each new one against that whole
    log, so a busy operator slows it down quadratically. These tests assert on objects, not
    on requests: a request leaves the log once it is served.
    """

    async def _handle(self, request: Any) -> Any:
        try:
            return await super()._handle(request)
        finally:
            self._requests[:] = [seen for seen in self._requests if seen is not request]


# The Kubernetes verb each request of the emulator's parsing stands for (kopf and the operator
# change objects with PATCH only).
VERBS = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create", "UPDATE": "patch", "DELETE": "delete"}
OPERATOR_TOKEN = "kmock"  # in the operator's kubeconfig; the tests' own client sends none


class RoleEmulator(ShortMemoryEmulator):
    """The emulator as the API server is for an account with a Role in some namespaces and nothing
    else: the operator's requests (those with its token) are refused (403) unless a rule allows them.
    Discovery stays open, as it is for every account. Every refusal is kept in ``refused``."""

    rules: list[dict[str, Any]]
    namespaces: frozenset[str]
    refused: list[str]

    def allows(self, request: Any) -> bool:
        resource, action = request.resource, request.action
        if resource is None or not resource.plural or action is None:
            return True  # discovery
        if request.namespace not in self.namespaces:
            return False
        plural = f"{resource.plural}/{request.subresource}" if request.subresource else resource.plural
        verb = VERBS[action.value]
        return any((resource.group or "") in rule["apiGroups"] and plural in rule["resources"]
                   and verb in rule["verbs"] for rule in self.rules)

    async def _handle(self, request: Any) -> Any:
        if request.headers.get("Authorization") == f"Bearer {OPERATOR_TOKEN}" and not self.allows(request):
            self.refused.append(f"{request.method.value} {request.url.path}?{request.url.query_string}")
            self._requests[:] = [seen for seen in self._requests if seen is not request]
            return aiohttp.web.json_response({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                "message": f"{request.url.path} is forbidden: no rule of the Role allows it"}, status=403)
        return await super()._handle(request)


class EmulatedCluster:
    def __init__(self, role: tuple[list[dict[str, Any]], frozenset[str]] | None = None) -> None:
        """``role``: rules and namespaces, to refuse the operator whatever they do not allow."""
        self.role = role
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kmock", daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self.emulator: kmock.KubernetesEmulator | None = None
        self.url = ""

    def start(self) -> EmulatedCluster:
        self._thread.start()
        self.call(self._enter)
        return self

    def stop(self) -> None:
        self.call(self._stack.aclose)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _enter(self) -> None:
        if self.role is None:
            emulator: ShortMemoryEmulator = ShortMemoryEmulator()
        else:
            emulator = RoleEmulator()
            emulator.rules, emulator.namespaces = self.role
            emulator.refused = []
        emulator = await self._stack.enter_async_context(emulator)
        server = await self._stack.enter_async_context(kmock.Server(emulator))
        emulator.resources.load_bundled()
        emulator.resources[f"{naming.GROUP}/{naming.VERSION}/{naming.PLURAL}"] = kmock.ResourceInfo(
            kind=naming.KIND, singular=naming.SINGULAR, namespaced=True, shortnames=set(naming.SHORT_NAMES),
            verbs={"get", "list", "watch", "create", "patch", "delete"}, subresources={"status"},
        )
        self.emulator = emulator
        self.url = f"http://{server.host}:{server.port}"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (a coroutine function or a plain one) on the emulator's loop and wait for it."""
        async def run() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def serve(self, resource: str, kind: str, namespaced: bool = True) -> None:
        """Make the API serve a kind, as if its CRD was just installed."""
        def register() -> None:
            assert self.emulator is not None
            self.emulator.resources[resource] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs={"get", "list", "watch", "create", "patch", "delete"})
        self.call(register)

    def unserve(self, predicate: Callable[[str], bool]) -> dict[Any, kmock.ResourceInfo]:
        """Stop serving every kind whose "group/version/plural" matches, as if its CRD was absent."""
        def drop() -> dict[Any, kmock.ResourceInfo]:
            assert self.emulator is not None
            removed = {}
            for resource in list(self.emulator.resources):
                if predicate(f"{resource.group}/{resource.version}/{resource.plural}"):
                    removed[resource] = self.emulator.resources[resource]
                    del self.emulator.resources[resource]
            return removed
        return dict(self.call(drop))

    def restore(self, removed: dict[Any, kmock.ResourceInfo]) -> None:
        def put_back() -> None:
            assert self.emulator is not None
            for resource, info in removed.items():
                self.emulator.resources[resource] = info
        self.call(put_back)

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "kmock", "user": {"token": OPERATOR_TOKEN}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock",
                                                        "namespace": "default"}}],
            "current-context": "kmock",
        }))
        return path

    def api(self) -> kube.Api:
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return kube.Api(kubernetes.client.ApiClient(configuration))


@contextlib.contextmanager
def operator_process(command: list[str], kubeconfig: Path, log_path: Path,
                     extra_env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """The operator as its own process, as a user runs it; its log is kept for failure reports."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), **(extra_env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def kopf_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kopf", "run", "-m", "celery_monitor_operator.handlers", *args]


def wait_for(check: Callable[[], T | None], timeout: float, what: str, log: Path | None = None) -> T:
    """Poll ``check`` until it returns something truthy; fail with what was awaited and the operator log."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(POLL_SECONDS)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}\n{tail}")
