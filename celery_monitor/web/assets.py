"""The pages' built scripts and styles (static/dist), and what happens when they are not there.

A wheel or sdist always carries the bundle (setup.py builds it), but a monitor run from a source
tree that was never built has none: the pages then say so instead of rendering a dead form, and
the missing files answer a plain-text 404 rather than JSON in place of a script or a stylesheet.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
BUNDLE = ("dist/app.js", "dist/app.css")  # what every page links to


def missing_bundle() -> list[str]:
    """The bundle's files this installation lacks (empty when the pages can work)."""
    return [name for name in BUNDLE if not (STATIC_DIR / name).is_file()]


class AssetFiles(StaticFiles):
    """Static files whose "not found" is plain text, saying why when it is the bundle that is missing."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
            reason = "Not found"
            if path.replace("\\", "/").startswith("dist/") and missing_bundle():
                reason += ": this installation has no built web pages (open the dashboard for how to build them)"
            return PlainTextResponse(reason + "\n", status_code=404)


def static_files() -> AssetFiles:
    return AssetFiles(directory=STATIC_DIR, check_dir=False)
