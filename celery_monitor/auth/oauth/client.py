"""Authlib's client for the configured provider, made once per monitor.

Authlib is imported on first use: it brings in its JOSE and crypto stack (over 10 MB resident), which
a monitor without OAuth sign-in never needs.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

from celery_monitor.auth.oauth.providers import ProviderSettings

_CLIENTS: dict[int, Any] = {}


class ClientSettings(Protocol):
    """What the client is made from (an :class:`~celery_monitor.auth.config.AuthConfig`)."""

    @property
    def provider(self) -> ProviderSettings | None: ...

    @property
    def oauth2_key(self) -> str: ...

    @property
    def oauth2_secret(self) -> str: ...


def client_for(config: ClientSettings) -> Any:
    """The Starlette OAuth client for ``config.provider`` (state, nonce and PKCE kept in the session)."""
    key = id(config)
    client = _CLIENTS.get(key)
    if client is None:
        assert config.provider is not None
        with warnings.catch_warnings():
            # Authlib warns that it prefers the httpx2 package; plain httpx works the same for us.
            warnings.simplefilter("ignore", DeprecationWarning)
            from authlib.integrations.starlette_client import OAuth
        registry = OAuth()
        registry.register(
            name=config.provider.name,
            client_id=config.oauth2_key,
            client_secret=config.oauth2_secret,
            **config.provider.client_kwargs(),
        )
        client = _CLIENTS[key] = registry.create_client(config.provider.name)
    return client
