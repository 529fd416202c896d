"""Building and installing from a clean checkout, as the README says: pages included, imports declared."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

from release_kit import BUNDLE, DEV_PIP, Release, copy_clean_checkout, run, succeed, user_environment, wheel_names
from support.paths import path_without_node

NO_NODE_LINE = "error: celery-monitor: building the web pages needs Node.js (node) and npm, not found on PATH"
# Every module of a package, imported one by one in the installed venv; prints the ones that fail.
IMPORT_ALL = """
import importlib, pkgutil, sys
failed = []
for top in sys.argv[1:]:
    package = importlib.import_module(top)
    for module in pkgutil.walk_packages(package.__path__, top + "."):
        try:
            importlib.import_module(module.name)
        except Exception as exc:
            failed.append(f"{module.name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
"""


def test_the_wheel_carries_the_built_pages_and_no_build_inputs(release: Release) -> None:
    names = wheel_names(release.wheel)
    assert [f"celery_monitor/web/static/dist/{name}" for name in BUNDLE if
            f"celery_monitor/web/static/dist/{name}" not in names] == []
    assert not [n for n in names if "/frontend/" in n or "node_modules" in n or n.startswith("build_support")]
    assert any(n.startswith("celery_monitor_operator/") for n in names)


def test_pip_check_and_every_module_imports_with_no_extras(release: Release) -> None:
    venv = release.plain
    succeed(run([*venv.pip, "check"], cwd=release.scratch), "pip check")
    done = succeed(venv.run("python", "-c", IMPORT_ALL, "celery_monitor", cwd=release.scratch), "imports")
    assert done.stdout.strip() == "", f"modules that do not import with no extras:\n{done.stdout}"
    # The transports' own imports, which kombu only makes when a broker URL is first used.
    transports = "import kombu.transport.redis, kombu.transport.pyamqp, celery.backends.redis"
    succeed(venv.run("python", "-c", transports, cwd=release.scratch), "the broker transports' imports")
    # Nothing of the development venv leaks in: the operator's extra is really absent here.
    assert venv.run("python", "-c", "import kopf", cwd=release.scratch).returncode != 0


def test_the_operator_extra_imports_everything_and_runs(release: Release) -> None:
    venv = release.operator
    succeed(run([*venv.pip, "check"], cwd=release.scratch), "pip check")
    done = succeed(venv.run("python", "-c", IMPORT_ALL, "celery_monitor", "celery_monitor_operator",
                            cwd=release.scratch), "imports")
    assert done.stdout.strip() == "", f"modules that do not import with [operator]:\n{done.stdout}"
    helped = succeed(venv.run("celery-monitor-operator", "--help", cwd=release.scratch), "celery-monitor-operator")
    assert "--" in helped.stdout
    crd = succeed(venv.run("python", "-c", "from celery_monitor_operator.renderers.crd import render_crd;"
                           " print(render_crd()['kind'])", cwd=release.scratch), "render the CRD")
    assert crd.stdout.strip() == "CustomResourceDefinition"


def test_an_sdist_carries_sources_and_pages_and_builds_a_wheel_without_node(release: Release) -> None:
    """python -m build's path: sdist, then the wheel from it on a machine with no Node.js."""
    out = release.scratch / "sdist"
    succeed(run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out), "."], cwd=release.checkout),
            "python -m build --sdist")
    [sdist] = out.glob("celery_monitor-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {f"celery_monitor/web/static/dist/{name}" for name in BUNDLE} <= names
    assert {"setup.py", "MANIFEST.in", "build_support/frontend.py", "celery_monitor/web/frontend/package-lock.json",
            "celery_monitor/web/frontend/build.mjs", "celery_monitor/web/frontend/src/app.js"} <= names
    assert not [n for n in names if "node_modules" in n]

    env = {**user_environment(), "PATH": path_without_node(release.scratch / "path-without-node")}
    wheels = release.scratch / "from-sdist"
    succeed(run([*DEV_PIP, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(sdist)], cwd=release.scratch,
                env=env), "pip wheel <sdist> without node")
    [wheel] = wheels.glob("celery_monitor-*.whl")
    assert {f"celery_monitor/web/static/dist/{name}" for name in BUNDLE} <= set(wheel_names(wheel))


def test_without_node_the_build_stops_with_one_line_and_no_package(tmp_path: Path) -> None:
    """`pip wheel .` in a fresh checkout on a machine without Node.js (`pip install .` builds the same way)."""
    checkout = copy_clean_checkout(tmp_path / "checkout")
    out = tmp_path / "out"
    env = {**user_environment(), "PATH": path_without_node(tmp_path / "path-without-node")}
    done = run([*DEV_PIP, "wheel", "--no-deps", "--wheel-dir", str(out), "."], cwd=checkout, env=env)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    ours = [line.strip() for line in output.splitlines() if "celery-monitor:" in line]
    assert len(ours) == 1 and ours[0].startswith(NO_NODE_LINE), output[-3000:]
    assert "install Node.js 18+ and npm" in ours[0]
    assert "Traceback" not in output
    assert not out.exists() or not any(out.iterdir()), "a package was made without its pages"
    assert not (checkout / "monitor" / "web" / "static" / "dist").exists()
