"""The children a CeleryMonitor asks for, rendered from representative specs."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from cmon_helpers import SPECS, make_monitor

from celery_monitor import clusters
from celery_monitor.cli import config
from celery_monitor_operator import alert_rules, naming, spec
from celery_monitor_operator.renderers import (
    deployment,
    disruption,
    httproute,
    ingress,
    prometheusrule,
    pvc,
    secret,
    service,
    servicemonitor,
)

OWNER_UID = "0b6f6a8e-1111-4c3a-9c39-6b1f1b5c0d01"


def container_of(rendered: dict[str, Any]) -> dict[str, Any]:
    return rendered["spec"]["template"]["spec"]["containers"][0]


def env_of(rendered: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container_of(rendered)["env"]}


def test_every_child_is_owned_by_the_celery_monitor_and_labelled() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "ingress": {"enabled": True},
                            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    children = [
        secret.render_auth_secret(monitor), service.render_service(monitor), pvc.render_pvc(monitor),
        deployment.render_monitor_deployment(monitor, "c"), ingress.render_ingress(monitor),
        servicemonitor.render_service_monitor(monitor), prometheusrule.render_prometheus_rule(monitor, []),
    ]

    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "team"
        assert meta["ownerReferences"] == [{
            "apiVersion": "celerymonitor.io/v1alpha1", "kind": "CeleryMonitor", "name": "demo",
            "uid": OWNER_UID, "controller": True, "blockOwnerDeletion": True,
        }], child["kind"]
        assert meta["labels"]["app.kubernetes.io/instance"] == "demo"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "celery-monitor-operator"


def test_the_deployment_runs_hardened_and_probes_liveness_and_readiness() -> None:
    rendered = deployment.render_monitor_deployment(make_monitor(), "abc123")
    pod = rendered["spec"]["template"]["spec"]
    container = container_of(rendered)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    # Restarted when ingestion has stopped; in the Service's endpoints once the history is open.
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert rendered["spec"]["template"]["metadata"]["annotations"][naming.CHECKSUM_ANNOTATION] == "abc123"


def test_the_store_lives_on_the_claim_and_a_single_writer_volume_means_recreate() -> None:
    rendered = deployment.render_monitor_deployment(make_monitor(), "c")
    pod = rendered["spec"]["template"]["spec"]

    assert {"name": "data", "persistentVolumeClaim": {"claimName": "demo-data"}} in pod["volumes"]
    assert "--db=/data/celery-monitor.db" in container_of(rendered)["args"]
    assert rendered["spec"]["strategy"] == {"type": "Recreate"}


def test_without_persistence_the_store_is_an_empty_dir_and_updates_roll() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "persistence": {"enabled": False}})
    rendered = deployment.render_monitor_deployment(monitor, "c")

    assert {"name": "data", "emptyDir": {}} in rendered["spec"]["template"]["spec"]["volumes"]
    assert rendered["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "affinity" not in rendered["spec"]["template"]["spec"]


@pytest.mark.parametrize(("database", "variable"), [
    ({"secretKeyRef": {"name": "pg", "key": "dsn"}},
     {"name": "CELERY_MONITOR_DB", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}}}),
    ({"cnpgCluster": "orders-db"},
     {"name": "CELERY_MONITOR_DB", "valueFrom": {"secretKeyRef": {"name": "orders-db-app", "key": "uri"}}}),
    ({"url": "postgresql://cm@pg:5432/cm"}, {"name": "CELERY_MONITOR_DB", "value": "postgresql://cm@pg:5432/cm"}),
])
def test_a_shared_database_comes_from_the_environment_and_the_replicas_roll_spread_over_nodes(
        database: dict[str, Any], variable: dict[str, Any]) -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "database": database, "replicas": 3})
    rendered = deployment.render_monitor_deployment(monitor, "c")
    pod = rendered["spec"]["template"]["spec"]
    args = container_of(rendered)["args"]

    assert variable in container_of(rendered)["env"]
    assert not any(arg.startswith("--db") for arg in args) and not any("postgres" in arg for arg in args)
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    assert rendered["spec"]["replicas"] == 3
    assert rendered["spec"]["strategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"] == {"topologyKey": "kubernetes.io/hostname", "labelSelector": {
        "matchLabels": {"app.kubernetes.io/name": "celery-monitor", "app.kubernetes.io/instance": "demo"}}}
    assert container_of(rendered)["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container_of(rendered)["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_the_users_affinity_replaces_the_spreading_of_a_shared_database() -> None:
    chosen = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}]}}}
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "database": {"cnpgCluster": "pg"},
                            "replicas": 2, "affinity": chosen})

    assert deployment.render_monitor_deployment(monitor, "c")["spec"]["template"]["spec"]["affinity"] == chosen


def test_the_disruption_budget_keeps_one_replica_of_the_monitor_serving() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "database": {"cnpgCluster": "pg"}, "replicas": 3})
    budget = disruption.render_pod_disruption_budget(monitor)

    assert (budget["apiVersion"], budget["kind"], budget["metadata"]["name"]) == ("policy/v1", "PodDisruptionBudget",
                                                                                   "demo")
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {
        "app.kubernetes.io/name": "celery-monitor", "app.kubernetes.io/instance": "demo"}}}
    assert budget["metadata"]["ownerReferences"][0]["name"] == "demo"
    assert disruption.wants_budget(monitor)
    assert not disruption.wants_budget(make_monitor({"broker": {"url": "redis://r/0"},
                                                     "database": {"cnpgCluster": "pg"}}))


def test_retention_auth_and_prefix_become_monitor_options() -> None:
    monitor = make_monitor({
        "broker": {"url": "redis://r/0"},
        "retention": {"maxTasks": 5000, "maxWorkers": 50, "maxTaskAge": "7d", "purgeOfflineWorkers": 600},
        "auth": {"readOnly": True, "oauth2": {"provider": "github", "clientId": "cid",
                                              "clientSecretRef": {"name": "gh"}, "emailRegex": ".*@x.org"}},
        "ingress": {"enabled": True, "pathPrefix": "/celery"},
        "extraArgs": ["--natural_time=true"],
    })
    container = container_of(deployment.render_monitor_deployment(monitor, "c"))

    assert container["command"] == ["celery-monitor"]
    assert container["args"] == [
        "--port=5555", "--db=/data/celery-monitor.db", "--max_tasks=5000", "--max_workers=50",
        "--max_task_age=7d", "--purge_offline_workers=600", "--url_prefix=celery", "--xheaders=True",
        f"--trusted_proxies={','.join(spec.DEFAULT_TRUSTED_PROXIES)}", "--read_only=True",
        "--metrics_auth=any", "--auth_provider=github", "--oauth2_key=cid", "--auth=.*@x.org", "--natural_time=true",
    ]
    assert container["livenessProbe"]["httpGet"]["path"] == "/celery/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/celery/readyz"
    assert env_of(deployment.render_monitor_deployment(monitor, "c"))["CELERY_MONITOR_OAUTH2_SECRET"] == {
        "secretKeyRef": {"name": "gh", "key": "client-secret"}}


def proxy_options(spec_data: dict[str, Any]) -> list[str]:
    args = container_of(deployment.render_monitor_deployment(make_monitor(spec_data), "c"))["args"]
    return [arg for arg in args if arg.startswith(("--xheaders", "--trusted_proxies"))]


def test_behind_an_ingress_or_a_route_the_monitor_trusts_forwarded_headers_from_private_networks() -> None:
    route = {"enabled": True, "parentRefs": [{"name": "gw"}]}
    expected = ["--xheaders=True", "--trusted_proxies=127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,"
                "192.168.0.0/16,100.64.0.0/10,fc00::/7"]

    assert proxy_options({"broker": {"url": "redis://r/0"}, "ingress": {"enabled": True}}) == expected
    assert proxy_options({"broker": {"url": "redis://r/0"}, "httpRoute": route}) == expected


def test_without_a_route_the_monitor_trusts_no_forwarded_header() -> None:
    assert proxy_options({"broker": {"url": "redis://r/0"}}) == []
    assert proxy_options({"broker": {"url": "redis://r/0"}, "ingress": {"enabled": False, "host": "x"},
                          "trustedProxies": ["10.1.0.0/16"]}) == []


def test_the_trusted_proxies_can_be_narrowed_and_extra_args_still_win() -> None:
    narrowed = {"broker": {"url": "redis://r/0"}, "ingress": {"enabled": True},
                "trustedProxies": ["10.244.0.0/16", "fd00:10::/64", "192.168.1.7"]}
    overridden = {**narrowed, "extraArgs": ["--trusted_proxies=10.0.0.1"]}

    assert proxy_options(narrowed) == ["--xheaders=True",
                                       "--trusted_proxies=10.244.0.0/16,fd00:10::/64,192.168.1.7/32"]
    # The monitor takes the last of repeated options: the user's extra arguments come last.
    assert proxy_options(overridden)[-1] == "--trusted_proxies=10.0.0.1"


@pytest.mark.parametrize("extra", [
    {"extraArgs": ["--certfile=/tls/tls.crt", "--keyfile=/tls/tls.key"]},
    {"extraArgs": ["--certfile", "/tls/tls.crt", "--keyfile", "/tls/tls.key"]},
    {"extraEnv": [{"name": "CELERY_MONITOR_CERTFILE", "value": "/tls/tls.crt"}]},
    {"extraEnv": [{"name": "FLOWER_CERTFILE", "valueFrom": {"configMapKeyRef": {"name": "t", "key": "c"}}}]},
])
def test_a_monitor_serving_tls_itself_is_probed_over_https(extra: dict[str, Any]) -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "ingress": {"enabled": True, "pathPrefix": "/cm"},
                            **extra})
    container = container_of(deployment.render_monitor_deployment(monitor, "c"))

    paths = {"livenessProbe": "/cm/livez", "readinessProbe": "/cm/readyz", "startupProbe": "/cm/readyz"}
    for probe, path in paths.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http", "scheme": "HTTPS"}


@pytest.mark.parametrize("extra_args", [["--certfile="], ["--keyfile=/k"], ["--certfile"], ["--natural_time=true"]])
def test_without_a_certificate_the_probes_stay_plain_http(extra_args: list[str]) -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "extraArgs": extra_args})

    assert "scheme" not in container_of(deployment.render_monitor_deployment(monitor, "c"))["livenessProbe"]["httpGet"]


def kubelet_environment(monitor: spec.CeleryMonitorResource) -> dict[str, str]:
    """The container's variables as the kubelet sets them: a stand-in for each Secret, $(VAR) expanded."""
    from_secrets = {"CELERY_MONITOR_BROKER": "amqp://celery:pw@rabbitmq//",
                    "CELERY_MONITOR_BROKER_API": "http://celery:pw@rabbitmq:15672/api/",
                    "CELERY_MONITOR_RESULT_BACKEND": "redis://:pw@redis:6379/1",
                    "CELERY_MONITOR_API_TOKENS": secret.metrics_token_entry("cmon_stand-in")}
    for index, _ in enumerate(monitor.spec.clusters):
        for part, _key in deployment.CLUSTER_PARTS:
            from_secrets[deployment.cluster_variable(index, part)] = from_secrets[f"CELERY_MONITOR_{part}"]
    env: dict[str, str] = {}
    for var in deployment.monitor_env(monitor):
        value = var.get("value", from_secrets.get(var["name"], f"from-secret-{var['name'].lower()}"))
        env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda name: env[name.group(1)], value)
    return env


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_the_monitor_takes_every_option_the_operator_renders(spec_name: str, tmp_path: Path) -> None:
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_text("")  # the monitor checks the files exist before it starts
    data = copy.deepcopy(SPECS[spec_name])
    data["extraArgs"] = [arg.replace("/tls/", f"{tmp_path}/") for arg in data.get("extraArgs", [])]
    monitor = make_monitor(data)

    settings = config.load_settings(deployment.monitor_args(monitor), kubelet_environment(monitor))

    assert settings.xheaders is monitor.spec.behind_proxy
    if monitor.spec.behind_proxy:
        assert settings.trusted_proxies == list(monitor.spec.trusted_proxies)
    assert settings.url_prefix == monitor.spec.url_prefix.strip("/")
    assert bool(settings.certfile) is monitor.spec.serves_tls
    assert settings.metrics_auth == ("any" if monitor.spec.auth.has_login else "none")
    if spec_name == "clusters":  # as the monitor parses them, after Kubernetes expanded $(CM_CLUSTER_...)
        assert [spec.name for spec in clusters.parse_clusters(settings.clusters)] == ["orders", "reports_eu-1"]


def test_connections_and_the_login_come_from_secrets_not_from_the_pod_spec() -> None:
    monitor = make_monitor({
        "broker": {"secretKeyRef": {"name": "mq", "key": "amqp"},
                   "managementApi": {"secretKeyRef": {"name": "mq", "key": "api"}}},
        "resultBackend": {"url": "redis://redis/1"},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
    })
    env = env_of(deployment.render_monitor_deployment(monitor, "c"))

    assert env["CELERY_MONITOR_BROKER"] == {"secretKeyRef": {"name": "mq", "key": "amqp"}}
    assert env["CELERY_MONITOR_BROKER_API"] == {"secretKeyRef": {"name": "mq", "key": "api"}}
    assert env["CELERY_MONITOR_RESULT_BACKEND"] == "redis://redis/1"
    assert env["CELERY_MONITOR_COOKIE_SECRET"] == {"secretKeyRef": {"name": "demo-auth", "key": "cookie-secret"}}
    assert env["MONITOR_BASIC_AUTH_USERNAME"] == {"secretKeyRef": {"name": "demo-auth", "key": "username"}}
    assert env["CELERY_MONITOR_BASIC_AUTH"] == "$(MONITOR_BASIC_AUTH_USERNAME):$(MONITOR_BASIC_AUTH_PASSWORD)"
    assert env["TZ"] == "UTC"
    names = [item["name"] for item in container_of(deployment.render_monitor_deployment(monitor, "c"))["env"]]
    # $(VAR) only expands variables defined earlier in the list.
    assert names.index("MONITOR_BASIC_AUTH_PASSWORD") < names.index("CELERY_MONITOR_BASIC_AUTH")


def test_basic_auth_can_use_the_users_secret_or_be_switched_off() -> None:
    own = make_monitor({"broker": {"url": "redis://r/0"}, "auth": {"basic": {"secretName": "team-login"}}})
    off = make_monitor({"broker": {"url": "redis://r/0"}, "auth": {"basic": {"enabled": False}}})

    assert env_of(deployment.render_monitor_deployment(own, "c"))["MONITOR_BASIC_AUTH_PASSWORD"] == {
        "secretKeyRef": {"name": "team-login", "key": "password"}}
    assert "CELERY_MONITOR_BASIC_AUTH" not in env_of(deployment.render_monitor_deployment(off, "c"))


def test_scheduling_settings_pass_through_and_user_labels_cannot_steal_the_selector() -> None:
    monitor = make_monitor({
        "broker": {"url": "redis://r/0"},
        "nodeSelector": {"pool": "infra"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "resources": {"limits": {"memory": "2Gi"}},
        "podAnnotations": {"team": "data"},
        "podLabels": {"app.kubernetes.io/instance": "hijack", "team": "data"},
        "imagePullSecrets": [{"name": "registry"}],
    })
    rendered = deployment.render_monitor_deployment(monitor, "c")
    template = rendered["spec"]["template"]

    assert template["spec"]["nodeSelector"] == {"pool": "infra"}
    assert template["spec"]["tolerations"][0]["key"] == "infra"
    assert template["spec"]["affinity"] == {"nodeAffinity": {}}
    assert template["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    assert container_of(rendered)["resources"] == {"limits": {"memory": "2Gi"}}
    assert template["metadata"]["annotations"]["team"] == "data"
    assert template["metadata"]["labels"]["team"] == "data"
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
    assert rendered["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()


def test_the_checksum_changes_with_any_secret_value_and_only_then() -> None:
    base = {"broker/url": "cmVkaXM6Ly9yLzA=", "demo-auth/password": "cHc="}

    assert deployment.secrets_checksum(base) == deployment.secrets_checksum(dict(reversed(base.items())))
    assert deployment.secrets_checksum(base) != deployment.secrets_checksum({**base, "demo-auth/password": "cA=="})


def test_the_generated_login_is_random_once_then_kept() -> None:
    monitor = make_monitor()
    first = secret.render_auth_secret(monitor)
    again = secret.render_auth_secret(monitor, first["data"])
    other = secret.render_auth_secret(make_monitor())

    assert base64.b64decode(first["data"]["username"]) == b"admin"
    assert len(base64.b64decode(first["data"]["password"])) >= 32
    assert again["data"] == first["data"]
    assert other["data"]["password"] != first["data"]["password"]
    assert first["metadata"]["name"] == "demo-auth"


def test_a_missing_key_in_the_generated_secret_is_filled_and_the_others_kept() -> None:
    monitor = make_monitor()
    kept = {"username": base64.b64encode(b"ops").decode(), "password": base64.b64encode(b"pw").decode()}
    rendered = secret.render_auth_secret(monitor, kept)

    assert {k: rendered["data"][k] for k in kept} == kept
    assert rendered["data"]["cookie-secret"]


def test_the_service_selects_the_monitor_pods_on_the_configured_port() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"},
                            "service": {"type": "LoadBalancer", "port": 80, "annotations": {"lb": "internal"}}})
    rendered = service.render_service(monitor)

    assert rendered["spec"]["type"] == "LoadBalancer"
    assert rendered["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert rendered["spec"]["selector"] == naming.selector_labels("demo")
    assert rendered["metadata"]["annotations"] == {"lb": "internal"}


def test_a_claim_kept_on_delete_has_no_owner_so_garbage_collection_spares_it() -> None:
    kept = pvc.render_pvc(make_monitor({"broker": {"url": "redis://r/0"}, "persistence": {
        "keepOnDelete": True, "size": "10Gi", "storageClassName": "fast", "accessMode": "ReadWriteOncePod"}}))
    owned = pvc.render_pvc(make_monitor())

    assert kept["metadata"]["ownerReferences"] == []
    assert kept["metadata"]["annotations"][naming.KEEP_ANNOTATION] == "true"
    assert kept["spec"] == {"accessModes": ["ReadWriteOncePod"], "resources": {"requests": {"storage": "10Gi"}},
                            "storageClassName": "fast"}
    assert owned["metadata"]["ownerReferences"][0]["uid"] == OWNER_UID


def test_the_ingress_keeps_websockets_open_and_lets_users_override() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "ingress": {
        "enabled": True, "className": "nginx", "host": "cm.example.com", "pathPrefix": "/cm",
        "tls": {"secretName": "cm-tls"},
        "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "7200", "extra": "yes"}}})
    rendered = ingress.render_ingress(monitor)

    assert rendered["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "7200",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
        "extra": "yes",
    }
    assert rendered["spec"]["ingressClassName"] == "nginx"
    assert rendered["spec"]["tls"] == [{"secretName": "cm-tls", "hosts": ["cm.example.com"]}]
    rule = rendered["spec"]["rules"][0]
    assert rule["host"] == "cm.example.com"
    assert rule["http"]["paths"] == [{"path": "/cm", "pathType": "Prefix", "backend": {
        "service": {"name": "demo", "port": {"name": "http"}}}}]


def test_the_http_route_attaches_to_the_named_gateways() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "service": {"port": 8080}, "httpRoute": {
        "enabled": True, "hostnames": ["cm.example.com"], "pathPrefix": "/cm",
        "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}]}})
    rendered = httproute.render_http_route(monitor)

    assert rendered["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                               "name": "public", "namespace": "gateways", "sectionName": "https"}]
    assert rendered["spec"]["hostnames"] == ["cm.example.com"]
    assert rendered["spec"]["rules"] == [{"matches": [{"path": {"type": "PathPrefix", "value": "/cm"}}],
                                          "backendRefs": [{"name": "demo", "port": 8080}]}]


def test_the_service_monitor_scrapes_metrics_with_prometheuss_own_token() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "ingress": {"enabled": True, "pathPrefix": "/cm"},
                            "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "10s",
                                               "labels": {"release": "prometheus"}}})
    rendered = servicemonitor.render_service_monitor(monitor)

    assert rendered["metadata"]["labels"]["release"] == "prometheus"
    assert rendered["spec"]["selector"]["matchLabels"].items() <= service.render_service(
        monitor)["metadata"]["labels"].items()
    assert rendered["spec"]["endpoints"] == [{
        "port": "http", "path": "/cm/metrics", "interval": "15s", "scrapeTimeout": "10s",
        "authorization": {"type": "Bearer", "credentials": {"name": "demo-metrics", "key": "token"}},
    }]
    assert "demo-auth" not in str(rendered)  # never the admin login


def test_a_monitor_serving_https_is_scraped_over_https_with_its_certificate_checked() -> None:
    tls_args = {"extraArgs": ["--certfile=/tls/tls.crt", "--keyfile=/tls/tls.key"]}
    plain = make_monitor({"broker": {"url": "redis://r/0"}, "serviceMonitor": {"enabled": True}})
    checked = make_monitor({"broker": {"url": "redis://r/0"}, **tls_args, "serviceMonitor": {
        "enabled": True, "tls": {"caSecretKeyRef": {"name": "monitor-ca"}, "serverName": "demo.team.svc"}}})
    system_cas = make_monitor({"broker": {"url": "redis://r/0"}, **tls_args, "serviceMonitor": {"enabled": True}})

    def endpoint(monitor: spec.CeleryMonitorResource) -> dict[str, Any]:
        endpoints: list[dict[str, Any]] = servicemonitor.render_service_monitor(monitor)["spec"]["endpoints"]
        return endpoints[0]

    assert "scheme" not in endpoint(plain) and "tlsConfig" not in endpoint(plain)
    assert endpoint(checked)["scheme"] == "https"
    assert endpoint(checked)["tlsConfig"] == {"insecureSkipVerify": False, "serverName": "demo.team.svc",
                                              "ca": {"secret": {"name": "monitor-ca", "key": "ca.crt"}}}
    assert endpoint(system_cas)["tlsConfig"] == {"insecureSkipVerify": False}
    assert endpoint(checked)["authorization"]["credentials"]["name"] == "demo-metrics"


def test_the_metrics_secret_holds_a_read_only_token_kept_across_passes() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}})
    first = secret.render_metrics_secret(monitor)
    again = secret.render_metrics_secret(monitor, first["data"])
    token = base64.b64decode(first["data"]["token"]).decode()
    entry = base64.b64decode(first["data"]["api-tokens"]).decode()

    assert first["metadata"]["name"] == "demo-metrics"
    assert again["data"] == first["data"]
    assert token.startswith("cmon_") and len(token) > 40
    assert entry == f"prometheus:read-only:sha256:{hashlib.sha256(token.encode()).hexdigest()}"
    assert secret.render_metrics_secret(make_monitor())["data"] != first["data"]


def test_the_monitor_reads_its_metrics_token_digest_from_the_metrics_secret() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}})
    container = container_of(deployment.render_monitor_deployment(monitor, "c"))

    assert "--metrics_auth=any" in container["args"]
    assert env_of(deployment.render_monitor_deployment(monitor, "c"))["CELERY_MONITOR_API_TOKENS"] == {
        "secretKeyRef": {"name": "demo-metrics", "key": "api-tokens"}}


def test_without_any_login_metrics_stay_open_and_are_scraped_anonymously() -> None:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "auth": {"basic": {"enabled": False}}})
    container = container_of(deployment.render_monitor_deployment(monitor, "c"))
    endpoint = servicemonitor.render_service_monitor(monitor)["spec"]["endpoints"][0]

    assert "authorization" not in endpoint and "basicAuth" not in endpoint
    assert not any(arg.startswith("--metrics_auth") for arg in container["args"])
    assert "CELERY_MONITOR_API_TOKENS" not in env_of(deployment.render_monitor_deployment(monitor, "c"))


def test_the_prometheus_rule_carries_the_projects_alert_rules() -> None:
    groups = alert_rules.load_groups()
    monitor = make_monitor({"broker": {"url": "redis://r/0"},
                            "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}}})
    rendered = prometheusrule.render_prometheus_rule(monitor, groups)

    # The same rules, each selector narrowed to this monitor's series (tests/operator/test_operator_alert_rules.py).
    assert [rule["alert"] for group in rendered["spec"]["groups"] for rule in group["rules"]] == [
        rule["alert"] for group in groups for rule in group["rules"]]
    assert 'namespace="team",job="demo"' in rendered["spec"]["groups"][0]["rules"][0]["expr"]
    alerts = [rule["alert"] for group in rendered["spec"]["groups"] for rule in group["rules"] if "alert" in rule]
    assert "CeleryWorkerDown" in alerts
    assert rendered["metadata"]["labels"]["release"] == "prometheus"


def read_clusters(value: str) -> dict[str, dict[str, str]]:
    """CELERY_MONITOR_CLUSTERS read by its documented syntax: entries separated by ',', each
    NAME=BROKER_URL then optional whitespace-separated result_backend=URL and broker_api=URL."""
    clusters = {}
    for entry in value.split(","):
        (name, broker), *parts = (token.split("=", 1) for token in entry.split())
        clusters[name] = {"broker": broker, **dict(parts)}
    return clusters


def expand(env: list[dict[str, Any]], secrets: dict[str, str]) -> dict[str, str]:
    """The variables as the kubelet sets them: Secret keys ("name/key") read, $(VAR) from earlier ones, $$ to $."""
    found: dict[str, str] = {}
    for var in env:
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            found[var["name"]] = secrets.get(f"{ref['name']}/{ref['key']}", "")
        else:
            found[var["name"]] = re.sub(r"\$\$|\$\((\w+)\)", lambda hit: "$" if hit.group(1) is None
                                        else found.get(hit.group(1), hit.group(0)), var["value"])
    return found


def test_each_clusters_urls_come_from_their_own_variables_named_in_the_list_of_clusters() -> None:
    secrets = {"orders-mq/url": "redis://:s3cret@redis:6379/0", "orders-mq/results": "redis://:s3cret@redis:6379/1",
               "reports-api/url": "http://reports:s3cret@rabbitmq:15672/api/\n"}
    rendered = deployment.render_monitor_deployment(make_monitor(SPECS["clusters"]), "c")
    env = container_of(rendered)["env"]
    names = [item["name"] for item in env]

    assert env_of(rendered)["CM_CLUSTER_0_BROKER"] == {"secretKeyRef": {"name": "orders-mq", "key": "url"}}
    assert env_of(rendered)["CM_CLUSTER_0_RESULT_BACKEND"] == {"secretKeyRef": {"name": "orders-mq", "key": "results"}}
    assert env_of(rendered)["CM_CLUSTER_1_BROKER"] == "amqp://rabbitmq:5672/reports"
    assert env_of(rendered)[deployment.CLUSTERS_ENV] == (
        "orders=$(CM_CLUSTER_0_BROKER) result_backend=$(CM_CLUSTER_0_RESULT_BACKEND), "
        "reports_eu-1=$(CM_CLUSTER_1_BROKER) broker_api=$(CM_CLUSTER_1_BROKER_API)")
    # $(VAR) only expands variables defined earlier in the list; the single-broker ones are not set.
    assert max(names.index(name) for name in names if name.startswith("CM_CLUSTER_")) < names.index(
        deployment.CLUSTERS_ENV)
    assert not {"CELERY_MONITOR_BROKER", "CELERY_MONITOR_BROKER_API", "CELERY_MONITOR_RESULT_BACKEND"} & set(names)
    assert not [arg for arg in container_of(rendered)["args"] if arg.startswith(("--broker", "--result_backend"))]
    assert read_clusters(expand(env, secrets)[deployment.CLUSTERS_ENV]) == {
        "orders": {"broker": "redis://:s3cret@redis:6379/0", "result_backend": "redis://:s3cret@redis:6379/1"},
        "reports_eu-1": {"broker": "amqp://rabbitmq:5672/reports",
                         "broker_api": "http://reports:s3cret@rabbitmq:15672/api/"},
    }


def test_an_inline_cluster_url_with_a_dollar_reaches_the_monitor_as_written() -> None:
    url = "amqp://rabbitmq:5672/$(HOME)$x"
    monitor = make_monitor({"clusters": [{"name": "a", "broker": {"url": url}}]})

    env = expand(deployment.monitor_env(monitor), {})

    assert read_clusters(env[deployment.CLUSTERS_ENV]) == {"a": {"broker": url}}
