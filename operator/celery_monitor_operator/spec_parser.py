"""Reading a CeleryMonitor into the model of :mod:`.spec`, every problem named by its field path.

The API server applies the CRD's schema and defaults, but the operator does not rely on
it: it may run against an older CRD, and rules that span several fields (exactly one
broker source, no password in an inline URL, Ingress or HTTPRoute but not both) are not
expressible in the schema for every Kubernetes version. So every resource goes through
:func:`parse` first, which fills the same defaults the CRD declares and collects every
problem with a reason, for a condition on the resource.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from kubernetes.utils import quantity

from celery_monitor import clusters as clusters_of_monitor
from celery_monitor import values
from celery_monitor_operator import naming, spec, spec_reader

# Reasons, as they appear on the Reconciled condition (spec_reader.INVALID_SPEC is the general one).
INLINE_CREDENTIALS = "InlineCredentials"
INVALID_NAME = "InvalidName"
REASONS = (spec_reader.INVALID_SPEC, INLINE_CREDENTIALS, INVALID_NAME)
CREDENTIAL_QUERY_KEYS = ("password", "passwd", "secret", "token")

_NAME = re.compile(spec.NAME_PATTERN)
_SECRET_NAME = re.compile(spec.SECRET_NAME_PATTERN)
_PATH_PREFIX = re.compile(spec.PATH_PREFIX_PATTERN)
_DURATION = re.compile(spec.DURATION_PATTERN)
_CLUSTER_NAME = re.compile(spec.CLUSTER_NAME_PATTERN)


def has_credentials(url: str) -> bool:
    """True when a connection URL (or any URL of a ';'-separated failover list) holds a secret."""
    for part in url.split(";"):
        parsed = urllib.parse.urlsplit(part.strip())
        try:
            password = parsed.password
        except ValueError:
            password = None
        if password:
            return True
        query_keys = {key.lower() for key, _ in urllib.parse.parse_qsl(parsed.query)}
        if any(word in key for key in query_keys for word in CREDENTIAL_QUERY_KEYS):
            return True
    return False


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _secret_key_ref(reader: spec_reader.Reader, data: Mapping[str, Any], path: str,
                    default_key: str) -> spec.SecretKeyRef | None:
    name = reader.string(data, "name", path)
    key = reader.string(data, "key", path, default_key) or default_key
    if name is None:
        reader.problem(f"{path}.name: the Secret's name is required")
        return None
    if not _SECRET_NAME.match(name):
        reader.problem(f"{path}.name: {name!r} is not a valid Secret name")
        return None
    return spec.SecretKeyRef(name, key)


def _connection(reader: spec_reader.Reader, data: Mapping[str, Any], path: str, what: str) -> spec.Connection | None:
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
        return spec.Connection(url=url)
    ref = _secret_key_ref(reader, ref_data, f"{path}.secretKeyRef", spec.DEFAULT_URL_KEY)
    return spec.Connection(secret_ref=ref) if ref is not None else None


def _optional_connection(reader: spec_reader.Reader, data: Mapping[str, Any], key: str, path: str,
                         what: str) -> spec.Connection | None:
    section = reader.mapping(data, key, path)
    return _connection(reader, section, f"{path}.{key}", what) if section else None


def _database(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> spec.Database | None:
    if raw.get("database") is None:
        return None
    data = reader.mapping(raw, "database", "spec")
    path = "spec.database"
    cluster = reader.string(data, "cnpgCluster", path)
    given = [key for key in ("url", "secretKeyRef", "cnpgCluster") if data.get(key) is not None]
    if len(given) != 1:
        reader.problem(f"{path}: set exactly one of url, secretKeyRef or cnpgCluster")
        return None
    if cluster is not None:
        if not _NAME.match(cluster):
            reader.problem(f"{path}.cnpgCluster: {cluster!r} is not a CloudNativePG cluster name")
            return None
        ref = spec.SecretKeyRef(f"{cluster}{spec.CNPG_SECRET_SUFFIX}", spec.CNPG_URI_KEY)
        return spec.Database(spec.Connection(secret_ref=ref), cnpg_cluster=cluster)
    connection = _connection(reader, data, path, "database")
    if connection is None:
        return None
    if connection.url is not None and not connection.url.lower().startswith(spec.DATABASE_SCHEMES):
        reader.problem(f"{path}.url: the shared history is a PostgreSQL URL (postgresql://host:5432/db)")
        return None
    return spec.Database(connection)


def _broker(reader: spec_reader.Reader, raw: Mapping[str, Any], parent: str, required: str) -> spec.Broker:
    data = reader.mapping(raw, "broker", parent)
    path = f"{parent}.broker"
    if not data:
        reader.problem(f"{path}: required ({required})")
    connection = _connection(reader, data, path, "broker") if data else None
    management = _optional_connection(reader, data, "managementApi", path, "management API")
    return spec.Broker(connection or spec.Connection(), management)


def _listable(reader: spec_reader.Reader, connection: spec.Connection | None, path: str) -> None:
    """An inline URL of a cluster goes into the monitor's list of clusters: it must fit its syntax."""
    if connection is not None and connection.url is not None and not spec.fits_cluster_list(connection.url):
        reader.problem(f"{path}.url: a URL in spec.clusters may not contain ',' or whitespace (the monitor's "
                       "list of clusters separates clusters with ',' and their URLs with spaces)")


def _cluster(reader: spec_reader.Reader, item: Mapping[str, Any], path: str) -> spec.Cluster:
    name = reader.string(item, "name", path) or ""
    if not name:
        reader.problem(f"{path}.name: required")
    elif not _CLUSTER_NAME.match(name):
        reader.problem(f"{path}.name: {name!r} is not a cluster name: lowercase letters, digits, '-' and '_', "
                       "at most 40, starting and ending with a letter or a digit")
    broker = _broker(reader, item, path, "url or secretKeyRef")
    backend = _optional_connection(reader, item, "resultBackend", path, "result backend")
    _listable(reader, broker.connection, f"{path}.broker")
    _listable(reader, broker.management_api, f"{path}.broker.managementApi")
    _listable(reader, backend, f"{path}.resultBackend")
    return spec.Cluster(name, broker, backend)


def _clusters(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> tuple[spec.Cluster, ...]:
    """spec.clusters: each named once, with its broker; given instead of spec.broker and spec.resultBackend."""
    path = "spec.clusters"
    known = len(reader.problems)
    items = reader.objects(raw, "clusters", "spec")
    if len(reader.problems) > known:
        return ()
    if not items:
        reader.problem(f"{path}: name at least one cluster, or give spec.broker instead")
    single = [f"spec.{key}" for key in ("broker", "resultBackend") if raw.get(key) is not None]
    if single:
        reader.problem(f"{path}: give the brokers either as spec.clusters or as {' and '.join(single)} (one "
                       f"cluster), not both")
    clusters = tuple(_cluster(reader, item, f"{path}[{index}]") for index, item in enumerate(items))
    first: dict[str, int] = {}
    for index, cluster in enumerate(clusters):
        if cluster.name and cluster.name in first:
            reader.problem(f"{path}[{index}].name: {cluster.name!r} is already the name of "
                           f"{path}[{first[cluster.name]}]; each cluster's name once")
        first.setdefault(cluster.name, index)
    return clusters


def _auth(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> spec.Auth:
    data = reader.mapping(raw, "auth", "spec")
    basic_data = reader.mapping(data, "basic", "spec.auth")
    secret_name = reader.string(basic_data, "secretName", "spec.auth.basic")
    if secret_name is not None and not _SECRET_NAME.match(secret_name):
        reader.problem(f"spec.auth.basic.secretName: {secret_name!r} is not a valid Secret name")
        secret_name = None
    basic = spec.BasicAuth(reader.boolean(basic_data, "enabled", "spec.auth.basic", True), secret_name)
    oauth2: spec.OAuth2 | None = None
    oauth_data = reader.mapping(data, "oauth2", "spec.auth")
    if oauth_data:
        path = "spec.auth.oauth2"
        provider = reader.string(oauth_data, "provider", path)
        client_id = reader.string(oauth_data, "clientId", path)
        secret_ref = _secret_key_ref(reader, reader.mapping(oauth_data, "clientSecretRef", path),
                                     f"{path}.clientSecretRef", spec.DEFAULT_CLIENT_SECRET_KEY)
        for field, value in (("provider", provider), ("clientId", client_id)):
            if value is None:
                reader.problem(f"{path}.{field}: required when spec.OAuth2 is configured")
        if provider is not None and client_id is not None and secret_ref is not None:
            oauth2 = spec.OAuth2(provider, client_id, secret_ref,
                                 reader.string(oauth_data, "redirectUri", path),
                                 reader.string(oauth_data, "emailRegex", path),
                                 reader.string(oauth_data, "oktaBaseUrl", path),
                                 reader.string(oauth_data, "discoveryUrl", path),
                                 reader.strings(oauth_data, "gitlabGroups", path))
    return spec.Auth(basic, oauth2, reader.boolean(data, "readOnly", "spec.auth", False))


def _persistence(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> spec.Persistence:
    data = reader.mapping(raw, "persistence", "spec")
    path = "spec.persistence"
    size = reader.string(data, "size", path, spec.DEFAULT_STORAGE_SIZE) or spec.DEFAULT_STORAGE_SIZE
    try:
        if quantity.parse_quantity(size) <= 0:
            raise ValueError(size)
    except ValueError:
        reader.problem(f"{path}.size: {size!r} is not a positive quantity such as 1Gi")
        size = spec.DEFAULT_STORAGE_SIZE
    return spec.Persistence(
        enabled=reader.boolean(data, "enabled", path, True),
        size=size,
        storage_class_name=reader.string(data, "storageClassName", path),
        access_mode=reader.choice(data, "accessMode", path, spec.DEFAULT_ACCESS_MODE, spec.ACCESS_MODES),
        keep_on_delete=reader.boolean(data, "keepOnDelete", path, False),
    )


def _task_age(reader: spec_reader.Reader, data: Mapping[str, Any], key: str, path: str) -> str | None:
    """A duration as the monitor reads it (its own parser: the two cannot disagree), at least a second."""
    value = reader.string(data, key, path)
    if value is None:
        return None
    try:
        seconds = values.parse_duration(value)
    except values.BadValue as error:
        reader.problem(f"{path}.{key}: {error}")
        return None
    if not seconds >= 1:
        reader.problem(f"{path}.{key}: must be at least 1 second, got {value!r}")
        return None
    return value.strip()


def _retention(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> spec.Retention:
    data = reader.mapping(raw, "retention", "spec")
    path = "spec.retention"
    return spec.Retention(
        max_tasks=_or(reader.integer(data, "maxTasks", path, spec.DEFAULT_MAX_TASKS, minimum=1),
                      spec.DEFAULT_MAX_TASKS),
        max_task_age=_task_age(reader, data, "maxTaskAge", path),
        max_workers=_or(reader.integer(data, "maxWorkers", path, spec.DEFAULT_MAX_WORKERS, minimum=1),
                        spec.DEFAULT_MAX_WORKERS),
        purge_offline_workers=reader.integer(data, "purgeOfflineWorkers", path, None, minimum=1),
    )


def _path_prefix(reader: spec_reader.Reader, data: Mapping[str, Any], path: str) -> str:
    prefix = reader.string(data, "pathPrefix", path, spec.DEFAULT_PATH_PREFIX) or spec.DEFAULT_PATH_PREFIX
    if not _PATH_PREFIX.match(prefix):
        reader.problem(f"{path}.pathPrefix: {prefix!r} must be an absolute URL path such as /monitor")
        return spec.DEFAULT_PATH_PREFIX
    return prefix.rstrip("/") or "/"


def _ingress(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> spec.Ingress:
    data = reader.mapping(raw, "ingress", "spec")
    path = "spec.ingress"
    tls = reader.mapping(data, "tls", path)
    return spec.Ingress(
        enabled=reader.boolean(data, "enabled", path, False),
        class_name=reader.string(data, "className", path),
        host=reader.string(data, "host", path),
        path_prefix=_path_prefix(reader, data, path),
        tls_secret_name=reader.string(tls, "secretName", f"{path}.tls"),
        annotations=reader.string_map(data, "annotations", path),
    )


def _http_route(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> spec.HTTPRoute:
    data = reader.mapping(raw, "httpRoute", "spec")
    path = "spec.httpRoute"
    parents: list[spec.ParentRef] = []
    for index, item in enumerate(reader.objects(data, "parentRefs", path)):
        item_path = f"{path}.parentRefs[{index}]"
        name = reader.string(item, "name", item_path)
        if name is None:
            reader.problem(f"{item_path}.name: the Gateway's name is required")
            continue
        parents.append(spec.ParentRef(name, reader.string(item, "namespace", item_path),
                                 reader.string(item, "sectionName", item_path)))
    route = spec.HTTPRoute(
        enabled=reader.boolean(data, "enabled", path, False),
        parent_refs=tuple(parents),
        hostnames=reader.strings(data, "hostnames", path),
        path_prefix=_path_prefix(reader, data, path),
    )
    if route.enabled and not route.parent_refs:
        reader.problem(f"{path}.parentRefs: name at least one Gateway to attach the route to")
    return route


def _trusted_proxies(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> tuple[str, ...]:
    if raw.get("trustedProxies") is None:
        return spec.DEFAULT_TRUSTED_PROXIES
    known = len(reader.problems)
    values = reader.strings(raw, "trustedProxies", "spec")
    if len(reader.problems) > known:
        return spec.DEFAULT_TRUSTED_PROXIES
    if not 1 <= len(values) <= spec.MAX_TRUSTED_PROXIES:
        reader.problem(f"spec.trustedProxies: give between 1 and {spec.MAX_TRUSTED_PROXIES} addresses or "
                       f"networks, got {len(values)}")
        return spec.DEFAULT_TRUSTED_PROXIES
    networks = []
    for index, value in enumerate(values):
        try:
            networks.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError:
            reader.problem(f"spec.trustedProxies[{index}]: {value!r} is not an IP address or a network "
                           "such as 10.0.0.0/8 (with no host bits set)")
    return tuple(networks) if len(networks) == len(values) else spec.DEFAULT_TRUSTED_PROXIES


def _duration(reader: spec_reader.Reader, data: Mapping[str, Any], key: str, path: str,
              default: str | None) -> str | None:
    value = reader.string(data, key, path, default)
    if value is not None and not _DURATION.match(value):
        reader.problem(f"{path}.{key}: {value!r} is not a duration such as 30s or 1m")
        return default
    return value


def _service_monitor(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> spec.ServiceMonitor:
    data = reader.mapping(raw, "serviceMonitor", "spec")
    path = "spec.serviceMonitor"
    return spec.ServiceMonitor(
        enabled=reader.boolean(data, "enabled", path, False),
        interval=(_duration(reader, data, "interval", path, spec.DEFAULT_SCRAPE_INTERVAL)
                  or spec.DEFAULT_SCRAPE_INTERVAL),
        scrape_timeout=_duration(reader, data, "scrapeTimeout", path, None),
        labels=reader.string_map(data, "labels", path),
        tls=_scrape_tls(reader, data, path),
    )


def _scrape_tls(reader: spec_reader.Reader, raw: Mapping[str, Any], parent: str) -> spec.ScrapeTls:
    data = reader.mapping(raw, "tls", parent)
    path = f"{parent}.tls"
    ca_data = reader.mapping(data, "caSecretKeyRef", path)
    ca = _secret_key_ref(reader, ca_data, f"{path}.caSecretKeyRef", spec.DEFAULT_CA_KEY) if ca_data else None
    return spec.ScrapeTls(
        ca=ca,
        server_name=reader.string(data, "serverName", path),
        insecure_skip_verify=reader.boolean(data, "insecureSkipVerify", path, False),
    )


def _pod(reader: spec_reader.Reader, raw: Mapping[str, Any]) -> spec.Pod:
    pull_secrets: list[str] = []
    for index, item in enumerate(reader.objects(raw, "imagePullSecrets", "spec")):
        name = reader.string(item, "name", f"spec.imagePullSecrets[{index}]")
        if name is not None:
            pull_secrets.append(name)
    extra_env = reader.objects(raw, "extraEnv", "spec")
    for index, item in enumerate(extra_env):
        if not isinstance(item.get("name"), str) or not item.get("name"):
            reader.problem(f"spec.extraEnv[{index}].name: required")
    return spec.Pod(
        resources=reader.mapping(raw, "resources", "spec"),
        node_selector=reader.string_map(raw, "nodeSelector", "spec"),
        tolerations=reader.objects(raw, "tolerations", "spec"),
        affinity=reader.mapping(raw, "affinity", "spec"),
        annotations=reader.string_map(raw, "podAnnotations", "spec"),
        labels=reader.string_map(raw, "podLabels", "spec"),
        image_pull_secrets=tuple(pull_secrets),
        extra_args=reader.strings(raw, "extraArgs", "spec"),
        extra_env=extra_env,
    )


def _queues(reader: spec_reader.Reader, data: Mapping[str, Any], path: str) -> tuple[str, ...]:
    queues = reader.strings(data, "queues", path)
    for index, queue in enumerate(queues):
        if not queue.strip() or "," in queue:
            reader.problem(f"{path}.queues[{index}]: {queue!r} is not a queue name (empty, or with a ',', "
                           "which the monitor's --queues reads as a separator)")
    if len(set(queues)) != len(queues):
        reader.problem(f"{path}.queues: each queue once")
    return queues


def _autoscaling(reader: spec_reader.Reader, raw: Mapping[str, Any], has_login: bool,
                 clusters: tuple[spec.Cluster, ...] = ()) -> spec.Autoscaling:
    data = reader.mapping(raw, "autoscaling", "spec")
    path = "spec.autoscaling"
    if not reader.boolean(data, "enabled", path, False):
        return spec.Autoscaling()
    # With several clusters a queue name may be in each: the workers scaled consume one cluster's
    # (without it, the queues of that name in every cluster are summed, as before the label existed).
    cluster = reader.string(data, "cluster", path) or ""
    names = [c.name for c in clusters] or [clusters_of_monitor.DEFAULT]
    if cluster and cluster not in names:
        reader.problem(f"{path}.cluster: {cluster!r} is not a cluster of this monitor ({', '.join(names)})")
    deployment = reader.string(data, "workerDeployment", path) or ""
    if not _SECRET_NAME.match(deployment):
        reader.problem(f"{path}.workerDeployment: name the worker Deployment to scale (a Deployment in the "
                       f"CeleryMonitor's namespace), got {deployment!r}")
    queues = _queues(reader, data, path)
    if not queues:
        reader.problem(f"{path}.queues: name at least one queue the workers consume")
    minimum = _or(reader.integer(data, "minReplicas", path, spec.DEFAULT_MIN_WORKERS, minimum=0),
                  spec.DEFAULT_MIN_WORKERS)
    maximum = _or(reader.integer(data, "maxReplicas", path, spec.DEFAULT_MAX_WORKERS_REPLICAS, minimum=1),
                  spec.DEFAULT_MAX_WORKERS_REPLICAS)
    if minimum > maximum:
        reader.problem(f"{path}.minReplicas: {minimum} is above maxReplicas ({maximum})")
    source = reader.choice(data, "source", path, spec.DEFAULT_AUTOSCALING_SOURCE, spec.AUTOSCALING_SOURCES)
    address = reader.string(reader.mapping(data, "prometheus", path), "serverAddress", f"{path}.prometheus")
    if source == "Prometheus":
        if address is None or urllib.parse.urlsplit(address).scheme not in ("http", "https"):
            reader.problem(f"{path}.prometheus.serverAddress: source Prometheus needs the http(s) URL of the "
                           f"Prometheus that scrapes this monitor, got {address!r}")
        elif has_credentials(address):
            reader.problem(f"{path}.prometheus.serverAddress: the URL carries a password", reason=INLINE_CREDENTIALS)
    elif not has_login:
        reader.problem(f"{path}.source: MonitorAPI reads the monitor's API with the read-only token the operator "
                       "makes for a monitor with a login; enable spec.auth.basic or spec.auth.oauth2, or use "
                       "source Prometheus")
    return spec.Autoscaling(
        enabled=True,
        worker_deployment=deployment,
        queues=queues,
        cluster=cluster,
        min_replicas=minimum,
        max_replicas=maximum,
        backlog_per_replica=_or(reader.integer(data, "backlogPerReplica", path, spec.DEFAULT_BACKLOG_PER_WORKER,
                                               minimum=1), spec.DEFAULT_BACKLOG_PER_WORKER),
        source=source,
        prometheus_address=address,
        polling_interval=_or(reader.integer(data, "pollingInterval", path, spec.DEFAULT_POLLING_SECONDS,
                                            minimum=1), spec.DEFAULT_POLLING_SECONDS),
        cooldown_period=_or(reader.integer(data, "cooldownPeriod", path, spec.DEFAULT_COOLDOWN_SECONDS,
                                           minimum=0), spec.DEFAULT_COOLDOWN_SECONDS),
        pod_deletion_cost=reader.boolean(reader.mapping(data, "podDeletionCost", path), "enabled",
                                         f"{path}.podDeletionCost", False),
    )


def parse_spec(raw: Mapping[str, Any]) -> spec.CeleryMonitorSpec:
    """The ``spec`` of a CeleryMonitor as a :class:`spec.CeleryMonitorSpec`, or :class:`spec_reader.SpecError`
    listing every problem."""
    reader = spec_reader.Reader()
    if not isinstance(raw, Mapping):
        raise spec_reader.SpecError([spec_reader.Problem(spec_reader.INVALID_SPEC, "spec: expected an object")])
    service_data = reader.mapping(raw, "service", "spec")
    auth = _auth(reader, raw)
    if raw.get("clusters") is not None:
        clusters = _clusters(reader, raw)
        broker, result_backend = None, None
    else:
        clusters = ()
        broker = _broker(reader, raw, "spec", "url or secretKeyRef; or spec.clusters")
        result_backend = _optional_connection(reader, raw, "resultBackend", "spec", "result backend")
    parsed = spec.CeleryMonitorSpec(
        broker=broker,
        result_backend=result_backend,
        clusters=clusters,
        image=reader.string(raw, "image", "spec", naming.DEFAULT_IMAGE) or naming.DEFAULT_IMAGE,
        image_pull_policy=reader.choice(raw, "imagePullPolicy", "spec", spec.DEFAULT_PULL_POLICY, spec.PULL_POLICIES),
        replicas=_or(reader.integer(raw, "replicas", "spec", spec.DEFAULT_REPLICAS, minimum=0), spec.DEFAULT_REPLICAS),
        auth=auth,
        persistence=_persistence(reader, raw),
        retention=_retention(reader, raw),
        service=spec.Service(
            type=reader.choice(service_data, "type", "spec.service", spec.DEFAULT_SERVICE_TYPE, spec.SERVICE_TYPES),
            port=_or(reader.integer(service_data, "port", "spec.service", naming.MONITOR_PORT, 1, 65535),
                     naming.MONITOR_PORT),
            annotations=reader.string_map(service_data, "annotations", "spec.service"),
        ),
        ingress=_ingress(reader, raw),
        http_route=_http_route(reader, raw),
        service_monitor=_service_monitor(reader, raw),
        prometheus_rule=spec.PrometheusRule(
            enabled=reader.boolean(reader.mapping(raw, "prometheusRule", "spec"), "enabled",
                                   "spec.prometheusRule", False),
            labels=reader.string_map(reader.mapping(raw, "prometheusRule", "spec"), "labels",
                                     "spec.prometheusRule"),
        ),
        pod=_pod(reader, raw),
        autoscaling=_autoscaling(reader, raw, auth.has_login, clusters),
        trusted_proxies=_trusted_proxies(reader, raw),
        database=_database(reader, raw),
    )
    if parsed.ingress.enabled and parsed.http_route.enabled:
        reader.problem("spec.ingress and spec.httpRoute: enable one of them, not both")
    if parsed.replicas > 1 and parsed.database is None:
        reader.problem(f"spec.replicas: {parsed.replicas} replicas need spec.database (a PostgreSQL history "
                       "they share, one ingesting and the others on standby); without it each pod would keep "
                       "a history of its own and the Service would answer from any of them")
    if reader.problems:
        raise spec_reader.SpecError(reader.problems)
    return parsed


def parse(body: Mapping[str, Any]) -> spec.CeleryMonitorResource:
    """Read a whole CeleryMonitor object (as kopf or the API returns it)."""
    metadata = body.get("metadata") or {}
    name = str(metadata.get("name") or "")
    problems: list[spec_reader.Problem] = []
    if not _NAME.match(name) or len(name) > naming.MAX_NAME_LENGTH:
        problems.append(spec_reader.Problem(
            INVALID_NAME,
            f"metadata.name: {name!r} must be a DNS label (lowercase letters, digits and '-', starting "
            f"with a letter) of at most {naming.MAX_NAME_LENGTH} characters, since the children are named after it",
        ))
    try:
        parsed = parse_spec(body.get("spec") or {})
    except spec_reader.SpecError as error:
        raise spec_reader.SpecError(problems + error.problems) from None
    if problems:
        raise spec_reader.SpecError(problems)
    return spec.CeleryMonitorResource(
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        uid=str(metadata.get("uid") or ""),
        generation=int(metadata.get("generation") or 0),
        spec=parsed,
    )
