"""The CeleryMonitor spec as a typed, validated model.

The API server applies the CRD's schema and defaults, but the operator does not rely on
it: it may run against an older CRD, and rules that span several fields (exactly one
broker source, no password in an inline URL, Ingress or HTTPRoute but not both) are not
expressible in the schema for every Kubernetes version. So every spec goes through
:func:`parse` first, which fills the same defaults the CRD declares and collects every
problem with a reason, for a condition on the resource.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from kubernetes.utils import quantity

from celery_monitor_operator import naming

# Problems and reasons are part of this module's interface: callers catch spec.SpecError.
from celery_monitor_operator.spec_reader import (
    INLINE_CREDENTIALS,
    INVALID_SPEC,
    Problem,
    Reader,
    SpecError,
    has_credentials,
)

# Defaults, shared with the CRD schema (renderers/crd.py) so both say the same thing.
DEFAULT_REPLICAS = 1
DEFAULT_PULL_POLICY = "IfNotPresent"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DEFAULT_URL_KEY = "url"
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
TLS_VARIABLES = ("CELERY_MONITOR_CERTFILE", "FLOWER_CERTFILE")

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PROMETHEUS_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                 r"(([0-9]+)s)?(([0-9]+)ms)?)$")
PATH_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
# The longest child name is "<name>-data"; every child name must stay a DNS label.
MAX_NAME_LENGTH = 63 - len("-data")

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
class Broker:
    connection: Connection
    management_api: Connection | None = None


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


@dataclasses.dataclass(frozen=True)
class Auth:
    basic: BasicAuth = BasicAuth()
    oauth2: OAuth2 | None = None
    read_only: bool = False


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
class ServiceMonitor:
    enabled: bool = False
    interval: str = DEFAULT_SCRAPE_INTERVAL
    scrape_timeout: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PrometheusRule:
    enabled: bool = False
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


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
class MonitorSpec:
    broker: Broker
    result_backend: Connection | None = None
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
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES

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

    def secret_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """Every user Secret key the monitor reads, with the field that names it."""
        refs: list[tuple[str, SecretKeyRef]] = []
        sources = [
            ("spec.broker", self.broker.connection),
            ("spec.broker.managementApi", self.broker.management_api),
            ("spec.resultBackend", self.result_backend),
        ]
        for field, connection in sources:
            if connection is not None and connection.secret_ref is not None:
                refs.append((f"{field}.secretKeyRef", connection.secret_ref))
        if self.auth.basic.enabled and self.auth.basic.secret_name:
            for key in ("username", "password"):
                refs.append(("spec.auth.basic.secretName", SecretKeyRef(self.auth.basic.secret_name, key)))
        if self.auth.oauth2 is not None:
            refs.append(("spec.auth.oauth2.clientSecretRef", self.auth.oauth2.client_secret))
        return refs


@dataclasses.dataclass(frozen=True)
class Monitor:
    """A CeleryMonitor as the renderers need it: identity plus validated spec."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: MonitorSpec


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _secret_key_ref(reader: Reader, data: Mapping[str, Any], path: str, default_key: str) -> SecretKeyRef | None:
    name = reader.string(data, "name", path)
    key = reader.string(data, "key", path, default_key) or default_key
    if name is None:
        reader.problem(f"{path}.name: the Secret's name is required")
        return None
    if not DNS_SUBDOMAIN.match(name):
        reader.problem(f"{path}.name: {name!r} is not a valid Secret name")
        return None
    return SecretKeyRef(name, key)


def _connection(reader: Reader, data: Mapping[str, Any], path: str, what: str) -> Connection | None:
    url = reader.string(data, "url", path)
    ref_data = reader.mapping(data, "secretKeyRef", path)
    if url is not None and ref_data:
        reader.problem(f"{path}: set either url or secretKeyRef, not both")
        return None
    if url is None and not ref_data:
        reader.problem(f"{path}: set url or secretKeyRef")
        return None
    if url is not None:
        if has_credentials(url):
            reader.problem(
                f"{path}.url: the {what} URL carries a password; store it in a Secret and "
                f"refer to it with {path}.secretKeyRef instead",
                reason=INLINE_CREDENTIALS,
            )
            return None
        return Connection(url=url)
    ref = _secret_key_ref(reader, ref_data, f"{path}.secretKeyRef", DEFAULT_URL_KEY)
    return Connection(secret_ref=ref) if ref is not None else None


def _optional_connection(reader: Reader, data: Mapping[str, Any], key: str, path: str,
                         what: str) -> Connection | None:
    section = reader.mapping(data, key, path)
    return _connection(reader, section, f"{path}.{key}", what) if section else None


def _broker(reader: Reader, spec: Mapping[str, Any]) -> Broker:
    data = reader.mapping(spec, "broker", "spec")
    if not data:
        reader.problem("spec.broker: required (url or secretKeyRef)")
    connection = _connection(reader, data, "spec.broker", "broker") if data else None
    management = _optional_connection(reader, data, "managementApi", "spec.broker", "management API")
    return Broker(connection or Connection(), management)


def _auth(reader: Reader, spec: Mapping[str, Any]) -> Auth:
    data = reader.mapping(spec, "auth", "spec")
    basic_data = reader.mapping(data, "basic", "spec.auth")
    secret_name = reader.string(basic_data, "secretName", "spec.auth.basic")
    if secret_name is not None and not DNS_SUBDOMAIN.match(secret_name):
        reader.problem(f"spec.auth.basic.secretName: {secret_name!r} is not a valid Secret name")
        secret_name = None
    basic = BasicAuth(reader.boolean(basic_data, "enabled", "spec.auth.basic", True), secret_name)
    oauth2: OAuth2 | None = None
    oauth_data = reader.mapping(data, "oauth2", "spec.auth")
    if oauth_data:
        path = "spec.auth.oauth2"
        provider = reader.string(oauth_data, "provider", path)
        client_id = reader.string(oauth_data, "clientId", path)
        secret_ref = _secret_key_ref(reader, reader.mapping(oauth_data, "clientSecretRef", path),
                                     f"{path}.clientSecretRef", DEFAULT_CLIENT_SECRET_KEY)
        for field, value in (("provider", provider), ("clientId", client_id)):
            if value is None:
                reader.problem(f"{path}.{field}: required when OAuth2 is configured")
        if provider is not None and client_id is not None and secret_ref is not None:
            oauth2 = OAuth2(provider, client_id, secret_ref,
                            reader.string(oauth_data, "redirectUri", path),
                            reader.string(oauth_data, "emailRegex", path))
    return Auth(basic, oauth2, reader.boolean(data, "readOnly", "spec.auth", False))


def _persistence(reader: Reader, spec: Mapping[str, Any]) -> Persistence:
    data = reader.mapping(spec, "persistence", "spec")
    path = "spec.persistence"
    size = reader.string(data, "size", path, DEFAULT_STORAGE_SIZE) or DEFAULT_STORAGE_SIZE
    try:
        if quantity.parse_quantity(size) <= 0:
            raise ValueError(size)
    except ValueError:
        reader.problem(f"{path}.size: {size!r} is not a positive quantity such as 1Gi")
        size = DEFAULT_STORAGE_SIZE
    return Persistence(
        enabled=reader.boolean(data, "enabled", path, True),
        size=size,
        storage_class_name=reader.string(data, "storageClassName", path),
        access_mode=reader.choice(data, "accessMode", path, DEFAULT_ACCESS_MODE, ACCESS_MODES),
        keep_on_delete=reader.boolean(data, "keepOnDelete", path, False),
    )


def _retention(reader: Reader, spec: Mapping[str, Any]) -> Retention:
    data = reader.mapping(spec, "retention", "spec")
    path = "spec.retention"
    return Retention(
        max_tasks=_or(reader.integer(data, "maxTasks", path, DEFAULT_MAX_TASKS, minimum=1), DEFAULT_MAX_TASKS),
        max_workers=_or(reader.integer(data, "maxWorkers", path, DEFAULT_MAX_WORKERS, minimum=1),
                        DEFAULT_MAX_WORKERS),
        purge_offline_workers=reader.integer(data, "purgeOfflineWorkers", path, None, minimum=1),
    )


def _path_prefix(reader: Reader, data: Mapping[str, Any], path: str) -> str:
    prefix = reader.string(data, "pathPrefix", path, DEFAULT_PATH_PREFIX) or DEFAULT_PATH_PREFIX
    if not PATH_PREFIX.match(prefix):
        reader.problem(f"{path}.pathPrefix: {prefix!r} must be an absolute URL path such as /monitor")
        return DEFAULT_PATH_PREFIX
    return prefix.rstrip("/") or "/"


def _ingress(reader: Reader, spec: Mapping[str, Any]) -> Ingress:
    data = reader.mapping(spec, "ingress", "spec")
    path = "spec.ingress"
    tls = reader.mapping(data, "tls", path)
    return Ingress(
        enabled=reader.boolean(data, "enabled", path, False),
        class_name=reader.string(data, "className", path),
        host=reader.string(data, "host", path),
        path_prefix=_path_prefix(reader, data, path),
        tls_secret_name=reader.string(tls, "secretName", f"{path}.tls"),
        annotations=reader.string_map(data, "annotations", path),
    )


def _http_route(reader: Reader, spec: Mapping[str, Any]) -> HTTPRoute:
    data = reader.mapping(spec, "httpRoute", "spec")
    path = "spec.httpRoute"
    parents: list[ParentRef] = []
    for index, item in enumerate(reader.objects(data, "parentRefs", path)):
        item_path = f"{path}.parentRefs[{index}]"
        name = reader.string(item, "name", item_path)
        if name is None:
            reader.problem(f"{item_path}.name: the Gateway's name is required")
            continue
        parents.append(ParentRef(name, reader.string(item, "namespace", item_path),
                                 reader.string(item, "sectionName", item_path)))
    route = HTTPRoute(
        enabled=reader.boolean(data, "enabled", path, False),
        parent_refs=tuple(parents),
        hostnames=reader.strings(data, "hostnames", path),
        path_prefix=_path_prefix(reader, data, path),
    )
    if route.enabled and not route.parent_refs:
        reader.problem(f"{path}.parentRefs: name at least one Gateway to attach the route to")
    return route


def _trusted_proxies(reader: Reader, spec: Mapping[str, Any]) -> tuple[str, ...]:
    if spec.get("trustedProxies") is None:
        return DEFAULT_TRUSTED_PROXIES
    known = len(reader.problems)
    values = reader.strings(spec, "trustedProxies", "spec")
    if len(reader.problems) > known:
        return DEFAULT_TRUSTED_PROXIES
    if not 1 <= len(values) <= MAX_TRUSTED_PROXIES:
        reader.problem(f"spec.trustedProxies: give between 1 and {MAX_TRUSTED_PROXIES} addresses or "
                       f"networks, got {len(values)}")
        return DEFAULT_TRUSTED_PROXIES
    networks = []
    for index, value in enumerate(values):
        try:
            networks.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError:
            reader.problem(f"spec.trustedProxies[{index}]: {value!r} is not an IP address or a network "
                           "such as 10.0.0.0/8 (with no host bits set)")
    return tuple(networks) if len(networks) == len(values) else DEFAULT_TRUSTED_PROXIES


def _duration(reader: Reader, data: Mapping[str, Any], key: str, path: str, default: str | None) -> str | None:
    value = reader.string(data, key, path, default)
    if value is not None and not PROMETHEUS_DURATION.match(value):
        reader.problem(f"{path}.{key}: {value!r} is not a duration such as 30s or 1m")
        return default
    return value


def _service_monitor(reader: Reader, spec: Mapping[str, Any]) -> ServiceMonitor:
    data = reader.mapping(spec, "serviceMonitor", "spec")
    path = "spec.serviceMonitor"
    return ServiceMonitor(
        enabled=reader.boolean(data, "enabled", path, False),
        interval=_duration(reader, data, "interval", path, DEFAULT_SCRAPE_INTERVAL) or DEFAULT_SCRAPE_INTERVAL,
        scrape_timeout=_duration(reader, data, "scrapeTimeout", path, None),
        labels=reader.string_map(data, "labels", path),
    )


def _pod(reader: Reader, spec: Mapping[str, Any]) -> Pod:
    pull_secrets: list[str] = []
    for index, item in enumerate(reader.objects(spec, "imagePullSecrets", "spec")):
        name = reader.string(item, "name", f"spec.imagePullSecrets[{index}]")
        if name is not None:
            pull_secrets.append(name)
    extra_env = reader.objects(spec, "extraEnv", "spec")
    for index, item in enumerate(extra_env):
        if not isinstance(item.get("name"), str) or not item.get("name"):
            reader.problem(f"spec.extraEnv[{index}].name: required")
    return Pod(
        resources=reader.mapping(spec, "resources", "spec"),
        node_selector=reader.string_map(spec, "nodeSelector", "spec"),
        tolerations=reader.objects(spec, "tolerations", "spec"),
        affinity=reader.mapping(spec, "affinity", "spec"),
        annotations=reader.string_map(spec, "podAnnotations", "spec"),
        labels=reader.string_map(spec, "podLabels", "spec"),
        image_pull_secrets=tuple(pull_secrets),
        extra_args=reader.strings(spec, "extraArgs", "spec"),
        extra_env=extra_env,
    )


def parse_spec(spec: Mapping[str, Any]) -> MonitorSpec:
    """Turn a raw spec into a :class:`MonitorSpec`, or raise :class:`SpecError` listing every problem."""
    reader = Reader()
    if not isinstance(spec, Mapping):
        raise SpecError([Problem(INVALID_SPEC, "spec: expected an object")])
    service_data = reader.mapping(spec, "service", "spec")
    parsed = MonitorSpec(
        broker=_broker(reader, spec),
        result_backend=_optional_connection(reader, spec, "resultBackend", "spec", "result backend"),
        image=reader.string(spec, "image", "spec", naming.DEFAULT_IMAGE) or naming.DEFAULT_IMAGE,
        image_pull_policy=reader.choice(spec, "imagePullPolicy", "spec", DEFAULT_PULL_POLICY, PULL_POLICIES),
        replicas=_or(reader.integer(spec, "replicas", "spec", DEFAULT_REPLICAS, minimum=0), DEFAULT_REPLICAS),
        auth=_auth(reader, spec),
        persistence=_persistence(reader, spec),
        retention=_retention(reader, spec),
        service=Service(
            type=reader.choice(service_data, "type", "spec.service", DEFAULT_SERVICE_TYPE, SERVICE_TYPES),
            port=_or(reader.integer(service_data, "port", "spec.service", naming.MONITOR_PORT, 1, 65535),
                     naming.MONITOR_PORT),
            annotations=reader.string_map(service_data, "annotations", "spec.service"),
        ),
        ingress=_ingress(reader, spec),
        http_route=_http_route(reader, spec),
        service_monitor=_service_monitor(reader, spec),
        prometheus_rule=PrometheusRule(
            enabled=reader.boolean(reader.mapping(spec, "prometheusRule", "spec"), "enabled",
                                   "spec.prometheusRule", False),
            labels=reader.string_map(reader.mapping(spec, "prometheusRule", "spec"), "labels",
                                     "spec.prometheusRule"),
        ),
        pod=_pod(reader, spec),
        trusted_proxies=_trusted_proxies(reader, spec),
    )
    if parsed.ingress.enabled and parsed.http_route.enabled:
        reader.problem("spec.ingress and spec.httpRoute: enable one of them, not both")
    if parsed.replicas > 1 and parsed.persistence.enabled:
        reader.problem("spec.replicas: more than one replica needs spec.persistence.enabled=false, "
                       "since each replica keeps its own task store")
    if reader.problems:
        raise SpecError(reader.problems)
    return parsed


def parse(body: Mapping[str, Any]) -> Monitor:
    """Read a whole CeleryMonitor object (as kopf or the API returns it)."""
    metadata = body.get("metadata") or {}
    name = str(metadata.get("name") or "")
    problems: list[Problem] = []
    if not DNS_LABEL.match(name) or len(name) > MAX_NAME_LENGTH:
        problems.append(Problem(
            "InvalidName",
            f"metadata.name: {name!r} must be a DNS label (lowercase letters, digits and '-', starting "
            f"with a letter) of at most {MAX_NAME_LENGTH} characters, since the children are named after it",
        ))
    try:
        spec = parse_spec(body.get("spec") or {})
    except SpecError as error:
        raise SpecError(problems + error.problems) from None
    if problems:
        raise SpecError(problems)
    return Monitor(
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        uid=str(metadata.get("uid") or ""),
        generation=int(metadata.get("generation") or 0),
        spec=spec,
    )
