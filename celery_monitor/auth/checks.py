"""Start-up checks of the authentication options: a bad value stops the monitor with one line."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from celery_monitor.auth import allow, basic, cluster_scope, proxy, redact, tokens
from celery_monitor.auth.oauth import providers

METRICS_AUTH = ("", "none", "basic", "token", "any")
MIN_COOKIE_SECRET = 16


class BadOption(ValueError):
    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(option: str, url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadOption(option, f"expected the https:// URL of {what}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise BadOption(option, f"{what} must be reached over https (http only on loopback)")


def check(values: Mapping[str, Any]) -> None:
    """Raise BadOption for the first option that is wrong or missing for the login methods chosen."""
    parsers: tuple[tuple[str, Callable[[Any], object], Any], ...] = (
        ("basic_auth", basic.parse_pairs, []),
        ("api_tokens", tokens.parse_tokens, []),
        ("auth", allow.EmailPolicy, ""),
        ("redact", redact.parse_paths, []),
        ("trusted_proxies", proxy.TrustedProxies.parse, []),
        ("cluster_access", cluster_scope.parse_access, []),
    )
    for option, parse, empty in parsers:
        try:
            parse(values.get(option) or empty)
        except ValueError as exc:
            raise BadOption(option, str(exc)) from None
    secret = values.get("cookie_secret") or ""
    if secret and len(secret) < MIN_COOKIE_SECRET:
        raise BadOption("cookie_secret", f"too short: use at least {MIN_COOKIE_SECRET} random characters")
    metrics_auth = (values.get("metrics_auth") or "").lower()
    if metrics_auth not in METRICS_AUTH:
        raise BadOption("metrics_auth", "expected none, basic, token or any")
    if metrics_auth == "basic" and not values.get("basic_auth"):
        raise BadOption("metrics_auth", "basic needs users in --basic_auth")
    if metrics_auth == "token" and not values.get("api_tokens"):
        raise BadOption("metrics_auth", "token needs --api_tokens")
    if values.get("oauth2_redirect_uri"):
        parts = urlsplit(values["oauth2_redirect_uri"])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadOption("oauth2_redirect_uri", "expected an absolute http(s):// URL")
    _check_provider(values)


def _check_provider(values: Mapping[str, Any]) -> None:
    raw = values.get("auth_provider") or ""
    if not raw:
        return
    name = providers.provider_name(raw)
    if name is None:
        raise BadOption("auth_provider", f"unknown provider {raw!r} (one of {', '.join(providers.PROVIDERS)})")
    for option in ("oauth2_key", "oauth2_secret"):
        if not values.get(option):
            raise BadOption(option, f"--auth_provider={raw} needs --{option}")
    if not values.get("auth") and not (name == "gitlab" and values.get("gitlab_auth_allowed_groups")):
        raise BadOption("auth", "say who may sign in: a regular expression or |-list of emails "
                                "(--auth='.*@example\\.com'; '.*' lets every account of the provider in)")
    if name == "okta":
        if not values.get("oauth2_okta_base_url"):
            raise BadOption("oauth2_okta_base_url", "--auth_provider=okta needs the Okta authorization server URL")
        _check_url("oauth2_okta_base_url", values["oauth2_okta_base_url"], "the Okta authorization server")
    if name == "oidc":
        if not values.get("oauth2_discovery_url"):
            raise BadOption("oauth2_discovery_url", "--auth_provider=oidc needs the issuer's discovery URL")
        _check_url("oauth2_discovery_url", values["oauth2_discovery_url"], "the OpenID Connect discovery document")
    for option in ("github_oauth_domain", "gitlab_oauth_domain"):
        domain = values.get(option) or ""
        if domain and not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?", domain):
            raise BadOption(option, "expected a host name such as github.example.com")
    if (values.get("replicas") or 1) > 1 and not values.get("cookie_secret"):
        raise BadOption("cookie_secret", "several replicas share sign-ins only with the same --cookie_secret")
