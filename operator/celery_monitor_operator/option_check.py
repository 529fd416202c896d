"""The monitor's own option checks, run on the options the operator renders for it.

A spec the monitor would refuse at start-up (OAuth without anyone allowed to sign in, Okta without
its server, an extra option it does not know...) is refused here, before anything is applied, with
the field to fix: the pod would only crash-loop. The checks are the monitor's
(``celery_monitor.cli.config.check_options``), so the operator and the monitor cannot disagree.

Secret values are not known here (and must not appear in a message): each variable read from a
Secret gets a stand-in the checks accept; what the Secrets really hold is checked where they are
read (:mod:`.reconcile`).
"""

from __future__ import annotations

import re

from celery_monitor.cli import config
from celery_monitor_operator import spec, spec_reader
from celery_monitor_operator.renderers import deployment, secret

# The CRD field behind each monitor option the operator renders from the spec; any other option
# comes from spec.extraArgs or spec.extraEnv.
FIELDS = {
    "auth": "spec.auth.oauth2.emailRegex",
    "auth_provider": "spec.auth.oauth2.provider",
    "oauth2_key": "spec.auth.oauth2.clientId",
    "oauth2_secret": "spec.auth.oauth2.clientSecretRef",
    "oauth2_redirect_uri": "spec.auth.oauth2.redirectUri",
    "oauth2_okta_base_url": "spec.auth.oauth2.oktaBaseUrl",
    "oauth2_discovery_url": "spec.auth.oauth2.discoveryUrl",
    "gitlab_auth_allowed_groups": "spec.auth.oauth2.gitlabGroups",
    "trusted_proxies": "spec.trustedProxies",
    "max_tasks": "spec.retention.maxTasks",
    "max_task_age": "spec.retention.maxTaskAge",
    "max_workers": "spec.retention.maxWorkers",
    "purge_offline_workers": "spec.retention.purgeOfflineWorkers",
    "url_prefix": "spec.ingress.pathPrefix or spec.httpRoute.pathPrefix",
    "clusters": "spec.clusters",
}
# Stand-ins for the variables read from Secrets: values the checks accept, whatever the Secret holds.
STAND_INS = {
    "CELERY_MONITOR_BROKER": "redis://stand-in:6379/0",
    "CELERY_MONITOR_BROKER_API": "http://stand-in:15672/api/",
    "CELERY_MONITOR_RESULT_BACKEND": "redis://stand-in:6379/1",
    deployment.DATABASE_ENV: "postgresql://stand-in:5432/stand-in",
    "CELERY_MONITOR_COOKIE_SECRET": "stand-in-cookie-secret-of-some-length",
    deployment.BASIC_USER_ENV: "stand-in-user",
    deployment.BASIC_PASSWORD_ENV: "stand-in-password",
    "CELERY_MONITOR_API_TOKENS": secret.metrics_token_entry(secret.METRICS_TOKEN_PREFIX + "stand-in"),
}
STAND_IN = "stand-in"
# The variables of spec.clusters' URLs stand in like the single broker's of the same kind.
_CLUSTER_VARIABLE = re.compile(rf"^{deployment.CLUSTER_VARIABLE_PREFIX}[0-9]+_"
                               rf"(?P<part>{'|'.join(part for part, _ in deployment.CLUSTER_PARTS)})$")
# Kubernetes expands $(VAR) from the variables before it, and "$$" to "$".
_REFERENCE = re.compile(r"\$\$|\$\((\w+)\)")


def _stand_in(name: str) -> str:
    found = _CLUSTER_VARIABLE.match(name)
    if found is not None:
        return STAND_INS[f"CELERY_MONITOR_{found.group('part')}"]
    return STAND_INS.get(name, STAND_IN)


def _unseen(monitor: spec.CeleryMonitorResource) -> set[str]:
    """Variables of spec.extraEnv read from elsewhere (a Secret, a ConfigMap): their value is unknown."""
    return {str(item["name"]) for item in monitor.spec.pod.extra_env if "value" not in item}


def environment(monitor: spec.CeleryMonitorResource) -> dict[str, str]:
    """The container's variables as the kubelet would set them, with stand-ins for Secret values."""
    env: dict[str, str] = {}
    unseen = _unseen(monitor)
    for var in deployment.monitor_env(monitor):
        raw = var.get("value")
        if var["name"] in unseen:
            continue
        if raw is None:
            raw = _stand_in(var["name"])
        env[var["name"]] = _REFERENCE.sub(
            lambda found: "$" if found.group(1) is None else env.get(found.group(1), found.group(0)), str(raw))
    return env


def problems(monitor: spec.CeleryMonitorResource) -> list[spec_reader.Problem]:
    """Why the monitor would refuse to start with what the operator renders, by field; empty when it would start."""
    try:
        config.check_options(deployment.monitor_args(monitor), environment(monitor))
    except config.ConfigError as error:
        if _unseen(monitor):
            return []  # a variable the operator cannot see may be what the monitor lacks here: let it start
        field = FIELDS.get(error.option, "spec.extraArgs or spec.extraEnv")
        return [spec_reader.Problem(spec_reader.INVALID_SPEC, f"{field}: the monitor refuses {error}")]
    return []


def check(monitor: spec.CeleryMonitorResource) -> None:
    """Raise :class:`spec_reader.SpecError` when the monitor would refuse the options it gets."""
    found = problems(monitor)
    if found:
        raise spec_reader.SpecError(found)
