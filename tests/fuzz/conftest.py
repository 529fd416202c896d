"""One fuzz target for the session: the app in this process, its monitor on a private broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fuzz_target import FuzzTarget, running_target


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    with running_target(tmp_path_factory.mktemp("fuzz")) as target:
        yield target


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each schemathesis case a nodeid of its own.

    schemathesis names a case's item after its operation (``test_x[GET /api/workers]``) but, under
    pytest 9.2, leaves its nodeid the test's. pytest-xdist keys its work by nodeid, so it would run
    one case of each test and drop the rest without a word.
    """
    for item in items:
        if item.parent is not None and item.nodeid.rsplit("::", 1)[-1] != item.name and hasattr(item, "_id"):
            item._id = item.parent.id.child(item.name)
