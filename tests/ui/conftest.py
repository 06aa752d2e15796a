"""Fixtures of the web page's tests (the store they read: see ``_ui_store``)."""

from __future__ import annotations

import pytest
from _ui_store import UiStore, build_store


@pytest.fixture(scope="module")
def ui_store(tmp_path_factory: pytest.TempPathFactory) -> UiStore:
    """The store ``_ui_store.build_store`` records, once per test module (tests only read it)."""
    return build_store(tmp_path_factory.mktemp("ui") / "model")
