"""The web pages' scripts and styles (celery_monitor/web/static/dist), built with the machine's npm and node.

One rule for every way the package is made: setup.py runs it before a wheel, an sdist or an
editable install, and scripts/setup.d/10-frontend runs it for the development checkout.

- The bundle is *fresh* when all of its files exist and none is older than a source (package.json,
  package-lock.json, build.mjs, src/**). Then nothing runs: that is the case inside a release
  sdist (which carries both, the bundle built last) and in the Dockerfile's build stage (which
  receives the bundle from its node stage), so neither needs node.
- Otherwise ``npm ci`` (only when node_modules is older than the lock file) and ``npm run build``.
- What cannot be done ends in :class:`FrontendError`, whose message is one line saying what is
  missing and how to get it: a package never leaves here without its pages.

Standard library only: it runs inside the build backend, before any dependency is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = Path("celery_monitor/web/frontend")
DIST = Path("celery_monitor/web/static/dist")
# Everything the build writes; a wheel must carry all of it.
OUTPUTS = ("app.js", "app.css", "app.js.map", "app.css.map", "THIRD-PARTY-LICENSES.txt")
SOURCE_FILES = ("package.json", "package-lock.json", "build.mjs")
MIN_NODE = 18  # esbuild's own floor
GET_NODE = ("install Node.js 18+ and npm (e.g. `apt-get install nodejs npm`, or https://nodejs.org), "
            "or install from a release wheel or sdist, which carry the built pages")


class FrontendError(Exception):
    """The bundle cannot be had; the message is one line for the person building."""


def sources(root: Path = ROOT) -> list[Path]:
    """The files the bundle is made from (empty when the tree has no front-end sources)."""
    frontend = root / FRONTEND
    found = [frontend / name for name in SOURCE_FILES if (frontend / name).is_file()]
    if (frontend / "src").is_dir():
        found += sorted(p for p in (frontend / "src").rglob("*") if p.is_file())
    return found


def outputs(root: Path = ROOT) -> list[Path]:
    return [root / DIST / name for name in OUTPUTS]


def missing_outputs(root: Path = ROOT) -> list[str]:
    return [path.name for path in outputs(root) if not path.is_file()]


def is_fresh(root: Path = ROOT) -> bool:
    """Every output exists and is at least as new as every source."""
    if missing_outputs(root):
        return False
    found = sources(root)
    if not found:
        return True  # nothing to rebuild from: the bundle is what this tree was given
    oldest_output = min(path.stat().st_mtime for path in outputs(root))
    return max(path.stat().st_mtime for path in found) <= oldest_output


def _node_major(node: str) -> int | None:
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v?(\d+)\.", version.strip())
    return int(match.group(1)) if match else None


def find_tools() -> tuple[str, str]:
    """node and npm from PATH, or a FrontendError naming what is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    missing = [name for name, path in (("Node.js (node)", node), ("npm", npm)) if path is None]
    if missing:
        raise FrontendError(f"building the web pages needs {' and '.join(missing)}, not found on PATH: {GET_NODE}")
    assert node is not None and npm is not None
    major = _node_major(node)
    if major is None or major < MIN_NODE:
        found = f"Node.js {major}" if major is not None else f"{node}, which does not run"
        raise FrontendError(f"building the web pages needs Node.js {MIN_NODE} or newer, found {found}: {GET_NODE}")
    return node, npm


def _dependencies_current(frontend: Path) -> bool:
    """node_modules was installed by npm from this lock file (npm writes its own copy last)."""
    installed = frontend / "node_modules" / ".package-lock.json"
    lock = frontend / "package-lock.json"
    return installed.is_file() and installed.stat().st_mtime >= lock.stat().st_mtime


def _run(command: list[str], cwd: Path, what: str) -> None:
    # npm's own output goes to stderr, so that a failure (no network, a bad lock file) is explained
    # above our one-line summary without mixing into anything a caller reads from stdout.
    done = subprocess.run(command, cwd=cwd, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if done.returncode:
        raise FrontendError(f"{what} failed (exit status {done.returncode}) in {cwd}: see npm's output above")


def build(root: Path = ROOT, log: Callable[[str], None] = print) -> None:
    """Install the locked npm packages when needed and bundle; raises FrontendError."""
    frontend = root / FRONTEND
    if not (frontend / "package-lock.json").is_file() or not (frontend / "package.json").is_file():
        raise FrontendError(f"the built web pages ({DIST}) are missing or incomplete and the front-end sources "
                            f"({FRONTEND}/package.json, package-lock.json) are not in this tree to build them from")
    _, npm = find_tools()
    if not _dependencies_current(frontend):
        log(f"frontend: installing the locked npm packages in {FRONTEND}")
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], frontend, "npm ci")
    log(f"frontend: bundling the web pages into {DIST}")
    _run([npm, "run", "build", "--silent"], frontend, "npm run build")
    missing = missing_outputs(root)
    if missing:
        raise FrontendError(f"npm run build finished without writing {', '.join(missing)} in {DIST}")
    # The outputs must read as fresh even when a source carries a future timestamp (clock skew, an unpacked archive).
    newest_source = max(path.stat().st_mtime for path in sources(root))
    for path in outputs(root):
        if path.stat().st_mtime < newest_source:
            os.utime(path, (newest_source, newest_source))


def ensure_built(root: Path = ROOT, log: Callable[[str], None] = print) -> bool:
    """Build unless fresh; True when it built. Raises FrontendError."""
    if is_fresh(root):
        return False
    build(root, log)
    return True


def main(argv: list[str] | None = None) -> int:
    """``python build_support/frontend.py [ROOT]``: build if stale; one line and status 1 on failure."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]).resolve() if args else ROOT
    try:
        if not ensure_built(root):
            print(f"frontend: {DIST} is up to date")
    except FrontendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
