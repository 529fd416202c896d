"""Everything the gate and the login pages need, built once from the settings."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field

from celery_monitor.auth import allow, basic, cluster_scope, proxy, ratelimit, tokens
from celery_monitor.auth.oauth import providers
from celery_monitor.settings import Settings

log = logging.getLogger("celery_monitor.auth")

ADMIN = "admin"
READ_ONLY = "read-only"
SESSION_COOKIE = "celery_monitor_session"


@dataclass
class AuthConfig:
    users: basic.BasicUsers
    tokens: tokens.ApiTokens
    policy: allow.EmailPolicy
    provider: providers.ProviderSettings | None
    prefix: str = ""
    read_only: bool = False
    read_only_users: frozenset[str] = frozenset()
    # Subjects (users, token:NAME) limited to some clusters (--cluster_access); the rest see them all.
    cluster_access: dict[str, cluster_scope.ClusterScope] = field(default_factory=dict)
    unauthenticated_api: bool = False
    metrics_auth: str = "none"
    # Set with --xheaders: the proxies whose forwarding headers count (auth/proxy.py).
    trusted_proxies: proxy.TrustedProxies | None = None
    oauth2_key: str = ""
    oauth2_secret: str = ""
    redirect_uri: str = ""
    cookie_secret: str = ""
    secure_cookie: bool = False  # Secure on plain http too: the public URL is https
    session_max_age: int = 43_200
    failures: ratelimit.FailedLogins = field(default_factory=ratelimit.FailedLogins)
    # Sessions signed out, until their cookie would have expired anyway: here, and on the other
    # replicas of a PostgreSQL history (merged in every second; those signed out here are handed over).
    revoked: dict[str, float] = field(default_factory=dict)
    revoked_new: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthConfig:
        provider = None
        name = providers.provider_name(settings.auth_provider) if settings.auth_provider else None
        if name:
            provider = providers.ProviderSettings(
                name=name, okta_base_url=settings.oauth2_okta_base_url,
                discovery_url=settings.oauth2_discovery_url,
                github_domain=settings.github_oauth_domain or "github.com",
                gitlab_domain=settings.gitlab_oauth_domain or "gitlab.com",
                gitlab_groups=tuple(settings.gitlab_auth_allowed_groups),
                gitlab_min_access_level=settings.gitlab_min_access_level,
            )
        cookie_secret = settings.cookie_secret
        if not cookie_secret:
            cookie_secret = secrets.token_urlsafe(32)
            if provider is not None:
                log.info("no --cookie_secret: sign-ins last until the monitor restarts")
        redirect = settings.oauth2_redirect_uri
        return cls(
            users=basic.BasicUsers(settings.basic_auth),
            tokens=tokens.ApiTokens(settings.api_tokens),
            policy=allow.EmailPolicy(settings.auth),
            provider=provider,
            prefix=settings.prefix,
            read_only=settings.read_only,
            read_only_users=frozenset(u.strip().lower() for u in settings.read_only_users if u.strip()),
            cluster_access=cluster_scope.parse_access(settings.cluster_access),
            unauthenticated_api=settings.unauthenticated_api,
            metrics_auth=(settings.metrics_auth or "none").lower(),
            trusted_proxies=proxy.TrustedProxies.parse(settings.trusted_proxies) if settings.xheaders else None,
            oauth2_key=settings.oauth2_key,
            oauth2_secret=settings.oauth2_secret,
            redirect_uri=redirect,
            cookie_secret=cookie_secret,
            secure_cookie=bool(settings.certfile) or redirect.startswith("https://"),
            session_max_age=settings.session_max_age,
        )

    @property
    def has_login(self) -> bool:
        """Whether anyone must prove who they are (else the instance is open, as Flower's is)."""
        return bool(self.users) or bool(self.tokens) or self.provider is not None

    def role_of(self, user: str | None, token_scope: str | None = None) -> str:
        if self.read_only or token_scope == tokens.SCOPES[0]:
            return READ_ONLY
        if user is not None and user.lower() in self.read_only_users:
            return READ_ONLY
        return ADMIN

    def revoke(self, session_id: object) -> None:
        now = time.time()
        for known, until in list(self.revoked.items()):
            if until < now:
                del self.revoked[known]
        if isinstance(session_id, str):
            self.revoked[session_id] = now + self.session_max_age
            if self.failures.shared:  # see share()
                self.revoked_new[session_id] = now + self.session_max_age

    def share(self) -> None:
        """Replicas of one history share sign-outs and failed logins (the service exchanges them)."""
        self.failures.shared = True

    def take_new(self) -> tuple[dict[str, float], list[tuple[str, float]]]:
        """Sign-outs and failed logins seen here since the last call, for the other replicas."""
        revoked, self.revoked_new = self.revoked_new, {}
        return revoked, self.failures.take_new()

    def merge(self, revoked: dict[str, float], failures: dict[str, list[float]]) -> None:
        """Take in the sign-outs and failed logins of every replica."""
        now = time.time()
        self.revoked.update((sid, until) for sid, until in revoked.items() if until >= now)
        self.failures.merge(failures)

    def is_revoked(self, session_id: object) -> bool:
        return not isinstance(session_id, str) or session_id in self.revoked

    def allowed_origins(self) -> tuple[str, ...]:
        return (self.redirect_uri,) if self.redirect_uri else ()
