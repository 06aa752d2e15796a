"""Fixtures shared by the whole suite (helpers live in ``_support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _support import Child
from pg_server import pg_server, pg_url  # noqa: F401  (fixtures: a throwaway PostgreSQL)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Children started by a test; any still alive at teardown are killed."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()
