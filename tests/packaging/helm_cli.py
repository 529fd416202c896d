"""Run the real helm binary on the chart and read back what it rendered."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "celery-monitor-operator"
RELEASE = "celery-monitor-operator"
NAMESPACE = "celery-monitor-system"


def run(helm: Path, *args: str, values: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    """helm with ``args``, plus ``values`` as a values file when given."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values_file:
        extra: list[str] = []
        if values is not None:
            yaml.safe_dump(values, values_file)
            values_file.flush()
            extra = ["--values", values_file.name]
        return subprocess.run([str(helm), *args, *extra], capture_output=True, text=True, timeout=60)


def template(helm: Path, values: dict[str, Any] | None = None, *args: str,
             release: str = RELEASE, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """Every object `helm template` renders (CRDs included), hooks and tests too."""
    done = run(helm, "template", release, str(CHART), "--namespace", namespace, "--include-crds", *args,
               values=values)
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def template_error(helm: Path, values: dict[str, Any], *args: str) -> str:
    """The message helm gives when it refuses to render (the test fails if it renders)."""
    done = run(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args, values=values)
    assert done.returncode != 0, f"helm rendered values it should refuse: {values}"
    return done.stderr


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
