"""The Dockerfile: hadolint's rules, and the promises the image makes that no linter checks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dockerfile_model
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
TEXT = DOCKERFILE.read_text()
STAGES = dockerfile_model.parse(TEXT)
RUNTIME = STAGES[-1]


def hadolint_findings(hadolint: Path, text: str, tmp_path: Path) -> list[str]:
    """Rule codes hadolint reports for ``text`` under the project's policy (.hadolint.yaml)."""
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    done = subprocess.run([str(hadolint), "--config", str(REPO_ROOT / ".hadolint.yaml"), "--format", "json",
                           "--no-fail", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [finding["code"] for finding in json.loads(done.stdout)]


def test_dockerfile_passes_hadolint(hadolint: Path, tmp_path: Path) -> None:
    assert hadolint_findings(hadolint, TEXT, tmp_path) == []


def _replace(*pairs: str) -> Callable[[str], str]:
    """An edit of the Dockerfile: each old text (which must be there) by its new one."""
    def edit(text: str) -> str:
        for old, new in zip(pairs[::2], pairs[1::2], strict=True):
            assert old in text, f"{old!r} is no longer in the Dockerfile: update this test"
            text = text.replace(old, new)
        return text
    return edit


@pytest.mark.parametrize(("edit", "rule"), [
    (_replace("FROM python:3.11.13-slim-bookworm\n", "FROM python:latest\n"), "DL3007"),
    (_replace("USER 10001:10001", "USER root"), "DL3002"),
    (_replace("pip install --no-cache-dir", "pip install",
              "    PIP_NO_CACHE_DIR=1 \\\n", ""), "DL3042"),
    (_replace("WORKDIR /data\n", "WORKDIR /data\nRUN apt-get update && apt-get install -y curl\n"), "DL3009"),
    (_replace('org.opencontainers.image.licenses="BSD-3-Clause"', 'org.opencontainers.image.licenses="BSD"'),
     "DL3054"),
], ids=["latest-tag", "root-user", "pip-cache", "apt-lists-left", "bad-licence-label"])
def test_hadolint_catches_what_it_is_here_for(hadolint: Path, tmp_path: Path,
                                             edit: Callable[[str], str], rule: str) -> None:
    """The linter is live and the policy strict: one bad edit, one finding."""
    assert rule in hadolint_findings(hadolint, edit(TEXT), tmp_path)


def test_stages_build_assets_then_a_wheel_then_the_runtime() -> None:
    assert [stage.name for stage in STAGES] == ["web", "build", None]
    assert STAGES[0].base.startswith("node:")


def test_every_base_image_is_pinned_to_a_patch_release() -> None:
    for stage in STAGES:
        assert re.fullmatch(r"[a-z]+:\d+\.\d+\.\d+-[a-z]+(-[a-z]+)?", stage.base), stage.base


def test_runtime_uses_the_python_the_build_stage_built_for() -> None:
    """The venv is copied, not rebuilt: same base, same path, or its interpreter link breaks."""
    build = STAGES[1]
    assert RUNTIME.base == build.base
    venv = dict(kv for i in build.all("ENV") for kv in dockerfile_model.env_assignments(i))["VIRTUAL_ENV"]
    copies = [i.split_flags() for i in RUNTIME.all("COPY")]
    assert copies == [({"from": "build"}, f"{venv} {venv}")]


def test_runtime_installs_nothing_and_keeps_no_build_tools() -> None:
    for run in RUNTIME.all("RUN"):
        assert not re.search(r"\b(apt-get|apt|pip|npm|gcc|make)\b", run.value), run.value
    build_run = " ".join(i.value for i in STAGES[1].all("RUN"))
    assert "pip uninstall --yes --quiet pip setuptools" in build_run


def test_runtime_runs_as_a_numeric_non_root_user() -> None:
    user = RUNTIME.last("USER")
    assert user is not None
    uid, _, gid = user.value.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) > 0 and int(gid) > 0
    assert uid == "10001"
    assert RUNTIME.instructions.index(user) > RUNTIME.instructions.index(RUNTIME.all("RUN")[-1])


def test_runtime_serves_the_monitor_on_5555_with_a_healthcheck() -> None:
    assert [i.value for i in RUNTIME.all("EXPOSE")] == ["5555"]
    entrypoint = RUNTIME.last("ENTRYPOINT")
    assert entrypoint is not None and entrypoint.exec_form() == ["celery-monitor"]
    assert RUNTIME.last("CMD") is None  # options come from the user, or the environment
    healthcheck = RUNTIME.last("HEALTHCHECK")
    assert healthcheck is not None
    # The monitor's own subcommand, which resolves the settings as the monitor does (test_image_install runs it).
    assert dockerfile_model.healthcheck_command(RUNTIME) == ["celery-monitor", "healthcheck"]
    assert "--timeout=5s" in healthcheck.value


def test_build_context_is_only_what_the_image_needs() -> None:
    ignore = dockerfile_model.DockerIgnore((REPO_ROOT / ".dockerignore").read_text())
    files = ignore.context_files(REPO_ROOT)
    assert "pyproject.toml" in files
    assert any(f.startswith("celery_monitor/") for f in files) and any(f.startswith("operator/") for f in files)
    tops = {f.split("/")[0] for f in files}
    wanted = {"pyproject.toml", "setup.py", "MANIFEST.in", "build_support", "README.md", "celery_monitor", "operator"}
    assert tops <= wanted, tops
    # The build hooks: without them the wheel would be built without checking for its pages.
    assert {"setup.py", "build_support/frontend.py"} <= set(files)
    assert not [f for f in files if "__pycache__" in f or "/node_modules/" in f or f.endswith(".db")]
    assert not [f for f in files if f.startswith("celery_monitor/web/static/dist/")]  # rebuilt by the web stage


@pytest.mark.parametrize(("path", "excluded"), [
    ("tests/test_x.py", True), (".git/HEAD", True), ("celery_monitor/api/app.py", False),
    ("celery_monitor/api/__pycache__/app.cpython-311.pyc", True),
    ("celery_monitor/web/frontend/node_modules/x/i.js", True),
    ("operator/celery_monitor_operator/naming.py", False), ("celery-monitor.db", True), ("README.md", False),
    ("setup.py", False), ("build_support/frontend.py", False),
    ("build_support/__pycache__/frontend.cpython-311.pyc", True),
    ("celery_monitor/web/static/dist/app.js", True), ("docs/install.md", True),
])
def test_dockerignore_reads_like_the_builder(path: str, excluded: bool) -> None:
    ignore = dockerfile_model.DockerIgnore((REPO_ROOT / ".dockerignore").read_text())
    assert ignore.excluded(path) is excluded


def test_python_of_the_image_is_the_one_the_project_supports() -> None:
    version = re.match(r"python:(\d+\.\d+)\.", RUNTIME.base)
    assert version is not None
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == version.group(1), \
        "the install test replays the build with this machine's Python: keep them on the same minor"
