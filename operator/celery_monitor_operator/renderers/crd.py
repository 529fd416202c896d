"""The CeleryMonitor CustomResourceDefinition: the one source for the operator, manifests/ and the chart.

Defaults and patterns come from :mod:`celery_monitor_operator.spec`, which the parser applies
too, so an object behaves the same whether the API server defaulted and checked it or not.
"""

from __future__ import annotations

from typing import Any

from celery_monitor_operator import naming, spec
from celery_monitor_operator.renderers import _schema as s

ONE_SOURCE = ("has(self.url) != has(self.secretKeyRef)", "set exactly one of url or secretKeyRef")


def _secret_key_ref(description: str, default_key: str) -> s.Schema:
    return s.obj(description, {
        "name": s.string("Name of a Secret in the CeleryMonitor's namespace.", pattern=spec.SECRET_NAME_PATTERN),
        "key": s.string("Key inside the Secret.", default=default_key),
    }, required=["name"])


def _connection(description: str, what: str) -> s.Schema:
    return s.obj(description, {
        "url": s.string(
            f"The {what} URL given inline. Refused when it carries a password: use secretKeyRef then."
        ),
        "secretKeyRef": _secret_key_ref(f"A Secret key holding the {what} URL.", spec.DEFAULT_URL_KEY),
    }, rules=[ONE_SOURCE])


def _broker() -> s.Schema:
    connection = _connection(
        "Where the Celery broker is, for example redis://redis:6379/0 or amqp://rabbitmq:5672//. "
        "Exactly one of url and secretKeyRef.", "broker")
    connection["properties"]["managementApi"] = _connection(
        "RabbitMQ management API URL (for example http://user:password@rabbitmq:15672/api/), "
        "used for queue lengths and consumers; passed as --broker_api.", "management API")
    return connection


def _result_backend() -> s.Schema:
    return _connection("Celery result backend, for task results in the API (--result_backend). Exactly one "
                       "of url and secretKeyRef.", "result backend")


def _clusters() -> s.Schema:
    cluster = s.obj("One Celery cluster: its name, its broker and, optionally, its result backend.", {
        "name": s.string("The cluster's name in the monitor: in the API (cluster=), the metrics' cluster label "
                         "and the dashboard's cluster switcher. Lowercase letters, digits, '-' and '_', at most 40, "
                         "starting and ending with a letter or a digit; each name once.",
                         pattern=spec.CLUSTER_NAME_PATTERN),
        "broker": _broker(),
        "resultBackend": _result_backend(),
    }, required=["name", "broker"])
    schema = s.array(
        "Several Celery clusters watched by one monitor (its --clusters), instead of spec.broker and "
        "spec.resultBackend, which describe one cluster (named 'default'). Each URL reaches the pod as a "
        "variable of its own, read from its Secret, and CELERY_MONITOR_CLUSTERS names those variables: no "
        "URL is written in the Deployment. A URL (inline or in a Secret) may not contain ',' or whitespace.",
        cluster)
    schema.update({"minItems": 1, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})
    return schema


def _auth() -> s.Schema:
    return s.obj("Who may open the monitor.", {
        "basic": s.obj("HTTP Basic authentication for the pages and the API.", {
            "enabled": s.boolean("Require a user name and password.", default=True),
            "secretName": s.string(
                "A Secret with keys 'username' and 'password' (neither may contain ':' or ','). "
                "When absent, the operator generates '<name>-auth' with a random password.",
                pattern=spec.SECRET_NAME_PATTERN),
        }, defaulted=True),
        "oauth2": s.obj("Sign-in through an OAuth2/OIDC provider.", {
            "provider": s.string("Provider as the monitor's --auth_provider accepts it: google, github, "
                                 "gitlab, okta or oidc (any OpenID Connect issuer)."),
            "clientId": s.string("OAuth2 client id (--oauth2_key)."),
            "clientSecretRef": _secret_key_ref("A Secret key holding the OAuth2 client secret.",
                                               spec.DEFAULT_CLIENT_SECRET_KEY),
            "redirectUri": s.string("Callback URL registered with the provider (--oauth2_redirect_uri)."),
            "emailRegex": s.string("Regular expression the signed-in e-mail address must match (--auth); "
                                   "required unless gitlabGroups says who may sign in ('.*' lets every "
                                   "account of the provider in)."),
            "oktaBaseUrl": s.string("Okta's authorization server URL, https (--oauth2_okta_base_url); "
                                    "required with provider okta."),
            "discoveryUrl": s.string("The issuer's OpenID Connect discovery URL, https "
                                     "(--oauth2_discovery_url); required with provider oidc."),
            "gitlabGroups": s.array("GitLab groups whose members may sign in (--gitlab_auth_allowed_groups).",
                                    s.string("A GitLab group path.")),
        }, required=["provider", "clientId", "clientSecretRef"]),
        "readOnly": s.boolean("Hide and refuse every control action (shut down, revoke, pool resize...).",
                              default=False),
    }, defaulted=True)


def _database() -> s.Schema:
    return s.obj(
        "A PostgreSQL history shared by every replica (the monitor's CELERY_MONITOR_DB): one replica "
        "ingests, the others stand by and serve the same answers. With it no claim is used (spec.persistence "
        "is ignored), the Deployment rolls one pod at a time, its pods prefer different nodes and, with more "
        "than one replica, a PodDisruptionBudget keeps one serving. Exactly one of url, secretKeyRef and "
        "cnpgCluster.", {
            "url": s.string("A postgresql:// URL given inline. Refused when it carries a password: use "
                            "secretKeyRef then."),
            "secretKeyRef": _secret_key_ref("A Secret key holding the postgresql:// URL.", spec.DEFAULT_URL_KEY),
            "cnpgCluster": s.string(
                f"The name of a CloudNativePG Cluster in this namespace: its application Secret "
                f"'<cluster>{spec.CNPG_SECRET_SUFFIX}', key '{spec.CNPG_URI_KEY}', is read.",
                pattern=spec.NAME_PATTERN),
        }, rules=[("[has(self.url), has(self.secretKeyRef), has(self.cnpgCluster)].filter(x, x).size() == 1",
                   "set exactly one of url, secretKeyRef or cnpgCluster")])


def _persistence() -> s.Schema:
    return s.obj("Task history on a PersistentVolumeClaim, kept across restarts (unused with spec.database).", {
        "enabled": s.boolean("Mount a PersistentVolumeClaim at /data; otherwise history lives in an emptyDir.",
                             default=True),
        "size": s.string("Requested storage; it can grow later but not shrink.", default=spec.DEFAULT_STORAGE_SIZE),
        "storageClassName": s.string("StorageClass of the claim; the cluster default when absent."),
        "accessMode": s.string("Access mode of the claim.", default=spec.DEFAULT_ACCESS_MODE,
                               enum=spec.ACCESS_MODES),
        "keepOnDelete": s.boolean("Keep the claim (and the history) when the CeleryMonitor is deleted.",
                                  default=False),
    }, defaulted=True)


def _retention() -> s.Schema:
    return s.obj("How much the monitor keeps.", {
        "maxTasks": s.integer("Tasks kept before the oldest are dropped (--max_tasks).",
                              default=spec.DEFAULT_MAX_TASKS, minimum=1),
        "maxTaskAge": s.string("Tasks first seen longer ago than this are deleted, oldest first, failures too "
                               "(--max_task_age): a number of seconds, or with one unit letter: 45s, 30m, 12h, "
                               "7d, 2w. Kept whatever their age when absent."),
        "maxWorkers": s.integer("Workers kept (--max_workers).", default=spec.DEFAULT_MAX_WORKERS, minimum=1),
        "purgeOfflineWorkers": s.integer("Forget workers offline for this many seconds "
                                         "(--purge_offline_workers).", minimum=1),
    }, defaulted=True)


def _service() -> s.Schema:
    return s.obj("The Service in front of the monitor.", {
        "type": s.string("Service type.", default=spec.DEFAULT_SERVICE_TYPE, enum=spec.SERVICE_TYPES),
        "port": s.integer("Service port.", default=naming.MONITOR_PORT, minimum=1, maximum=65535),
        "annotations": s.string_map("Extra annotations on the Service."),
    }, defaulted=True)


def _ingress() -> s.Schema:
    return s.obj("An Ingress to reach the monitor from outside; long proxy timeouts keep WebSockets open.", {
        "enabled": s.boolean("Create the Ingress.", default=False),
        "className": s.string("IngressClass to use; the cluster default when absent."),
        "host": s.string("Host name to serve."),
        "pathPrefix": s.string("Path to serve the monitor under; also passed as --url_prefix.",
                               default=spec.DEFAULT_PATH_PREFIX, pattern=spec.PATH_PREFIX_PATTERN),
        "tls": s.obj("TLS termination at the Ingress.", {
            "secretName": s.string("Secret of type kubernetes.io/tls for the host.",
                                   pattern=spec.SECRET_NAME_PATTERN),
        }),
        "annotations": s.string_map("Extra annotations on the Ingress; they win over the operator's own."),
    }, defaulted=True)


def _http_route() -> s.Schema:
    return s.obj("A Gateway API HTTPRoute instead of an Ingress.", {
        "enabled": s.boolean("Create the HTTPRoute.", default=False),
        "parentRefs": s.array("Gateways to attach the route to.", s.obj("A Gateway.", {
            "name": s.string("Name of the Gateway."),
            "namespace": s.string("Namespace of the Gateway; the CeleryMonitor's when absent."),
            "sectionName": s.string("Listener of the Gateway to attach to."),
        }, required=["name"])),
        "hostnames": s.array("Host names to serve.", s.string("A host name.")),
        "pathPrefix": s.string("Path to serve the monitor under; also passed as --url_prefix.",
                               default=spec.DEFAULT_PATH_PREFIX, pattern=spec.PATH_PREFIX_PATTERN),
    }, defaulted=True)


def _trusted_proxies() -> s.Schema:
    schema = s.array(
        "Addresses or networks (CIDR) of the proxies allowed to set X-Forwarded-For, -Proto and -Host, "
        "passed as --trusted_proxies with --xheaders when an Ingress or HTTPRoute is enabled. "
        f"Default: the private and loopback ranges ({', '.join(spec.DEFAULT_TRUSTED_PROXIES)}), "
        "since the ingress controller's pod address is not known in advance; narrow it to your "
        "controller's pod network so other pods cannot pass for a client.",
        s.string("An IP address or a network such as 10.0.0.0/8.", pattern=spec.PROXY_PATTERN))
    schema.update({"minItems": 1, "maxItems": spec.MAX_TRUSTED_PROXIES, "x-kubernetes-list-type": "set"})
    return schema


def _service_monitor() -> s.Schema:
    return s.obj("A Prometheus Operator ServiceMonitor scraping /metrics. When the monitor has a login, "
                 "/metrics asks for credentials too, and Prometheus sends the read-only token the operator "
                 "keeps in the Secret '<name>-metrics' (never the admin login).", {
        "enabled": s.boolean("Create the ServiceMonitor (needs the Prometheus Operator CRDs).", default=False),
        "interval": s.string("Scrape interval.", default=spec.DEFAULT_SCRAPE_INTERVAL, pattern=spec.DURATION_PATTERN),
        "scrapeTimeout": s.string("Scrape timeout; Prometheus' default when absent.", pattern=spec.DURATION_PATTERN),
        "labels": s.string_map("Labels your Prometheus' serviceMonitorSelector looks for."),
        "tls": s.obj("When the monitor serves HTTPS itself (--certfile in extraArgs or extraEnv), Prometheus "
                     "scrapes over HTTPS and checks the certificate with these.", {
            "caSecretKeyRef": _secret_key_ref("A Secret key holding the CA certificate (PEM) that signed the "
                                              "monitor's certificate.", spec.DEFAULT_CA_KEY),
            "serverName": s.string("The name to verify the certificate against, when it is not the "
                                   "Service's address."),
            "insecureSkipVerify": s.boolean("Skip the certificate check (Prometheus then sends its token to "
                                            "whoever answers: for tests only).", default=False),
        }),
    }, defaulted=True)


def _prometheus_rule() -> s.Schema:
    return s.obj("A Prometheus Operator PrometheusRule with the monitor's alert rules.", {
        "enabled": s.boolean("Create the PrometheusRule (needs the Prometheus Operator CRDs).", default=False),
        "labels": s.string_map("Labels your Prometheus' ruleSelector looks for."),
    }, defaulted=True)


def _autoscaling() -> s.Schema:
    return s.obj("Scale a worker Deployment on the backlog the monitor measures for its queues: messages "
                 "waiting in the broker (Redis priority sub-queues included) plus tasks workers prefetched "
                 "and have not started. With KEDA (keda.sh CRDs served) a ScaledObject, otherwise an "
                 "autoscaling/v2 HorizontalPodAutoscaler on the external metric celery_monitor_queue_backlog "
                 "(needs an external-metrics adapter such as prometheus-adapter).", {
        "enabled": s.boolean("Create the autoscaler.", default=False),
        "workerDeployment": s.string("The worker Deployment to scale, in the CeleryMonitor's namespace.",
                                     pattern=spec.SECRET_NAME_PATTERN),
        "queues": s.array("Queues the workers consume; their backlogs are summed (also passed as --queues, "
                          "so they are measured while no worker runs).", s.string("A queue name (no ',').")),
        "cluster": s.string("With spec.clusters: the cluster whose queues the workers consume; only its "
                            "backlog is summed (without it, the queues of those names in every cluster).",
                            pattern=spec.CLUSTER_NAME_PATTERN),
        "minReplicas": s.integer("Fewest workers; 0 scales to zero (KEDA only).",
                                 default=spec.DEFAULT_MIN_WORKERS, minimum=0),
        "maxReplicas": s.integer("Most workers.", default=spec.DEFAULT_MAX_WORKERS_REPLICAS, minimum=1),
        "backlogPerReplica": s.integer("Backlog one worker is expected to handle: the target per replica.",
                                       default=spec.DEFAULT_BACKLOG_PER_WORKER, minimum=1),
        "source": s.string("Where KEDA reads the backlog: the monitor's own API (/api/queues/backlog, with "
                           "the read-only token of '<name>-metrics'; KEDA 2.13 or later, for its bearer mode) or "
                           "Prometheus.",
                           default=spec.DEFAULT_AUTOSCALING_SOURCE, enum=spec.AUTOSCALING_SOURCES),
        "prometheus": s.obj("The Prometheus that scrapes this monitor (source Prometheus).", {
            "serverAddress": s.string("Its URL, e.g. http://prometheus-operated.monitoring:9090."),
        }),
        "pollingInterval": s.integer("Seconds between KEDA's reads.", default=spec.DEFAULT_POLLING_SECONDS,
                                     minimum=1),
        "cooldownPeriod": s.integer("Seconds KEDA waits after the last activity before scaling to zero.",
                                    default=spec.DEFAULT_COOLDOWN_SECONDS, minimum=0),
        "podDeletionCost": s.obj("Keep controller.kubernetes.io/pod-deletion-cost on the worker pods equal "
                                 "to their running tasks, so a scale-down removes idle workers first.", {
            "enabled": s.boolean("Annotate the worker pods.", default=False),
        }),
    }, rules=[("!has(self.enabled) || !self.enabled || (has(self.workerDeployment) && has(self.queues) && "
               "size(self.queues) > 0)", "name workerDeployment and at least one queue")])


def spec_schema() -> s.Schema:
    """The schema of ``spec``, also the input of the reference documentation."""
    return s.obj("Desired state of one monitor for one Celery cluster (spec.broker) or several (spec.clusters).", {
        "broker": _broker(),
        "resultBackend": _result_backend(),
        "clusters": _clusters(),
        "image": s.string("Monitor container image.", default=naming.DEFAULT_IMAGE),
        "imagePullPolicy": s.string("When to pull the image.", default=spec.DEFAULT_PULL_POLICY,
                                    enum=spec.PULL_POLICIES),
        "imagePullSecrets": s.array("Secrets for pulling the image.", s.obj("A Secret reference.", {
            "name": s.string("Name of a Secret of type kubernetes.io/dockerconfigjson."),
        }, required=["name"])),
        "replicas": s.integer("Number of monitor pods; more than one needs spec.database.",
                              default=spec.DEFAULT_REPLICAS, minimum=0),
        "auth": _auth(),
        "database": _database(),
        "persistence": _persistence(),
        "retention": _retention(),
        "service": _service(),
        "ingress": _ingress(),
        "httpRoute": _http_route(),
        "trustedProxies": _trusted_proxies(),
        "serviceMonitor": _service_monitor(),
        "prometheusRule": _prometheus_rule(),
        "autoscaling": _autoscaling(),
        "resources": s.obj("CPU and memory for the monitor container.", {
            "limits": s.quantity_map("Upper bounds, e.g. memory: 1Gi."),
            "requests": s.quantity_map("What the scheduler reserves, e.g. cpu: 100m."),
        }),
        "nodeSelector": s.string_map("Node labels the pod must run on."),
        "tolerations": s.array("Taints the pod tolerates.", s.free_object("A Kubernetes Toleration.")),
        "affinity": s.free_object("A Kubernetes Affinity for the pod."),
        "podAnnotations": s.string_map("Extra annotations on the pod."),
        "podLabels": s.string_map("Extra labels on the pod."),
        "extraArgs": s.array("Extra command-line options for the monitor, e.g. --natural_time=true.",
                             s.string("One option.")),
        "extraEnv": s.array("Extra environment variables for the monitor container.",
                            s.free_object("A Kubernetes EnvVar (name and value or valueFrom).")),
    }, rules=[(
        "has(self.broker) != has(self.clusters)",
        "set exactly one of spec.broker and spec.clusters",
    ), (
        "!has(self.clusters) || !has(self.resultBackend)",
        "spec.resultBackend goes with spec.broker; give each cluster of spec.clusters its own resultBackend",
    ), (
        "!(has(self.ingress) && has(self.httpRoute) && has(self.ingress.enabled) && "
        "has(self.httpRoute.enabled) && self.ingress.enabled && self.httpRoute.enabled)",
        "enable spec.ingress or spec.httpRoute, not both",
    )])


def status_schema() -> s.Schema:
    condition = s.obj("One aspect of the monitor's state.", {
        "type": s.string("Ready, Reconciled, Available, PersistenceBound, MonitoringConfigured or Exposed."),
        "status": s.string("Whether the condition holds.", enum=("True", "False", "Unknown")),
        "reason": s.string("A CamelCase word for machines."),
        "message": s.string("What happened, for people."),
        "lastTransitionTime": s.string("When the status last changed.", fmt="date-time"),
        "observedGeneration": s.integer("The generation this condition was computed from.", fmt="int64"),
    }, required=["type", "status"])
    conditions = s.array("Current conditions; Ready sums up the others.", condition)
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return s.obj("Observed state, written by the operator.", {
        "observedGeneration": s.integer("The generation of the spec last acted upon.", fmt="int64"),
        "conditions": conditions,
        "url": s.string("Where to open the monitor."),
        "replicas": s.integer("Pods the Deployment asks for."),
        "readyReplicas": s.integer("Pods that pass their readiness probe."),
    })


def render_crd() -> dict[str, Any]:
    """The full CustomResourceDefinition of CeleryMonitor."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{naming.PLURAL}.{naming.GROUP}",
            "labels": {"app.kubernetes.io/name": "celery-monitor-operator",
                       "app.kubernetes.io/part-of": "celery-monitor"},
        },
        "spec": {
            "group": naming.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": naming.KIND,
                "listKind": f"{naming.KIND}List",
                "plural": naming.PLURAL,
                "singular": naming.SINGULAR,
                "shortNames": list(naming.SHORT_NAMES),
                "categories": list(naming.CATEGORIES),
            },
            "versions": [{
                "name": naming.VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Ready", "type": "string", "description": "Whether the monitor is ready.",
                     "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                    {"name": "Reason", "type": "string", "priority": 1,
                     "description": "Why it is or is not ready.",
                     "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
                    {"name": "URL", "type": "string", "description": "Where to open the monitor.",
                     "jsonPath": ".status.url"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": s.obj(
                    "CeleryMonitor deploys and keeps running a Celery Monitor for one or more Celery clusters.", {
                        "apiVersion": s.string("Versioned schema of this representation of an object."),
                        "kind": s.string("REST resource this object represents."),
                        "metadata": {"type": "object"},
                        "spec": spec_schema(),
                        "status": status_schema(),
                    }, required=["spec"])},
            }],
        },
    }
