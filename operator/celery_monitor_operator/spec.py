"""The CeleryMonitor as typed values: the model the renderers read, with its defaults and patterns.

Nothing here reads untyped input; :mod:`.spec_parser` turns a resource into these values. The
defaults and patterns are the facts both the parser and the CRD's schema (:mod:`.renderers.crd`)
state, so they live here once and the two cannot disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from celery_monitor import clusters
from celery_monitor_operator import naming

# Defaults, applied by the parser and declared in the CRD schema.
DEFAULT_REPLICAS = 1
DEFAULT_PULL_POLICY = "IfNotPresent"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DEFAULT_URL_KEY = "url"
# spec.database: the URL schemes of a PostgreSQL history, and where a CloudNativePG cluster keeps
# its application user's connection URL (the Secret "<cluster>-app", key "uri").
DATABASE_SCHEMES = ("postgresql://", "postgres://")
CNPG_SECRET_SUFFIX = "-app"
CNPG_URI_KEY = "uri"
DEFAULT_CLIENT_SECRET_KEY = "client-secret"
DEFAULT_STORAGE_SIZE = "1Gi"
DEFAULT_ACCESS_MODE = "ReadWriteOnce"
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany")
DEFAULT_MAX_TASKS = 100_000
DEFAULT_MAX_WORKERS = 5_000
DEFAULT_SERVICE_TYPE = "ClusterIP"
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
DEFAULT_PATH_PREFIX = "/"
DEFAULT_SCRAPE_INTERVAL = "30s"
# Who may set X-Forwarded-* when an Ingress or HTTPRoute fronts the monitor. The controller's pod
# address is not known in advance, but pod networks are private: loopback, the RFC 1918 ranges,
# carrier-grade NAT (some CNIs use it) and IPv6 unique local addresses.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                           "100.64.0.0/10", "fc00::/7")
MAX_TRUSTED_PROXIES = 64
# Options and variables that make the monitor serve TLS itself (Flower's names are read too).
TLS_OPTION = "--certfile"
DEFAULT_CA_KEY = "ca.crt"
TLS_VARIABLES = ("CELERY_MONITOR_CERTFILE", "FLOWER_CERTFILE")

# Worker autoscaling (spec.autoscaling): where the scaler reads the backlog, and its bounds.
AUTOSCALING_SOURCES = ("MonitorAPI", "Prometheus")
DEFAULT_AUTOSCALING_SOURCE = "MonitorAPI"
DEFAULT_MIN_WORKERS = 1
DEFAULT_MAX_WORKERS_REPLICAS = 10
DEFAULT_BACKLOG_PER_WORKER = 10
DEFAULT_POLLING_SECONDS = 15
DEFAULT_COOLDOWN_SECONDS = 300
DEFAULT_COST_SYNC_SECONDS = 10

# Patterns valid values match, written for both Python's re and the API server's OpenAPI patterns.
# The resource's own name: a DNS label starting with a letter (its children are named after it).
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# A Secret's name: a DNS subdomain.
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PATH_PREFIX_PATTERN = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$"
# A Prometheus duration such as 30s or 1h30m.
DURATION_PATTERN = (r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                    r"(([0-9]+)s)?(([0-9]+)ms)?)$")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
# The shape of an IPv4 or IPv6 address or network, for the schema; the parser checks the exact
# form (a valid network with no host bits set) with the ipaddress module.
# A cluster's name in spec.clusters, as the monitor's --clusters takes it (it names the cluster in
# the API, the metrics' cluster label and the address of the dashboard's views).
CLUSTER_NAME_PATTERN = f"^{clusters.NAME_PATTERN.pattern}$"
PROXY_PATTERN = (rf"^({_OCTET}(\.{_OCTET}){{3}}(/(3[0-2]|[12]?[0-9]))?"
                 r"|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$")


def fits_cluster_list(url: str) -> bool:
    """Whether a URL can stand in the monitor's list of clusters (CELERY_MONITOR_CLUSTERS), where a ','
    ends an entry and whitespace a part of it: none of them inside, nothing before it, something given.
    Whitespace after it (a Secret written from a file ends with a newline) only separates."""
    value = url.rstrip()
    return bool(value) and not any(character == "," or character.isspace() for character in value)


@dataclasses.dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclasses.dataclass(frozen=True)
class Connection:
    """A URL given inline (only without a password) or read from a Secret key."""

    url: str | None = None
    secret_ref: SecretKeyRef | None = None


@dataclasses.dataclass(frozen=True)
class Database:
    """The PostgreSQL history every replica shares; ``cnpg_cluster`` when named through a CloudNativePG cluster."""

    connection: Connection
    cnpg_cluster: str | None = None

    @property
    def field(self) -> str:
        """The spec field that names the connection, for messages."""
        if self.cnpg_cluster is not None:
            return "spec.database.cnpgCluster"
        return "spec.database.secretKeyRef" if self.connection.secret_ref is not None else "spec.database.url"


@dataclasses.dataclass(frozen=True)
class Broker:
    connection: Connection
    management_api: Connection | None = None


@dataclasses.dataclass(frozen=True)
class Cluster:
    """One named Celery cluster of spec.clusters: its broker (and management API) and result backend."""

    name: str
    broker: Broker
    result_backend: Connection | None = None


@dataclasses.dataclass(frozen=True)
class BasicAuth:
    enabled: bool = True
    secret_name: str | None = None


@dataclasses.dataclass(frozen=True)
class OAuth2:
    provider: str
    client_id: str
    client_secret: SecretKeyRef
    redirect_uri: str | None = None
    email_regex: str | None = None
    okta_base_url: str | None = None
    discovery_url: str | None = None
    gitlab_groups: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Auth:
    basic: BasicAuth = BasicAuth()
    oauth2: OAuth2 | None = None
    read_only: bool = False

    @property
    def has_login(self) -> bool:
        """Whether anyone must sign in to the monitor (else its pages are open, as Flower's are)."""
        return self.basic.enabled or self.oauth2 is not None

    @property
    def metrics_auth(self) -> bool:
        """Whether /metrics asks for credentials: always when the monitor has a login, since metrics
        name tasks, queues and workers. Prometheus then scrapes with a read-only token of its own."""
        return self.has_login


@dataclasses.dataclass(frozen=True)
class Persistence:
    enabled: bool = True
    size: str = DEFAULT_STORAGE_SIZE
    storage_class_name: str | None = None
    access_mode: str = DEFAULT_ACCESS_MODE
    keep_on_delete: bool = False


@dataclasses.dataclass(frozen=True)
class Retention:
    max_tasks: int = DEFAULT_MAX_TASKS
    max_task_age: str | None = None  # as the monitor's --max_task_age takes it: 7d, 12h, 30m, seconds
    max_workers: int = DEFAULT_MAX_WORKERS
    purge_offline_workers: int | None = None


@dataclasses.dataclass(frozen=True)
class Service:
    type: str = DEFAULT_SERVICE_TYPE
    port: int = naming.MONITOR_PORT
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Ingress:
    enabled: bool = False
    class_name: str | None = None
    host: str | None = None
    path_prefix: str = DEFAULT_PATH_PREFIX
    tls_secret_name: str | None = None
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ParentRef:
    name: str
    namespace: str | None = None
    section_name: str | None = None


@dataclasses.dataclass(frozen=True)
class HTTPRoute:
    enabled: bool = False
    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    path_prefix: str = DEFAULT_PATH_PREFIX


@dataclasses.dataclass(frozen=True)
class ScrapeTls:
    """How Prometheus checks the monitor's certificate when the monitor serves HTTPS itself."""

    ca: SecretKeyRef | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False


@dataclasses.dataclass(frozen=True)
class ServiceMonitor:
    enabled: bool = False
    interval: str = DEFAULT_SCRAPE_INTERVAL
    scrape_timeout: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tls: ScrapeTls = ScrapeTls()


@dataclasses.dataclass(frozen=True)
class PrometheusRule:
    enabled: bool = False
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Autoscaling:
    """A worker Deployment scaled on the backlog the monitor measures for its queues."""

    enabled: bool = False
    worker_deployment: str = ""
    queues: tuple[str, ...] = ()
    cluster: str = ""  # with spec.clusters, the cluster whose queues are summed ("": every cluster's)
    min_replicas: int = DEFAULT_MIN_WORKERS
    max_replicas: int = DEFAULT_MAX_WORKERS_REPLICAS
    backlog_per_replica: int = DEFAULT_BACKLOG_PER_WORKER
    source: str = DEFAULT_AUTOSCALING_SOURCE
    prometheus_address: str | None = None
    polling_interval: int = DEFAULT_POLLING_SECONDS
    cooldown_period: int = DEFAULT_COOLDOWN_SECONDS
    pod_deletion_cost: bool = False


@dataclasses.dataclass(frozen=True)
class Pod:
    """Scheduling and container settings passed through to the pod as given."""

    resources: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    image_pull_secrets: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    extra_env: tuple[Mapping[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class CeleryMonitorSpec:
    """Exactly one of ``broker`` (one cluster, the monitor's ``default``) and ``clusters`` is given."""

    broker: Broker | None = None
    result_backend: Connection | None = None
    clusters: tuple[Cluster, ...] = ()
    image: str = naming.DEFAULT_IMAGE
    image_pull_policy: str = DEFAULT_PULL_POLICY
    replicas: int = DEFAULT_REPLICAS
    auth: Auth = Auth()
    persistence: Persistence = Persistence()
    retention: Retention = Retention()
    service: Service = Service()
    ingress: Ingress = Ingress()
    http_route: HTTPRoute = HTTPRoute()
    service_monitor: ServiceMonitor = ServiceMonitor()
    prometheus_rule: PrometheusRule = PrometheusRule()
    pod: Pod = Pod()
    autoscaling: Autoscaling = Autoscaling()
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES
    database: Database | None = None

    @property
    def uses_claim(self) -> bool:
        """Whether the history lives on the PersistentVolumeClaim: persistence on, and no shared database."""
        return self.persistence.enabled and self.database is None

    @property
    def behind_proxy(self) -> bool:
        """Whether the operator routes traffic to the monitor through a proxy (Ingress or HTTPRoute)."""
        return self.ingress.enabled or self.http_route.enabled

    @property
    def serves_tls(self) -> bool:
        """Whether the monitor serves HTTPS itself, as told by an extra option or variable."""
        args = self.pod.extra_args
        for index, arg in enumerate(args):
            name, has_value, value = arg.partition("=")
            if name == TLS_OPTION and not has_value and index + 1 < len(args):
                value = args[index + 1]  # the "--certfile PATH" form
            if name == TLS_OPTION and value:
                return True
        return any(item.get("name") in TLS_VARIABLES and (item.get("value") or item.get("valueFrom"))
                   for item in self.pod.extra_env)

    @property
    def url_prefix(self) -> str:
        """The path the monitor serves under: the one of whichever route is enabled."""
        if self.ingress.enabled:
            return self.ingress.path_prefix
        if self.http_route.enabled:
            return self.http_route.path_prefix
        return DEFAULT_PATH_PREFIX

    def cluster_connections(self) -> list[tuple[str, Connection]]:
        """Every URL of spec.clusters, with the field that gives it."""
        found: list[tuple[str, Connection]] = []
        for index, cluster in enumerate(self.clusters):
            path = f"spec.clusters[{index}]"
            for field, connection in ((f"{path}.broker", cluster.broker.connection),
                                      (f"{path}.broker.managementApi", cluster.broker.management_api),
                                      (f"{path}.resultBackend", cluster.result_backend)):
                if connection is not None:
                    found.append((field, connection))
        return found

    def secret_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """Every user Secret key the monitor reads, with the field that names it."""
        refs: list[tuple[str, SecretKeyRef]] = []
        sources: list[tuple[str, Connection | None]] = []
        if self.broker is not None:
            sources += [("spec.broker", self.broker.connection),
                        ("spec.broker.managementApi", self.broker.management_api),
                        ("spec.resultBackend", self.result_backend)]
        for field, connection in [*sources, *self.cluster_connections()]:
            if connection is not None and connection.secret_ref is not None:
                refs.append((f"{field}.secretKeyRef", connection.secret_ref))
        if self.database is not None and self.database.connection.secret_ref is not None:
            refs.append((self.database.field, self.database.connection.secret_ref))
        if self.auth.basic.enabled and self.auth.basic.secret_name:
            for key in ("username", "password"):
                refs.append(("spec.auth.basic.secretName", SecretKeyRef(self.auth.basic.secret_name, key)))
        if self.auth.oauth2 is not None:
            refs.append(("spec.auth.oauth2.clientSecretRef", self.auth.oauth2.client_secret))
        return refs


@dataclasses.dataclass(frozen=True)
class CeleryMonitorResource:
    """A CeleryMonitor as the renderers need it: identity plus validated spec."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: CeleryMonitorSpec
