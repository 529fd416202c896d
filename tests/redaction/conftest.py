"""One stack for every redaction path test (see :mod:`support.hidden_stack`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.hidden_stack import Stack, running_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("hidden")) as started:
        yield started
