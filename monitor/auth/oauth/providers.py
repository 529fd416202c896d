"""The OAuth 2 / OpenID Connect providers: where each one's endpoints are, and who its user is.

Each provider turns what it says about the user into candidate email addresses (verified ones
only); ``--auth`` then decides. GitLab may also require membership of a group. The mapping
functions are pure so they can be checked without the provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("google", "github", "gitlab", "okta", "oidc")
LABELS = {"google": "Google", "github": "GitHub", "gitlab": "GitLab", "okta": "Okta", "oidc": "single sign-on"}
# Flower's --auth_provider values name its handler classes; they select the same providers here.
FLOWER_NAMES = {
    "googleauth2loginhandler": "google", "githubloginhandler": "github",
    "gitlabloginhandler": "gitlab", "oktaloginhandler": "okta",
}  # fmt: skip
GOOGLE_DISCOVERY = "https://accounts.google.com/.well-known/openid-configuration"
OIDC_SCOPE = "openid email profile"


class Denied(Exception):
    """The provider's user may not enter; the message says why (shown to them, logged)."""


def provider_name(value: str) -> str | None:
    """Our provider name for an ``--auth_provider`` value (ours or Flower's class path), or None."""
    key = value.strip().rsplit(".", 1)[-1].lower()
    if key in PROVIDERS:
        return key
    return FLOWER_NAMES.get(key)


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    okta_base_url: str = ""
    discovery_url: str = ""
    github_domain: str = "github.com"
    gitlab_domain: str = "gitlab.com"
    gitlab_groups: tuple[str, ...] = ()
    gitlab_min_access_level: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_openid(self) -> bool:
        return self.name in ("google", "okta", "oidc")

    def discovery(self) -> str:
        if self.name == "google":
            return GOOGLE_DISCOVERY
        if self.name == "okta":
            return self.okta_base_url.rstrip("/") + "/.well-known/openid-configuration"
        return self.discovery_url

    def github_api(self) -> str:
        return f"https://api.{self.github_domain}/"

    def client_kwargs(self) -> dict[str, Any]:
        """Arguments for Authlib's ``OAuth.register``: endpoints, scope, PKCE."""
        pkce = {"code_challenge_method": "S256"}
        if self.is_openid:
            return {"server_metadata_url": self.discovery(), "client_kwargs": {"scope": OIDC_SCOPE, **pkce}}
        if self.name == "github":
            base = f"https://{self.github_domain}/login/oauth"
            return {"authorize_url": f"{base}/authorize", "access_token_url": f"{base}/access_token",
                    "api_base_url": self.github_api(),
                    "client_kwargs": {"scope": "read:user user:email", **pkce}}
        base = f"https://{self.gitlab_domain}"
        return {"authorize_url": f"{base}/oauth/authorize", "access_token_url": f"{base}/oauth/token",
                "api_base_url": f"{base}/api/v4/", "client_kwargs": {"scope": "read_api", **pkce}}


# -- what each provider says about its user ------------------------------------------------------


def openid_emails(claims: Mapping[str, Any]) -> list[str]:
    """Google, Okta and any OpenID Connect issuer: the ``email`` claim, unless marked unverified."""
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise Denied("the provider did not share an email address")
    verified = claims.get("email_verified")
    if verified is False or (isinstance(verified, str) and verified.lower() == "false"):
        raise Denied(f"the email address {email} is not verified with the provider")
    return [email]


def google_emails(claims: Mapping[str, Any]) -> list[str]:
    """Google always states whether the address is verified; an unstated one is not trusted."""
    if claims.get("email_verified") not in (True, "true"):
        raise Denied("Google did not confirm the email address is verified")
    return openid_emails(claims)


def github_emails(emails: Sequence[Mapping[str, Any]]) -> list[str]:
    """GitHub's ``/user/emails``: every verified address, the primary one first."""
    verified = [e for e in emails if e.get("verified") is True and isinstance(e.get("email"), str)]
    verified.sort(key=lambda e: e.get("primary") is not True)
    if not verified:
        raise Denied("the GitHub account has no verified email address")
    return [str(e["email"]) for e in verified]


def gitlab_emails(user: Mapping[str, Any], groups: Sequence[Mapping[str, Any]],
                  allowed_groups: Sequence[str]) -> list[str]:
    """GitLab's ``/user`` and the groups listed at the minimum access level; blocked users are out."""
    if user.get("state", "active") != "active":
        raise Denied("the GitLab account is not active")
    if allowed_groups:
        member_of = {str(g.get("full_path", "")).lower() for g in groups}
        if not member_of & {g.strip().lower() for g in allowed_groups}:
            raise Denied("the GitLab account is not a member of an allowed group at the required access level")
    email = user.get("email")
    if not isinstance(email, str) or not email:
        raise Denied("the GitLab account shares no email address")
    if user.get("confirmed_at") is None and "confirmed_at" in user:
        raise Denied(f"the email address {email} is not confirmed with GitLab")
    return [email]


async def candidate_emails(client: Any, token: Mapping[str, Any], settings: ProviderSettings) -> list[str]:
    """Ask the provider who signed in (``client`` is Authlib's client for it)."""
    if settings.is_openid:
        claims = dict(token.get("userinfo") or {})
        if not claims.get("email"):
            info = await client.userinfo(token=token)
            if claims.get("sub") and info.get("sub") != claims["sub"]:
                raise Denied("the provider's user information is about another user")
            claims.update(info)
        return google_emails(claims) if settings.name == "google" else openid_emails(claims)
    if settings.name == "github":
        response = await client.get("user/emails", token=token)
        response.raise_for_status()
        return github_emails(response.json())
    user = await client.get("user", token=token)
    user.raise_for_status()
    groups: list[dict[str, Any]] = []
    if settings.gitlab_groups:
        found = await client.get("groups", token=token, params={
            "min_access_level": settings.gitlab_min_access_level, "per_page": 100, "all_available": "false"})
        found.raise_for_status()
        groups = found.json()
    return gitlab_emails(user.json(), groups, settings.gitlab_groups)
