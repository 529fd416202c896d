"""A spec the monitor would refuse at start-up is refused by the operator, by field, with the
monitor's own reason: its option checks run on the options the operator renders."""

from __future__ import annotations

from typing import Any

import pytest
from cmon_helpers import SPECS, make_monitor

from celery_monitor.cli import config
from celery_monitor_operator import option_check, spec_reader
from celery_monitor_operator.renderers import deployment

BROKER = {"url": "redis://redis:6379/0"}
CLIENT = {"clientId": "id", "clientSecretRef": {"name": "oauth"}}


def oauth(**fields: Any) -> dict[str, Any]:
    return {"broker": BROKER, "auth": {"oauth2": {**CLIENT, **fields}}}


REFUSED = {
    "OAuth without anyone allowed to sign in": (oauth(provider="google"), "spec.auth.oauth2.emailRegex"),
    "Okta without its server": (oauth(provider="okta", emailRegex=".*"), "spec.auth.oauth2.oktaBaseUrl"),
    "Okta over plain http": (oauth(provider="okta", emailRegex=".*", oktaBaseUrl="http://example.okta.com/"),
                             "spec.auth.oauth2.oktaBaseUrl"),
    "an OIDC issuer without its discovery URL": (oauth(provider="oidc", emailRegex=".*"),
                                                 "spec.auth.oauth2.discoveryUrl"),
    "an unknown provider": (oauth(provider="myspace", emailRegex=".*"), "spec.auth.oauth2.provider"),
    "a redirect that is not a URL": (oauth(provider="github", emailRegex=".*", redirectUri="callback"),
                                     "spec.auth.oauth2.redirectUri"),
    "an email pattern that is not a regular expression": (oauth(provider="google", emailRegex="(unclosed"),
                                                          "spec.auth.oauth2.emailRegex"),
    "a certificate without its key": ({"broker": BROKER, "extraArgs": ["--certfile=/tls/tls.crt"]},
                                      "spec.extraArgs or spec.extraEnv"),
    "an option the monitor does not know": ({"broker": BROKER, "extraArgs": ["--no_such_option=1"]},
                                            "spec.extraArgs or spec.extraEnv"),
    "clusters and a single broker besides": (
        {"clusters": [{"name": "orders", "broker": {"url": "redis://r/0"}}], "extraArgs": ["--broker=redis://r/1"]},
        "spec.clusters"),  # the message goes on: "... instead of --broker"
}
ACCEPTED = {
    "GitLab groups say who may sign in": oauth(provider="gitlab", gitlabGroups=["ops", "data/platform"]),
    "Okta with its server": oauth(provider="okta", emailRegex=".*@example\\.com",
                                  oktaBaseUrl="https://example.okta.com/oauth2/default"),
    "any OIDC issuer by its discovery URL": oauth(
        provider="oidc", emailRegex=".*", discoveryUrl="https://sso.example.com/.well-known/openid-configuration"),
    "a monitor option from a Secret the operator cannot read": {
        "broker": BROKER, "extraArgs": ["--metrics_auth=token"],
        "extraEnv": [{"name": "CELERY_MONITOR_API_TOKENS", "valueFrom": {"secretKeyRef": {"name": "t", "key": "t"}}}]},
    "certificate files, which live in the pod": {
        "broker": BROKER, "extraArgs": ["--certfile=/tls/tls.crt", "--keyfile=/tls/tls.key"]},
    **{f"the {name} example spec": data for name, data in SPECS.items()},
}


@pytest.mark.parametrize("case", REFUSED, ids=REFUSED.keys())
def test_a_spec_the_monitor_would_refuse_is_refused_naming_the_field(case: str) -> None:
    data, field = REFUSED[case]

    with pytest.raises(spec_reader.SpecError) as refused:
        option_check.check(make_monitor(data))

    assert refused.value.reason == spec_reader.INVALID_SPEC
    assert str(refused.value).startswith(f"{field}: the monitor refuses --"), str(refused.value)


@pytest.mark.parametrize("case", ACCEPTED, ids=ACCEPTED.keys())
def test_a_spec_the_monitor_takes_is_accepted(case: str) -> None:
    assert option_check.problems(make_monitor(ACCEPTED[case])) == []


def test_the_login_fields_reach_the_monitor() -> None:
    monitor = make_monitor(oauth(provider="gitlab", gitlabGroups=["ops", "data/platform"],
                                 oktaBaseUrl="https://example.okta.com/oauth2/default",
                                 discoveryUrl="https://sso.example.com/.well-known/openid-configuration"))
    settings = config.load_settings(deployment.monitor_args(monitor), option_check.environment(monitor))

    assert settings.auth_provider == "gitlab"
    assert settings.gitlab_auth_allowed_groups == ["ops", "data/platform"]
    assert settings.oauth2_okta_base_url == "https://example.okta.com/oauth2/default"
    assert settings.oauth2_discovery_url == "https://sso.example.com/.well-known/openid-configuration"


def test_the_urls_of_clusters_read_from_secrets_stand_in_as_urls_of_their_kind() -> None:
    monitor = make_monitor({"clusters": [*SPECS["clusters"]["clusters"],
                                         {"name": "dollar", "broker": {"url": "redis://r/0?name=$x"}}]})

    env = option_check.environment(monitor)

    # What the monitor's own check of --clusters reads: URLs where the Secrets' values will be.
    assert env[deployment.CLUSTERS_ENV] == (
        f"orders={option_check.STAND_INS['CELERY_MONITOR_BROKER']} "
        f"result_backend={option_check.STAND_INS['CELERY_MONITOR_RESULT_BACKEND']}, "
        f"reports_eu-1=amqp://rabbitmq:5672/reports broker_api={option_check.STAND_INS['CELERY_MONITOR_BROKER_API']}, "
        "dollar=redis://r/0?name=$x")
