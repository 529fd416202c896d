"""Fixtures of the packaging tests: the real helm and hadolint binaries the set-up installs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"


def installed_tool(name: str, installer: str) -> Path:
    """The tool's path, or a failed test that says how to install it (never a skip)."""
    path = TOOLS_BIN / name
    if not path.is_file():
        pytest.fail(f"{name} is not installed at {path}: run scripts/bootstrap "
                    f"(its step scripts/setup.d/{installer} installs it)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def helm() -> Path:
    path = installed_tool("helm", "20-k8s-tools")
    version = subprocess.run([str(path), "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v4."), f"the chart is tested with helm v4, found {version.stdout}"
    return path


@pytest.fixture(scope="session")
def hadolint() -> Path:
    return installed_tool("hadolint", "21-dockerfile-lint")
