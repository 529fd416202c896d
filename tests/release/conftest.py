"""The product as a user gets it: a wheel built from a clean checkout, installed into fresh venvs.

Shared by the tests (built once per session): a copy of the checkout holding only what git tracks
or would track (so no node_modules, no built bundle, no .venv), the wheel pip builds from it with
build isolation, and two fresh virtualenvs of this machine's Python, one with no extras and one
with ``[operator]``. Nothing from the development venv is importable in them.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright
from release_kit import BASE_PYTHON, DEV_PIP, Release, Venv, copy_clean_checkout, run, succeed
from support.browser import CHROMIUM, CHROMIUM_ARGS


def _fresh_venv(path: Path, requirement: str) -> Venv:
    """A venv of the base interpreter (not the development venv's), and ``pip install requirement`` in it.

    The venv gets no pip of its own (ensurepip is the slowest part of making one): this machine's
    pip installs into it with ``--python``, resolving the requirement from the package index as
    any pip would.
    """
    succeed(run([str(BASE_PYTHON), "-m", "venv", "--without-pip", str(path)], cwd=path.parent),
            f"python -m venv {path.name}")
    venv = Venv(path)
    # --no-compile: bytecode is written on first import instead, a third of the install's time here.
    succeed(run([*venv.pip, "install", "--no-compile", requirement], cwd=path.parent), f"pip install {requirement}")
    return venv


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    scratch = tmp_path_factory.mktemp("release")
    checkout = copy_clean_checkout(scratch / "checkout")
    wheels = scratch / "wheels"
    # Build isolation, as `pip wheel .` does for a user: the build backend gets its own setuptools.
    succeed(run([*DEV_PIP, "wheel", "--no-deps", "--wheel-dir", str(wheels), "."], cwd=checkout),
            "pip wheel . (from the clean checkout)")
    [wheel] = wheels.glob("celery_monitor-*.whl")
    with ThreadPoolExecutor(2) as pool:  # two installs at once: most of their time is waiting on I/O
        plain = pool.submit(_fresh_venv, scratch / "venv-plain", str(wheel))
        operator = pool.submit(_fresh_venv, scratch / "venv-operator", f"{wheel}[operator]")
        return Release(checkout, wheel, plain.result(), operator.result(), scratch)


# Module-scoped on purpose (as in tests/web): a running Playwright keeps an event loop marked as
# running in this thread, which would break asyncio.run() in tests collected after it.
@pytest.fixture(scope="module")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
