"""One fuzz target for the session: the app in this process, its monitor on a private broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fuzz_target import FuzzTarget, running_target


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    with running_target(tmp_path_factory.mktemp("fuzz")) as target:
        yield target
