"""The authentication options: Flower's names and environment variables, checked once at start-up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.auth_stack import token_entry
from support.processes import BIN

from celery_monitor.cli.config import ConfigError, load_settings

OIDC = ["--auth_provider=oidc", "--oauth2_key=k", "--oauth2_secret=s", "--auth=.*@example\\.com",
        "--oauth2_discovery_url=https://sso.example.com/.well-known/openid-configuration"]


@pytest.mark.parametrize("argv, option, message", [
    (["--basic_auth=alice"], "basic_auth", "user:password"),
    (["--basic_auth=alice:$2b$12$nope"], "basic_auth", "malformed bcrypt hash"),
    (["--api_tokens=ci:admin:sha256:" + "0" * 64], "api_tokens", "scope one of"),
    (["--auth=me@(example.com"], "auth", "not a regular expression"),
    (["--redact=password"], "redact", "expected one of"),
    (["--cookie_secret=short"], "cookie_secret", "too short"),
    (["--metrics_auth=sometimes"], "metrics_auth", "none, basic, token or any"),
    (["--metrics_auth=token"], "metrics_auth", "needs --api_tokens"),
    (["--auth_provider=facebook"], "auth_provider", "unknown provider"),
    (["--auth_provider=google", "--oauth2_key=k"], "oauth2_secret", "needs --oauth2_secret"),
    (["--auth_provider=google", "--oauth2_key=k", "--oauth2_secret=s"], "auth", "who may sign in"),
    (["--auth_provider=okta", "--oauth2_key=k", "--oauth2_secret=s", "--auth=.*"], "oauth2_okta_base_url", "Okta"),
    ([*OIDC[:4], "--oauth2_discovery_url=http://sso.example.com/x"], "oauth2_discovery_url", "https"),
    ([*OIDC, "--replicas=3"], "cookie_secret", "replicas"),
    (["--oauth2_redirect_uri=/login"], "oauth2_redirect_uri", "absolute"),
    (["--trusted_proxies=10.0.0.0/8,ingress.local"], "trusted_proxies", "'ingress.local' is not an IP address"),
    (["--trusted_proxies=10.0.0.0/33"], "trusted_proxies", "CIDR network"),
])
def test_bad_values_name_the_option(argv: list[str], option: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(argv, environ={})
    assert caught.value.option == option


def test_good_combinations_and_flowers_environment() -> None:
    settings = load_settings([*OIDC, "--cookie_secret=" + "x" * 32, "--replicas=2"], environ={})
    assert settings.auth_provider == "oidc" and settings.replicas == 2
    environ = {
        "FLOWER_AUTH_PROVIDER": "flower.views.auth.GithubLoginHandler", "FLOWER_OAUTH2_KEY": "k",
        "FLOWER_OAUTH2_SECRET": "s", "FLOWER_AUTH": "me@example.com", "FLOWER_GITHUB_OAUTH_DOMAIN": "github.acme.com",
        "FLOWER_GITLAB_AUTH_ALLOWED_GROUPS": "acme/a,acme/b", "FLOWER_GITLAB_MIN_ACCESS_LEVEL": "30",
        "CELERY_MONITOR_API_TOKENS": token_entry("ci", "full", "t"), "CELERY_MONITOR_REDACT": "kwargs.password,args.2",
    }
    settings = load_settings([], environ=environ)
    assert settings.github_oauth_domain == "github.acme.com"
    assert settings.gitlab_auth_allowed_groups == ["acme/a", "acme/b"] and settings.gitlab_min_access_level == 30
    assert settings.redact == ["kwargs.password", "args.2"]


def test_the_command_refuses_bad_options_in_one_line_without_the_secret() -> None:
    result = subprocess.run([str(BIN / "celery-monitor"), "--basic_auth=admin:$2b$12$not-a-real-hash-value"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--basic_auth" in result.stderr and "not-a-real-hash-value" not in result.stderr


def test_settings_never_show_their_secrets() -> None:
    settings = load_settings(["--basic_auth=admin:pw-secret", "--cookie_secret=" + "c" * 20 + "-secret",
                              "--broker=redis://:broker-secret@127.0.0.1:6379/0",
                              "--api_tokens=" + token_entry("ci", "full", "t")], environ={})
    text = repr(settings)
    assert "basic_auth='***'" in text and "max_tasks=100000" in text
    for secret in ("pw-secret", "c" * 20 + "-secret", "broker-secret", "sha256:"):
        assert secret not in text


def test_trusted_proxies_from_every_source(tmp_path: Path) -> None:
    assert load_settings([], environ={}).trusted_proxies == ["127.0.0.1", "::1"]
    assert load_settings(["--xheaders=True", "--trusted_proxies=10.0.0.0/8, fd00::/8"], environ={}
                         ).trusted_proxies == ["10.0.0.0/8", "fd00::/8"]
    assert load_settings([], environ={"FLOWER_TRUSTED_PROXIES": "*"}).trusted_proxies == ["*"]
    assert load_settings([], environ={"CELERY_MONITOR_TRUSTED_PROXIES": "192.0.2.1", "FLOWER_TRUSTED_PROXIES": "*"}
                         ).trusted_proxies == ["192.0.2.1"]
    conf = tmp_path / "flowerconfig.py"
    conf.write_text("xheaders = True\ntrusted_proxies = ['172.16.0.0/12']\n")
    assert load_settings([f"--conf={conf}"], environ={}).trusted_proxies == ["172.16.0.0/12"]
    conf.write_text("trusted_proxies = ['172.16.0.0/12', 'proxy']\n")
    with pytest.raises(ConfigError, match="--trusted_proxies: 'proxy' is not an IP address"):
        load_settings([f"--conf={conf}"], environ={})


def test_a_bad_trusted_proxy_stops_the_command_in_one_line() -> None:
    result = subprocess.run([str(BIN / "celery-monitor"), "--xheaders", "--trusted_proxies=10.0.0.0/8,nginx"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("celery-monitor: error: --trusted_proxies: 'nginx' is not an IP address")
