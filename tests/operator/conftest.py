"""The cross-check against ../shared/k8s-crds: run when the upstream files are there, else deselected.

A clone of the repository alone has no ../shared; its tests use the schemas of the pinned npm
packages only. The cross-check tests are then deselected (counted in pytest's summary) and a line
at the end of the run says why, rather than skipped one by one.
"""

from __future__ import annotations

import pytest
from support import k8s_schemas

MARKER = "shared_crds"
_DESELECTED = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: compares the npm-derived CRD schemas with ../shared/k8s-crds")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if k8s_schemas.shared_crds():
        return
    deselected = [item for item in items if item.get_closest_marker(MARKER)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker(MARKER)]
        config.stash[_DESELECTED] = len(deselected)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    count = config.stash.get(_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"{count} cross-check tests of the CRD schemas deselected: no {k8s_schemas.SHARED_CRDS} "
            "beside the checkout (the schemas of the pinned npm packages were used alone)")
