"""The OAuth 2 / OpenID Connect providers: where each one's endpoints are, and who its user is.

Each provider turns what it says about the user into candidate email addresses (only those it
vouches for: see the rules below); ``--auth`` then decides. GitLab may also require membership of
a group. The mapping functions are pure so they can be checked without the provider.
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
    """The provider's user may not enter; the message says why (shown to them)."""

    heading = "Access denied"

    def __init__(self, message: str, email: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.email = email  # for the log line, apart from the reason
        self.reason = reason or message  # for the log line: never the address itself


class Unverified(Denied):
    """The provider does not vouch for the e-mail address: nobody may sign in with it."""

    heading = "E-mail address not verified"

    def __init__(self, email: str, provider: str, rule: str) -> None:
        super().__init__(f"The e-mail address {email} is not verified with {provider} ({rule}): verify it "
                         "there, then sign in again.", email, f"e-mail address not verified ({rule})")


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
#
# An e-mail address is trusted only when the provider vouches for it; ``--auth`` then decides who
# may enter. An address a provider merely repeats (the user typed it, nobody checked it) would let
# anyone who registers that address with the provider in:
# - any OpenID Connect issuer (Okta, Keycloak, Dex...): the ``email_verified`` claim is true;
#   Microsoft Entra ID sends none, but its ``xms_edov`` claim (optional, "email domain owner
#   verified") counts when true;
# - Google: ``email_verified`` is true and Google is authoritative for the address, which by
#   Google's own rule means a Gmail address or a Google Workspace account (the ``hd`` claim);
# - GitHub: the addresses ``/user/emails`` marks ``verified``, the primary one first;
# - GitLab: the account's primary address, once confirmed (``confirmed_at`` in ``/user``).

ENTRA_ISSUERS = ("https://login.microsoftonline.com/", "https://sts.windows.net/")


def is_true(value: Any) -> bool:
    """A boolean claim as issuers send it: true, or the string "true" (some send strings)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _claimed_email(claims: Mapping[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise Denied("the provider did not share an email address", reason="no e-mail address shared")
    return email


def openid_emails(claims: Mapping[str, Any], provider: str = "the sign-in provider") -> list[str]:
    """Okta and any OpenID Connect issuer: the ``email`` claim, when the issuer says it is verified."""
    email = _claimed_email(claims)
    if is_true(claims.get("email_verified")):
        return [email]
    issuer = claims.get("iss")
    if isinstance(issuer, str) and issuer.startswith(ENTRA_ISSUERS) and is_true(claims.get("xms_edov")):
        return [email]
    stated = "email_verified is not true" if "email_verified" in claims else "no email_verified claim"
    raise Unverified(email, provider, stated)


def google_emails(claims: Mapping[str, Any]) -> list[str]:
    """Google: verified, and an address Google is authoritative for (Gmail, or a Workspace account)."""
    email = _claimed_email(claims)
    if not is_true(claims.get("email_verified")):
        raise Unverified(email, "Google", "email_verified is not true")
    if not email.lower().endswith("@gmail.com") and not claims.get("hd"):
        raise Unverified(email, "Google", "neither a Gmail address nor a Google Workspace account (no hd claim)")
    return [email]


def github_emails(emails: Sequence[Mapping[str, Any]]) -> list[str]:
    """GitHub's ``/user/emails``: every verified address, the primary one first."""
    verified = [e for e in emails if e.get("verified") is True and isinstance(e.get("email"), str)]
    verified.sort(key=lambda e: e.get("primary") is not True)
    if not verified:
        raise Denied("the GitHub account has no verified email address. Verify one with GitHub, then sign in "
                     "again.", reason="no verified e-mail address")
    return [str(e["email"]) for e in verified]


def gitlab_emails(user: Mapping[str, Any], groups: Sequence[Mapping[str, Any]],
                  allowed_groups: Sequence[str]) -> list[str]:
    """GitLab's ``/user`` and the groups listed at the minimum access level; blocked users are out."""
    if user.get("state", "active") != "active":
        raise Denied("the GitLab account is not active", reason="account not active")
    if allowed_groups:
        member_of = {str(g.get("full_path", "")).lower() for g in groups}
        if not member_of & {g.strip().lower() for g in allowed_groups}:
            raise Denied("the GitLab account is not a member of an allowed group at the required access level",
                         reason="not in an allowed group")
    email = user.get("email")
    if not isinstance(email, str) or not email:
        raise Denied("the GitLab account shares no email address", reason="no e-mail address shared")
    if not user.get("confirmed_at"):
        raise Unverified(email, "GitLab", "not confirmed")
    return [email]


def claimed_groups(claims: Mapping[str, Any]) -> list[str]:
    """The ``groups`` claim (Okta, Keycloak, Entra ID, Dex... when configured to send it), for
    ``group:NAME`` in --cluster_access; anything but a list of strings counts as no groups."""
    groups = claims.get("groups")
    if not isinstance(groups, list):
        return []
    return [group for group in groups if isinstance(group, str) and group]


async def candidate_emails(client: Any, token: Mapping[str, Any], settings: ProviderSettings,
                           groups_out: list[str] | None = None) -> list[str]:
    """Ask the provider who signed in (``client`` is Authlib's client for it); an OpenID issuer's
    ``groups`` claim is added to ``groups_out`` when given."""
    if settings.is_openid:
        claims = dict(token.get("userinfo") or {})  # the ID token's claims
        if not claims.get("email") or ("email_verified" not in claims and "xms_edov" not in claims):
            info = await client.userinfo(token=token)
            if claims.get("sub") and info.get("sub") != claims["sub"]:
                raise Denied("the provider's user information is about another user", reason="userinfo sub mismatch")
            claims.update({k: v for k, v in info.items() if k != "iss"})
        if groups_out is not None:
            groups_out.extend(claimed_groups(claims))
        if settings.name == "google":
            return google_emails(claims)
        return openid_emails(claims, "Okta" if settings.name == "okta" else "the sign-in provider")
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
