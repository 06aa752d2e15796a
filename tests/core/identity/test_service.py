"""Identity composition details: callable names, bound arguments, compact manifests."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from _support import make_git_repo
from consist import Tracker
from consist.core.identity.canonical import CanonicalizationError
from consist.core.identity.service import MAX_LISTED_FILES, _compact_details, callable_name


def scale(values: list[int], factor: int = 1) -> list[int]:
    return [v * factor for v in values]


def test_callable_name_is_module_and_qualname() -> None:
    assert callable_name(scale) == f"{__name__}:scale"
    assert callable_name(None) is None


def test_partial_arguments_are_part_of_the_name() -> None:
    two = callable_name(functools.partial(scale, factor=2))
    three = callable_name(functools.partial(scale, factor=3))
    assert two != three
    assert two == callable_name(functools.partial(scale, factor=2))
    assert two.startswith(f"{__name__}:scale[partial blake3:")


def test_partial_with_an_unhashable_argument_fails_closed() -> None:
    with pytest.raises(CanonicalizationError, match="partial"):
        callable_name(functools.partial(scale, factor=object()))


def test_partial_arguments_change_the_cache_key(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    calls: list[int] = []

    def step(factor: int) -> None:
        calls.append(factor)

    first = tracker.run(functools.partial(step, factor=2), name="step")
    again = tracker.run(functools.partial(step, factor=2), name="step")
    other = tracker.run(functools.partial(step, factor=3), name="step")
    assert not first.cache_hit and again.cache_hit and not other.cache_hit
    assert calls == [2, 3]
    tracker.close()


def test_compact_details_caps_long_file_lists() -> None:
    dirty = {f"f{i:04d}.txt": f"blake3:{i}" for i in range(MAX_LISTED_FILES + 5)}
    compact = _compact_details({"head": "abc", "dirty": dirty})
    assert len(compact["dirty"]) == MAX_LISTED_FILES
    assert compact["dirty_truncated"]["count"] == MAX_LISTED_FILES + 5
    assert compact["dirty_truncated"]["digest"].startswith("blake3:")
    small = _compact_details({"dirty": {"a": "1"}})
    assert small == {"dirty": {"a": "1"}}


def test_step_defined_outside_the_repository_is_part_of_the_identity(tmp_path: Path) -> None:
    import importlib.util
    import sys

    repo = make_git_repo(tmp_path / "repo", {"README.md": "project\n"})
    library = tmp_path / "site" / "outside_lib.py"
    library.parent.mkdir()

    def load(body: str):
        library.write_text(f"def step():\n    return {body}\n")
        spec = importlib.util.spec_from_file_location("outside_lib_for_test", library)
        module = importlib.util.module_from_spec(spec)
        sys.modules["outside_lib_for_test"] = module
        spec.loader.exec_module(module)
        return module.step

    tracker = Tracker(repo / "runs", db_path=tmp_path / "db.duckdb", project_root=repo)
    first = tracker.run(load("None"), name="lib_step")
    again = tracker.run(load("None"), name="lib_step")
    assert not first.cache_hit and again.cache_hit
    assert first.run.meta["code_identity_mode"] == "repo_git"
    changed = tracker.run(load("1 if False else None"), name="lib_step")
    assert not changed.cache_hit, "a changed step outside the repo must not hit"
    manifest = tracker.store.get_identity_manifest(changed.run_id)
    outside = manifest["code"]["details"]["outside_repo_callable"]
    assert outside["mode"] == "callable_module" and outside["file"] == str(library.resolve())
    tracker.close()
    sys.modules.pop("outside_lib_for_test", None)


def test_step_inside_the_repository_uses_git_state_only(tmp_path: Path) -> None:
    repo = make_git_repo(tmp_path / "repo", {"steps.py": "def step():\n    return None\n"})
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("inside_repo_steps", repo / "steps.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["inside_repo_steps"] = module
    spec.loader.exec_module(module)
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=repo)
    result = tracker.run(module.step, name="in_repo")
    manifest = tracker.store.get_identity_manifest(result.run_id)
    assert "outside_repo_callable" not in manifest["code"]["details"]
    tracker.close()
    sys.modules.pop("inside_repo_steps", None)


def test_compact_details_caps_the_untracked_list_with_the_dirty_listing() -> None:
    dirty = {f"src/m{i:04d}.py": f"blake3:{i}" for i in range(MAX_LISTED_FILES + 7)}
    compact = _compact_details({"dirty": dirty, "untracked": sorted(dirty)})
    assert len(compact["untracked"]) == MAX_LISTED_FILES
    assert set(compact["untracked"]) == set(compact["dirty"])
    small = _compact_details({"dirty": {"a.py": "1"}, "untracked": ["a.py"]})
    assert small["untracked"] == ["a.py"]


def test_real_root_follows_a_retargeted_symlink(tmp_path: Path) -> None:
    """The cached real path of a repository root is keyed by the directory it leads to."""
    import os

    from consist.core.identity.service import _real_root

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    link = tmp_path / "project"
    link.symlink_to(first)
    assert _real_root(str(link)) == str(first.resolve())
    assert _real_root(str(link)) == str(first.resolve())  # cached
    link.unlink()
    link.symlink_to(second)
    assert _real_root(str(link)) == str(second.resolve())
    gone = tmp_path / "gone"
    assert _real_root(str(gone)) == os.path.realpath(gone)
