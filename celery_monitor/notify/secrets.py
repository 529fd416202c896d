"""Channel secrets (webhook URLs, passwords, routing keys, signing keys): where they come from and how they are shown.

A secret is written in the configuration as the value itself, as ``env:NAME`` (read from the
monitor's environment, so a Kubernetes Secret can be passed as an environment variable) or as
``file:/path`` (read from a file, so a Secret can be mounted as a volume). It is read when the
notification is sent, so a rotated Secret is picked up without a restart. Shown back, it is masked.
"""

from __future__ import annotations

import os
from pathlib import Path

MASK = "***"
ENV = "env:"
FILE = "file:"


class SecretError(ValueError):
    """A secret reference that cannot be read: names the reference, never the value."""


def resolve(spec: str) -> str:
    """The secret's value."""
    if spec.startswith(ENV):
        name = spec[len(ENV):]
        value = os.environ.get(name)
        if value is None:
            raise SecretError(f"environment variable {name!r} is not set")
        return value
    if spec.startswith(FILE):
        path = spec[len(FILE):]
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path!r}: {exc.strerror}") from None
    return spec


def masked(spec: str) -> str:
    """What the API and the pages show: references in full (they hold no secret), values masked.

    A URL keeps its scheme and host, so an operator can tell which service it points at.
    """
    if not spec:
        return ""
    if spec.startswith((ENV, FILE)):
        return spec
    scheme, sep, rest = spec.partition("://")
    if sep and rest:
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        return f"{scheme}://{host}/{MASK}"
    return MASK
