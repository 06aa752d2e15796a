"""Fixtures shared by the tests of ``consist.core``.

``base`` is the test's resolved temporary directory, ``tracker`` a tracker
with its run directory and DuckDB file there (``project_root`` too, so runs
use callable identity unless a test makes a git repository), and
``in_base_dir`` makes it the working directory for modules that opt in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consist import Tracker


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path.resolve()


@pytest.fixture
def in_base_dir(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(base)


@pytest.fixture
def tracker(base: Path) -> Iterator[Tracker]:
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    yield t
    t.close()
