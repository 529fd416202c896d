"""Signing in with the OAuth 2 / OpenID Connect provider, and signing out.

``/login`` shows the sign-in button and is also the provider's redirect URI (as in Flower), so a
request carrying ``code``/``state``/``error`` is the provider's answer. Authlib keeps the state,
nonce and PKCE verifier in the signed session cookie, checks the state on the way back and
validates the ID token. A successful sign-in replaces the whole session (no fixation) and adds a
fresh CSRF token.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from celery_monitor.auth import cluster_scope, origin, pages
from celery_monitor.auth.config import AuthConfig
from celery_monitor.auth.oauth import client as oauth_client
from celery_monitor.auth.oauth import providers

log = logging.getLogger("celery_monitor.auth")
CALLBACK_PARAMS = ("code", "state", "error")
STYLESHEET = (Path(__file__).parent / "templates" / "auth.css").read_bytes()


def config_of(request: Request) -> AuthConfig:
    config: AuthConfig = request.app.state.auth  # set by the auth wiring; Starlette's state is untyped
    return config


def safe_next(config: AuthConfig, target: str | None) -> str:
    """A local path to return to after signing in; anything else becomes the home page."""
    home = config.prefix + "/"
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return home
    if any(ord(c) < 0x20 or c == "\x7f" for c in target):
        return home
    if config.prefix and not (target == config.prefix or target.startswith(config.prefix + "/")):
        return home
    return target


def redirect_uri(config: AuthConfig, request: Request) -> str:
    """--oauth2_redirect_uri, else this monitor's /login as the browser reached it (behind a trusted
    proxy, the scope holds the browser's scheme and Host)."""
    if config.redirect_uri:
        return config.redirect_uri
    host = request.headers.get("host", "localhost")
    return f"{request.url.scheme}://{host}{config.prefix}/login"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login(request: Request) -> Response:
    config = config_of(request)
    if config.provider is None:
        return pages.render("signed_out.html", 404, prefix=config.prefix, can_sign_in=False,
                            message="Sign-in through a provider is not configured on this monitor.")
    if any(name in request.query_params for name in CALLBACK_PARAMS):
        return await callback(request)
    return pages.render("login.html", prefix=config.prefix, next=safe_next(config, request.query_params.get("next")),
                        provider=providers.LABELS[config.provider.name], message=None)


async def start(request: Request) -> Response:
    config = config_of(request)
    if config.provider is None:
        return RedirectResponse(config.prefix + "/login", 303)
    request.session["next"] = safe_next(config, request.query_params.get("next"))
    client = oauth_client.client_for(config)
    try:
        response: Response = await client.authorize_redirect(request, redirect_uri(config, request))
    except Exception as exc:  # the provider's discovery document is unreachable or unreadable
        log.error("cannot start a sign-in with %s: %s", config.provider.name, type(exc).__name__)
        return refused(config, 502, "Sign-in unavailable", "The sign-in provider cannot be reached. Try again later.")
    return response


def refused(config: AuthConfig, status: int, heading: str, message: str) -> Response:
    return pages.render("refused.html", status, prefix=config.prefix, heading=heading, message=message)


async def callback(request: Request) -> Response:
    config = config_of(request)
    assert config.provider is not None
    client_address = _client(request)
    wait = config.failures.retry_after(client_address)
    if wait:
        response = refused(config, 429, "Too many attempts", "Too many failed sign-ins. Try again later.")
        response.headers["retry-after"] = str(wait)
        return response
    provider = config.provider.name
    client = oauth_client.client_for(config)
    # Here, not at the top: Authlib is loaded only by a monitor with OAuth sign-in (oauth/client.py).
    from authlib.integrations.base_client import MismatchingStateError, OAuthError

    try:
        token = await client.authorize_access_token(request)
        groups: list[str] = []
        emails = await providers.candidate_emails(client, token, config.provider, groups)
    except providers.Denied as exc:
        config.failures.failed(client_address, provider, exc.email, exc.reason)
        return refused(config, 403, exc.heading, str(exc))
    except MismatchingStateError:
        config.failures.failed(client_address, provider, None, "state missing or not matching (tampered or expired)")
        return refused(config, 400, "Sign-in not verified",
                       "The sign-in could not be verified (it expired, or was started elsewhere). Try again.")
    except OAuthError as exc:
        config.failures.failed(client_address, provider, None, f"provider error {exc.error!s:.60}")
        return refused(config, 400, "Sign-in failed", "The provider did not complete the sign-in.")
    except Exception as exc:  # token validation, network: tell the log the kind, never the token
        config.failures.failed(client_address, provider, None, f"sign-in could not be verified ({type(exc).__name__})")
        return refused(config, 400, "Sign-in failed", "The sign-in could not be verified. Try again.")
    allowed = next((email for email in emails if not config.policy or config.policy.allows(email)), None)
    if allowed is None:
        config.failures.failed(client_address, provider, emails[0], "not allowed by --auth")
        return refused(config, 403, "Access denied", f"{emails[0]} may not use this monitor.")
    target = safe_next(config, request.session.get("next"))
    request.session.clear()
    request.session.update(user=allowed, provider=provider, sid=secrets.token_urlsafe(16),
                           csrf=secrets.token_urlsafe(32), at=int(time.time()),
                           # Only the groups --cluster_access names: the cookie stays small.
                           groups=cluster_scope.groups_named(config.cluster_access, groups))
    log.info("%s signed in through %s from %s", allowed, provider, client_address)
    return RedirectResponse(target, 303)


async def logout_page(request: Request) -> Response:
    config = config_of(request)
    user = request.session.get("user")
    if not user:
        return signed_out(config, "You are not signed in.")
    return pages.render("logout.html", prefix=config.prefix, user=user, csrf_token=request.session.get("csrf", ""))


async def logout(request: Request) -> Response:
    config = config_of(request)
    if origin.is_cross_site(request.scope, config.allowed_origins()):
        return refused(config, 403, "Sign-out refused", "Cross-site request refused.")
    expected = request.session.get("csrf")
    requested_with = request.headers.get("x-requested-with", "").lower() == "celery-monitor"
    if expected and not requested_with:
        async with request.form() as form:
            given = form.get("csrf_token")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), str(expected).encode()):
            return refused(config, 403, "Sign-out refused", "The sign-out form expired. Reload the page and try again.")
    if request.session.get("user"):
        log.info("%s signed out", request.session.get("user"))
    config.revoke(request.session.get("sid"))
    request.session.clear()
    return signed_out(config, "You are signed out.")


def signed_out(config: AuthConfig, message: str) -> Response:
    return pages.render("signed_out.html", prefix=config.prefix, message=message,
                        can_sign_in=config.provider is not None)


async def me(request: Request) -> Response:
    """Who the gate says is asking, and what they may do (the pages hide controls for read-only users)."""
    state = request.state
    return JSONResponse({"user": state.user, "role": state.role, "auth": state.auth})


async def stylesheet(request: Request) -> Response:
    return Response(STYLESHEET, media_type="text/css", headers={"cache-control": "public, max-age=3600"})
