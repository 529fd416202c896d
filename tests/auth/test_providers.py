"""Each provider's answer about its user, turned into the addresses --auth is asked about."""

from __future__ import annotations

import pytest

from celery_monitor.auth.oauth import providers
from celery_monitor.auth.oauth.providers import Denied, ProviderSettings, Unverified


@pytest.mark.parametrize("value, name", [
    ("google", "google"), ("GitHub", "github"), ("gitlab", "gitlab"), ("okta", "okta"), ("oidc", "oidc"),
    ("flower.views.auth.GoogleAuth2LoginHandler", "google"), ("flower.views.auth.GithubLoginHandler", "github"),
    ("flower.views.auth.GitLabLoginHandler", "gitlab"), ("flower.views.auth.OktaLoginHandler", "okta"),
    ("facebook", None), ("flower.views.auth.Nope", None),
])
def test_provider_names_ours_and_flowers(value: str, name: str | None) -> None:
    assert providers.provider_name(value) == name


def test_google_vouches_for_gmail_and_workspace_addresses_only() -> None:
    assert providers.google_emails({"email": "me@gmail.com", "email_verified": True}) == ["me@gmail.com"]
    workspace = {"email": "me@example.com", "email_verified": True, "hd": "example.com"}
    assert providers.google_emails(workspace) == ["me@example.com"]
    # A Google account opened with someone's own address: Google checked it once, is not its authority.
    with pytest.raises(Unverified, match="neither a Gmail address nor a Google Workspace account"):
        providers.google_emails({"email": "me@example.com", "email_verified": True})
    for claims in ({"email": "me@gmail.com"}, {"email": "me@gmail.com", "email_verified": False},
                   {**workspace, "email_verified": "false"}):
        with pytest.raises(Unverified, match="email_verified is not true"):
            providers.google_emails(claims)


def test_openid_issuers_need_email_verified() -> None:
    for verified in (True, "true", "TRUE"):
        claims = {"email": "me@example.com", "email_verified": verified}
        assert providers.openid_emails(claims) == ["me@example.com"]
    with pytest.raises(Unverified, match="no email_verified claim"):
        providers.openid_emails({"sub": "1", "email": "me@example.com"})
    for verified in (False, "false", None, 1, "yes"):
        with pytest.raises(Unverified, match="email_verified is not true"):
            providers.openid_emails({"email": "me@example.com", "email_verified": verified})
    with pytest.raises(Denied, match="did not share"):
        providers.openid_emails({"sub": "1"})


def test_entra_id_vouches_with_xms_edov() -> None:
    entra = {"iss": "https://login.microsoftonline.com/tenant-id/v2.0", "email": "me@example.com", "xms_edov": True}
    assert providers.openid_emails(entra) == ["me@example.com"]
    with pytest.raises(Unverified):
        providers.openid_emails({**entra, "xms_edov": False})
    with pytest.raises(Unverified):  # only Microsoft's issuers mean anything by xms_edov
        providers.openid_emails({**entra, "iss": "https://idp.example.com/"})


def test_refusals_keep_the_address_out_of_the_logged_reason() -> None:
    with pytest.raises(Unverified) as refused:
        providers.openid_emails({"email": "me@example.com\nforged line", "email_verified": False}, "Okta")
    assert refused.value.email == "me@example.com\nforged line"
    assert "me@example.com" not in refused.value.reason and "\n" not in refused.value.reason
    assert refused.value.heading == "E-mail address not verified"
    assert "me@example.com" in str(refused.value) and "Okta" in str(refused.value)


def test_github_uses_verified_addresses_primary_first() -> None:
    emails = [
        {"email": "old@example.org", "verified": True, "primary": False},
        {"email": "unverified@example.com", "verified": False, "primary": False},
        {"email": "me@example.com", "verified": True, "primary": True},
    ]
    assert providers.github_emails(emails) == ["me@example.com", "old@example.org"]
    with pytest.raises(Denied, match="no verified"):
        providers.github_emails([{"email": "x@example.com", "verified": False, "primary": True}])


def test_gitlab_groups_and_account_state() -> None:
    user = {"email": "me@example.com", "state": "active", "confirmed_at": "2024-01-01T00:00:00Z"}
    groups = [{"full_path": "acme/platform"}, {"full_path": "acme"}]
    assert providers.gitlab_emails(user, groups, ["acme/platform"]) == ["me@example.com"]
    assert providers.gitlab_emails(user, [], []) == ["me@example.com"]
    with pytest.raises(Denied, match="allowed group"):
        providers.gitlab_emails(user, groups, ["acme/secret"])
    with pytest.raises(Denied, match="allowed group"):
        providers.gitlab_emails(user, [{"full_path": "acme/platform-evil"}], ["acme/platform"])
    with pytest.raises(Denied, match="not active"):
        providers.gitlab_emails({**user, "state": "blocked"}, groups, [])
    for unconfirmed in ({**user, "confirmed_at": None}, {k: v for k, v in user.items() if k != "confirmed_at"}):
        with pytest.raises(Unverified, match="not confirmed"):
            providers.gitlab_emails(unconfirmed, groups, [])


def test_endpoints_per_provider() -> None:
    google = ProviderSettings("google").client_kwargs()
    assert google["server_metadata_url"] == "https://accounts.google.com/.well-known/openid-configuration"
    assert google["client_kwargs"] == {"scope": "openid email profile", "code_challenge_method": "S256"}
    okta = ProviderSettings("okta", okta_base_url="https://acme.okta.com/oauth2/default/").client_kwargs()
    assert okta["server_metadata_url"] == "https://acme.okta.com/oauth2/default/.well-known/openid-configuration"
    github = ProviderSettings("github", github_domain="github.acme.com").client_kwargs()
    assert github["authorize_url"] == "https://github.acme.com/login/oauth/authorize"
    assert github["access_token_url"] == "https://github.acme.com/login/oauth/access_token"
    assert github["api_base_url"] == "https://api.github.acme.com/"
    gitlab = ProviderSettings("gitlab", gitlab_domain="git.acme.com").client_kwargs()
    assert gitlab["authorize_url"] == "https://git.acme.com/oauth/authorize"
    assert gitlab["api_base_url"] == "https://git.acme.com/api/v4/"
    assert gitlab["client_kwargs"]["scope"] == "read_api"
