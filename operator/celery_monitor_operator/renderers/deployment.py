"""The monitor Deployment: one hardened container, options as arguments, secrets as environment.

Non-secret settings go on the command line, so changing them changes the pod template and
rolls the pod. Secrets stay in Secrets; their content is folded into a checksum annotation
so that editing a Secret rolls the pod too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _meta, _security, secret

DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
SINGLE_WRITER_MODES = ("ReadWriteOnce", "ReadWriteOncePod")
BASIC_USER_ENV = "MONITOR_BASIC_AUTH_USERNAME"
BASIC_PASSWORD_ENV = "MONITOR_BASIC_AUTH_PASSWORD"
DATABASE_ENV = "CELERY_MONITOR_DB"
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
CLUSTERS_ENV = "CELERY_MONITOR_CLUSTERS"
CLUSTER_VARIABLE_PREFIX = "CM_CLUSTER_"
# The URLs of one cluster of spec.clusters: the suffix of the variable each is read into, and the
# key its part of the monitor's entry gives it ("NAME=BROKER_URL broker_api=URL result_backend=URL").
CLUSTER_PARTS = (("BROKER", ""), ("BROKER_API", "broker_api"), ("RESULT_BACKEND", "result_backend"))


def secrets_checksum(values: Mapping[str, str]) -> str:
    """A stable digest of every Secret value the pod reads, keyed by "secret/key"."""
    digest = hashlib.sha256()
    for key in sorted(values):
        digest.update(key.encode())
        digest.update(b"\0")
        digest.update(values[key].encode())
        digest.update(b"\0")
    return digest.hexdigest()


def monitor_args(monitor: spec.CeleryMonitorResource) -> list[str]:
    """The monitor's command-line options, in the `--name=value` form it accepts."""
    desired = monitor.spec
    args = [f"--port={naming.MONITOR_PORT}"]
    if desired.database is None:
        # A shared database comes from CELERY_MONITOR_DB instead (monitor_env): its URL may hold a password.
        args.append(f"--db={naming.DATABASE_PATH}")
    args += [
        f"--max_tasks={desired.retention.max_tasks}",
        f"--max_workers={desired.retention.max_workers}",
    ]
    if desired.retention.max_task_age is not None:
        args.append(f"--max_task_age={desired.retention.max_task_age}")
    if desired.retention.purge_offline_workers is not None:
        args.append(f"--purge_offline_workers={desired.retention.purge_offline_workers}")
    if desired.url_prefix != spec.DEFAULT_PATH_PREFIX:
        args.append(f"--url_prefix={desired.url_prefix.strip('/')}")
    if desired.behind_proxy:
        # Behind the Ingress or Gateway the monitor must see the browser's scheme, host and address
        # (Origin checks, Secure cookies, redirects, the login rate limit), but only from a proxy.
        args += ["--xheaders=True", f"--trusted_proxies={','.join(desired.trusted_proxies)}"]
    if desired.auth.read_only:
        args.append("--read_only=True")
    if desired.autoscaling.enabled:
        # Measured even while no worker consumes them: what scaling up from zero reads.
        args.append(f"--queues={','.join(desired.autoscaling.queues)}")
    if desired.auth.metrics_auth:
        # Any identity the monitor knows may read /metrics; Prometheus has a read-only token of its own.
        args.append("--metrics_auth=any")
    oauth2 = desired.auth.oauth2
    if oauth2 is not None:
        args += [f"--auth_provider={oauth2.provider}", f"--oauth2_key={oauth2.client_id}"]
        if oauth2.redirect_uri:
            args.append(f"--oauth2_redirect_uri={oauth2.redirect_uri}")
        if oauth2.email_regex:
            args.append(f"--auth={oauth2.email_regex}")
        if oauth2.okta_base_url:
            args.append(f"--oauth2_okta_base_url={oauth2.okta_base_url}")
        if oauth2.discovery_url:
            args.append(f"--oauth2_discovery_url={oauth2.discovery_url}")
        if oauth2.gitlab_groups:
            args.append(f"--gitlab_auth_allowed_groups={','.join(oauth2.gitlab_groups)}")
    return args + list(desired.pod.extra_args)


def _from_secret(name: str, ref: spec.SecretKeyRef, optional: bool = False) -> dict[str, Any]:
    selector: dict[str, Any] = {"name": ref.name, "key": ref.key}
    if optional:
        selector["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": selector}}


def _connection_env(name: str, connection: spec.Connection | None) -> list[dict[str, Any]]:
    if connection is None:
        return []
    if connection.secret_ref is not None:
        return [_from_secret(name, connection.secret_ref)]
    return [{"name": name, "value": connection.url or ""}]


def cluster_variable(index: int, part: str) -> str:
    """The variable holding one URL of the cluster at ``index`` of spec.clusters."""
    return f"{CLUSTER_VARIABLE_PREFIX}{index}_{part}"


def _clusters_env(clusters: tuple[spec.Cluster, ...]) -> list[dict[str, Any]]:
    """One variable per URL, then CELERY_MONITOR_CLUSTERS naming them as $(VARIABLE): Kubernetes expands
    these from the variables defined before it, so the Deployment holds no URL a Secret keeps."""
    env: list[dict[str, Any]] = []
    entries = []
    for index, cluster in enumerate(clusters):
        urls = dict(zip((part for part, _ in CLUSTER_PARTS),
                        (cluster.broker.connection, cluster.broker.management_api, cluster.result_backend),
                        strict=True))
        parts = []
        for part, key in CLUSTER_PARTS:
            connection = urls[part]
            if connection is None:
                continue
            variable = cluster_variable(index, part)
            if connection.secret_ref is not None:
                env.append(_from_secret(variable, connection.secret_ref))
            else:
                # "$$" is how a "$" survives Kubernetes' expansion of $(VAR) in a value.
                env.append({"name": variable, "value": (connection.url or "").replace("$", "$$")})
            parts.append(f"{key or cluster.name}=$({variable})")
        entries.append(" ".join(parts))
    return [*env, {"name": CLUSTERS_ENV, "value": ", ".join(entries)}]


def monitor_env(monitor: spec.CeleryMonitorResource) -> list[dict[str, Any]]:
    desired = monitor.spec
    env: list[dict[str, Any]] = []
    if desired.broker is not None:
        env += _connection_env("CELERY_MONITOR_BROKER", desired.broker.connection)
        env += _connection_env("CELERY_MONITOR_BROKER_API", desired.broker.management_api)
        env += _connection_env("CELERY_MONITOR_RESULT_BACKEND", desired.result_backend)
    if desired.clusters:
        env += _clusters_env(desired.clusters)
    if desired.database is not None:
        env += _connection_env(DATABASE_ENV, desired.database.connection)
    generated = naming.auth_secret_name(monitor.name)
    env.append(_from_secret("CELERY_MONITOR_COOKIE_SECRET",
                            spec.SecretKeyRef(generated, secret.COOKIE_SECRET_KEY)))
    if desired.auth.basic.enabled:
        login = secret.basic_auth_secret_name(monitor)
        env.append(_from_secret(BASIC_USER_ENV, spec.SecretKeyRef(login, secret.USERNAME_KEY)))
        env.append(_from_secret(BASIC_PASSWORD_ENV, spec.SecretKeyRef(login, secret.PASSWORD_KEY)))
        # Kubernetes expands $(VAR) from variables defined earlier in the same list.
        env.append({"name": "CELERY_MONITOR_BASIC_AUTH", "value": f"$({BASIC_USER_ENV}):$({BASIC_PASSWORD_ENV})"})
    if desired.auth.oauth2 is not None:
        env.append(_from_secret("CELERY_MONITOR_OAUTH2_SECRET", desired.auth.oauth2.client_secret))
    if desired.auth.metrics_auth:
        # The token's digest: the Secret keeps it with the token, so the two cannot disagree.
        env.append(_from_secret("CELERY_MONITOR_API_TOKENS", spec.SecretKeyRef(
            naming.metrics_secret_name(monitor.name), secret.METRICS_ENTRY_KEY)))
    return env + [dict(item) for item in desired.pod.extra_env]


def _probe(path: str, scheme: str, period: int, failures: int) -> dict[str, Any]:
    check: dict[str, Any] = {"path": path, "port": naming.PORT_NAME}
    if scheme != "HTTP":
        check["scheme"] = scheme  # the kubelet does not verify the certificate of an HTTPS probe
    return {
        "httpGet": check,
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _probe_path(monitor: spec.CeleryMonitorResource, path: str) -> str:
    return f"{monitor.spec.url_prefix.rstrip('/')}{path}"


def _data_volume(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    if monitor.spec.uses_claim:
        return {"name": "data", "persistentVolumeClaim": {"claimName": naming.pvc_name(monitor.name)}}
    return {"name": "data", "emptyDir": {}}


def _strategy(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    persistence = monitor.spec.persistence
    # A volume only one node (or pod) can mount would leave the new pod pending forever
    # while the old one holds it: stop the old pod first. On a shared database the new pod
    # starts as a standby beside the old ones, so the rollout never leaves no pod serving.
    if monitor.spec.uses_claim and persistence.access_mode in SINGLE_WRITER_MODES:
        return {"type": "Recreate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def _affinity(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
    """The user's affinity as given; else, on a shared database, replicas spread over nodes when they can
    be (preferred, not required: a one-node cluster still runs them all), so a node drain keeps one serving."""
    desired = monitor.spec
    if desired.pod.affinity:
        return dict(desired.pod.affinity)
    if desired.database is None:
        return {}
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {
            "topologyKey": HOSTNAME_TOPOLOGY,
            "labelSelector": {"matchLabels": naming.selector_labels(monitor.name)},
        },
    }]}}


def render_monitor_deployment(monitor: spec.CeleryMonitorResource, checksum: str) -> dict[str, Any]:
    """The Deployment of one CeleryMonitor's pods (the operator's own is :func:`.install.render_operator_deployment`).

    ``checksum`` is :func:`secrets_checksum` of the Secrets the pod reads.
    """
    desired = monitor.spec
    # Started (and ready) once the history is open and the monitor serves, which can take a while on
    # a large history: the startup probe allows two minutes. Liveness fails only when ingestion has
    # stopped (a loop dead or stuck, the broker away for minutes): a restart is then the remedy.
    ready = _probe_path(monitor, naming.READINESS_PATH)
    live = _probe_path(monitor, naming.LIVENESS_PATH)
    scheme = "HTTPS" if desired.serves_tls else "HTTP"
    container: dict[str, Any] = {
        "name": naming.CONTAINER_NAME,
        "image": desired.image,
        "imagePullPolicy": desired.image_pull_policy,
        "command": ["celery-monitor"],
        "args": monitor_args(monitor),
        "env": monitor_env(monitor),
        "ports": [{"name": naming.PORT_NAME, "containerPort": naming.MONITOR_PORT, "protocol": "TCP"}],
        "startupProbe": _probe(ready, scheme, period=5, failures=24),
        "livenessProbe": _probe(live, scheme, period=20, failures=3),
        "readinessProbe": _probe(ready, scheme, period=10, failures=3),
        "resources": dict(desired.pod.resources) or DEFAULT_RESOURCES,
        "securityContext": _security.container_security_context(),
        "volumeMounts": [
            {"name": "data", "mountPath": naming.DATA_MOUNT_PATH},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": _security.pod_security_context(),
        "containers": [container],
        "volumes": [_data_volume(monitor), {"name": "tmp", "emptyDir": {}}],
    }
    if desired.pod.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in desired.pod.image_pull_secrets]
    if desired.pod.node_selector:
        pod["nodeSelector"] = dict(desired.pod.node_selector)
    if desired.pod.tolerations:
        pod["tolerations"] = [dict(item) for item in desired.pod.tolerations]
    affinity = _affinity(monitor)
    if affinity:
        pod["affinity"] = affinity
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta.metadata(monitor, naming.deployment_name(monitor.name)),
        "spec": {
            "replicas": desired.replicas,
            "strategy": _strategy(monitor),
            "selector": {"matchLabels": naming.selector_labels(monitor.name)},
            "template": {
                "metadata": {
                    "labels": {**desired.pod.labels, **naming.child_labels(monitor.name)},
                    "annotations": {**desired.pod.annotations, naming.CHECKSUM_ANNOTATION: checksum},
                },
                "spec": pod,
            },
        },
    }
