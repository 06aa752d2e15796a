"""Tests for consist.core.identity.code_identity: repo_git, callable modes, fast path.

Every repository here is a real one made with ``git`` under ``tmp_path``. Most
resolvers use ``racy_window_ns=0`` so their stat fingerprints are trusted right
away (the fast path is then what is being tested); ``_tick()`` after each write
keeps successive file versions in different timestamp ticks, which is the
situation the racy window guarantees in production.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from consist.core.identity.code_identity import (
    CODE_IDENTITY_MODES,
    CodeIdentity,
    CodeIdentityError,
    CodeIdentityResolver,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

_GIT_IDENTITY = [
    "-c",
    "user.name=Consist Test",
    "-c",
    "user.email=test@example.invalid",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
    "-c",
    "protocol.file.allow=always",
]
_module_counter = itertools.count()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` (identity via -c flags) and return its stdout."""
    proc = subprocess.run(
        ["git", *_GIT_IDENTITY, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"git {args} failed: {proc.stderr}"
    return proc.stdout


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _tick() -> None:
    """Let the clock move past the timestamps just written (see module docstring)."""
    time.sleep(0.02)


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    write(root / "README.md", "# project\n")
    write(root / "src" / "pkg" / "__init__.py", "")
    write(root / "src" / "pkg" / "model.py", "def step(x):\n    return x + 1\n")
    write(root / ".gitignore", "*.log\nbuild/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    _tick()
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


_WATCH = {"on": True}


@pytest.fixture(autouse=True, params=[True, False], ids=["inotify", "stat"])
def proof_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run every test with both work tree proofs (inotify where available, lstat)."""
    _WATCH["on"] = request.param
    yield
    _WATCH["on"] = True


def resolver(root: Path, **kwargs: Any) -> CodeIdentityResolver:
    kwargs.setdefault("racy_window_ns", 0)
    kwargs.setdefault("watch", _WATCH["on"])
    return CodeIdentityResolver(root, **kwargs)


def fresh(root: Path, **kwargs: Any) -> CodeIdentity:
    """Ground truth: a brand-new resolver has no fingerprint to trust."""
    return resolver(root, **kwargs).resolve()


def check(r: CodeIdentityResolver, **kwargs: Any) -> CodeIdentity:
    """Resolve with the (caching) resolver and assert it agrees with a fresh one."""
    got = r.resolve()
    truth = fresh(Path(r.project_root), **kwargs)
    assert got.digest == truth.digest, (got.details, truth.details)
    return got


class GitCalls:
    """Counts processes started through subprocess (``run`` uses ``Popen`` too)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.commands: list[list[str]] = []
        real = subprocess.Popen

        def counting(args: Any, *a: Any, **kw: Any) -> Any:
            self.commands.append(list(args))
            return real(args, *a, **kw)

        monkeypatch.setattr(subprocess, "Popen", counting)

    def __len__(self) -> int:
        return len(self.commands)

    def reset(self) -> None:
        self.commands.clear()


@pytest.fixture
def git_calls(monkeypatch: pytest.MonkeyPatch) -> GitCalls:
    return GitCalls(monkeypatch)


def load_module(path: Path) -> ModuleType:
    """Import ``path`` under a unique module name."""
    name = f"consist_test_code_identity_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def reload_module(module: ModuleType) -> None:
    """Re-execute a module loaded by ``load_module`` from its (edited) file."""
    assert module.__spec__ is not None and module.__spec__.loader is not None
    module.__spec__.loader.exec_module(module)


@pytest.fixture
def modules() -> Iterator[list[str]]:
    """Remove the test modules from sys.modules afterwards."""
    before = set(sys.modules)
    yield []
    for name in set(sys.modules) - before:
        if name.startswith("consist_test_code_identity_"):
            del sys.modules[name]


MODULE_V1 = """\
import functools


def step(x):
    return x + 1


def other(x):
    return x * 2


def same_body_a(x):
    return x


def same_body_b(x):
    return x


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@logged
def decorated(x):
    return x - 1


class Model:
    def run(self, x):
        return x

    def __call__(self, x):
        return x
"""


# ---------------------------------------------------------------------------
# repo_git: what changes the digest and what does not
# ---------------------------------------------------------------------------


def test_clean_repository_identity(repo: Path) -> None:
    identity = resolver(repo).resolve()
    assert identity.mode == "repo_git"
    assert identity.digest is not None and identity.digest.startswith("blake3:")
    assert identity.fallback_reason is None
    assert identity.details["head"] == git(repo, "rev-parse", "HEAD").strip()
    assert identity.details["dirty"] == {}
    assert identity.details["root"] == os.path.realpath(repo)
    json.dumps(identity.details)  # JSON-serialisable
    # Default mode inside a repository is repo_git, and fn is ignored there.
    assert resolver(repo).resolve(None, fn=len).digest == identity.digest


def test_subdirectory_project_root_describes_whole_repository(repo: Path) -> None:
    top = resolver(repo).resolve()
    sub = resolver(repo / "src" / "pkg").resolve()
    assert sub.digest == top.digest


def test_new_commit_changes_digest(repo: Path) -> None:
    r = resolver(repo)
    before = check(r)
    write(repo / "src" / "pkg" / "model.py", "def step(x):\n    return x + 2\n")
    git(repo, "commit", "-q", "-am", "second")
    _tick()
    after = check(r)
    assert after.digest != before.digest
    assert after.details["dirty"] == {}
    changes = r.diff(before, after)
    assert changes["head"] == (before.details["head"], after.details["head"])


def test_empty_commit_changes_digest(repo: Path) -> None:
    r = resolver(repo)
    before = check(r)
    git(repo, "commit", "-q", "--allow-empty", "-m", "empty")
    _tick()
    assert check(r).digest != before.digest


def test_moving_head_or_branch_alone_changes_digest(repo: Path) -> None:
    # Same tree, different commits: only HEAD / the ref file change, not the index.
    git(repo, "branch", "other")
    git(repo, "commit", "-q", "--allow-empty", "-m", "on main")
    _tick()
    r = resolver(repo)
    on_main = check(r)
    git(repo, "symbolic-ref", "HEAD", "refs/heads/other")
    _tick()
    on_other = check(r)
    assert on_other.details["head"] != on_main.details["head"]
    git(repo, "update-ref", "refs/heads/other", on_main.details["head"])
    _tick()
    assert check(r).digest == on_main.digest


def test_editing_tracked_file_changes_digest_and_revert_restores_it(repo: Path) -> None:
    r = resolver(repo)
    clean = check(r)
    model = repo / "src" / "pkg" / "model.py"
    original = model.read_text()

    write(model, "def step(x):\n    return x + 100\n")
    _tick()
    edited = check(r)
    assert edited.digest != clean.digest
    assert set(edited.details["dirty"]) == {"src/pkg/model.py"}
    changes = r.diff(clean, edited)
    assert set(changes) == {"files"}
    old, new = changes["files"]["src/pkg/model.py"]
    assert old is None and new.startswith("blake3:")

    write(model, original)
    _tick()
    assert check(r).digest == clean.digest


def test_staging_alone_does_not_change_digest(repo: Path) -> None:
    r = resolver(repo)
    write(repo / "src" / "pkg" / "model.py", "def step(x):\n    return -x\n")
    _tick()
    unstaged = check(r)
    git(repo, "add", "-A")
    _tick()
    assert check(r).digest == unstaged.digest


def test_deleted_tracked_file_is_recorded(repo: Path) -> None:
    r = resolver(repo)
    clean = check(r)
    (repo / "README.md").unlink()
    _tick()
    deleted = check(r)
    assert deleted.details["dirty"] == {"README.md": "deleted"}
    assert r.diff(clean, deleted) == {"files": {"README.md": (None, "deleted")}}


def test_exec_bit_change_changes_digest(repo: Path) -> None:
    r = resolver(repo)
    clean = check(r)
    script = repo / "src" / "pkg" / "model.py"
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    _tick()
    executable = check(r)
    assert executable.digest != clean.digest
    assert executable.details["dirty"]["src/pkg/model.py"].startswith("exec:blake3:")


def test_untracked_files_change_digest(repo: Path) -> None:
    (repo / "empty_dir").mkdir()  # git does not list empty directories
    (repo / "logs").mkdir()
    write(repo / "logs" / "old.log", "ignored\n")  # a directory holding only ignored files
    _tick()
    r = resolver(repo)
    clean = check(r)

    write(repo / "helper.py", "X = 1\n")
    _tick()
    one = check(r)
    assert one.digest != clean.digest
    assert set(one.details["dirty"]) == {"helper.py"}

    write(repo / "new" / "deep" / "mod.py", "Y = 2\n")  # inside a brand-new directory
    _tick()
    two = check(r)
    assert set(two.details["dirty"]) == {"helper.py", "new/deep/mod.py"}

    write(repo / "empty_dir" / "late.py", "Z = 3\n")
    _tick()
    three = check(r)
    assert "empty_dir/late.py" in three.details["dirty"]

    write(repo / "logs" / "script.py", "W = 4\n")
    _tick()
    four = check(r)
    assert "logs/script.py" in four.details["dirty"]
    assert len({clean.digest, one.digest, two.digest, three.digest, four.digest}) == 5


def test_untracked_symlink_is_hashed_by_target(repo: Path) -> None:
    r = resolver(repo)
    os.symlink("src/pkg/model.py", repo / "link.py")
    _tick()
    first = check(r)
    assert first.details["dirty"]["link.py"].startswith("symlink:blake3:")
    os.unlink(repo / "link.py")
    os.symlink("README.md", repo / "link.py")
    _tick()
    assert check(r).digest != first.digest


def test_ignored_files_do_not_change_digest(repo: Path, git_calls: GitCalls) -> None:
    r = resolver(repo)
    clean = check(r)
    write(repo / "run.log", "noise\n")
    write(repo / "src" / "pkg" / "debug.log", "noise\n")
    write(repo / "build" / "lib" / "artifact.bin", "binary\n")
    _tick()
    assert check(r).digest == clean.digest
    # Writing more inside an ignored directory does not even invalidate the fingerprint.
    r.resolve()
    git_calls.reset()
    write(repo / "build" / "lib" / "more.bin", "binary\n")
    _tick()
    assert r.resolve().digest == clean.digest
    assert len(git_calls) == 0


def test_gitignore_change_is_noticed(repo: Path) -> None:
    r = resolver(repo)
    write(repo / "notes.py", "untracked\n")
    _tick()
    with_notes = check(r)
    assert "notes.py" in with_notes.details["dirty"]
    write(repo / ".git" / "info" / "exclude", "notes.py\n")
    _tick()
    excluded = check(r)
    assert "notes.py" not in excluded.details["dirty"]


def test_exclude_paths_hide_run_outputs(repo: Path, git_calls: GitCalls) -> None:
    run_dir = repo / "runs"  # NOT gitignored
    db = repo / "consist.duckdb"
    kwargs = {"exclude_paths": [run_dir, db]}
    r = resolver(repo, **kwargs)
    clean = check(r, **kwargs)

    write(run_dir / "consist_runs" / "run1.json", "{}")
    write(run_dir / "step" / "out.csv", "a,b\n1,2\n")
    write(db, "db")
    write(repo / "consist.duckdb.wal", "wal")
    _tick()
    assert check(r, **kwargs).digest == clean.digest
    r.resolve()

    # A run's own output activity (new files in run_dir, the database and its
    # journal appearing and disappearing in the repository root) must not make the
    # fast path fall back to git.
    git_calls.reset()
    for i in range(3):
        write(run_dir / "step" / f"out{i}.csv", "x\n")
        write(repo / "consist.duckdb.wal", "wal" * i)
        (repo / "consist.duckdb.wal").unlink()
        write(db, "db" * (i + 2))
        _tick()
        assert r.resolve().digest == clean.digest
    assert len(git_calls) == 0

    # Without the excludes, and with these suffixes counted as code, the same tree
    # is dirty: the exclusion is what hid it.
    unexcluded = fresh(repo, source_suffixes=[".duckdb", ".csv"])
    assert {"consist.duckdb", "runs/step/out.csv"} <= set(unexcluded.details["dirty"])

    # A real code change next to the outputs is still seen.
    write(repo / "src" / "pkg" / "extra.py", "A = 1\n")
    _tick()
    assert "src/pkg/extra.py" in check(r, **kwargs).details["dirty"]


def test_exclude_paths_relative_to_project_root(repo: Path) -> None:
    r = resolver(repo, exclude_paths=["runs"])
    clean = r.resolve()
    write(repo / "runs" / "x.csv", "1\n")
    _tick()
    assert r.resolve().digest == clean.digest


def test_exclude_containing_repository_root_is_ignored(repo: Path) -> None:
    r = resolver(repo, exclude_paths=[repo.parent])
    clean = r.resolve()
    write(repo / "new.py", "B = 1\n")
    _tick()
    assert r.resolve().digest != clean.digest


def test_assume_unchanged_does_not_hide_edits(repo: Path) -> None:
    r = resolver(repo)
    clean = check(r)
    git(repo, "update-index", "--assume-unchanged", "src/pkg/model.py")
    _tick()
    flagged = check(r)
    write(repo / "src" / "pkg" / "model.py", "def step(x):\n    return 'hidden'\n")
    _tick()
    assert "M" not in git(repo, "status", "--porcelain")  # git itself no longer sees it
    edited = check(r)
    assert edited.digest != flagged.digest
    assert edited.digest != clean.digest


# ---------------------------------------------------------------------------
# The fast path
# ---------------------------------------------------------------------------


def test_fast_path_spawns_no_git_and_still_sees_edits(repo: Path, git_calls: GitCalls) -> None:
    r = resolver(repo)
    first = r.resolve()
    assert len(git_calls) > 0
    git_calls.reset()

    second = r.resolve()
    assert len(git_calls) == 0
    assert second == first
    assert second.details is not first.details  # callers get their own copy

    write(repo / "src" / "pkg" / "model.py", "def step(x):\n    return x + 1  # edited\n")
    _tick()
    third = r.resolve()
    assert len(git_calls) > 0
    assert third.digest != first.digest

    git_calls.reset()
    assert r.resolve().digest == third.digest
    assert len(git_calls) == 0


def test_recently_modified_files_force_recompute_with_large_window(
    repo: Path, git_calls: GitCalls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user-wide git config edited within the last hour (as on a freshly set
    # up machine) is racy too: keep this test about the repository's files.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    r = resolver(repo, racy_window_ns=3_600 * 10**9)
    first = r.resolve()
    git_calls.reset()
    r.resolve()
    if not _WATCH["on"]:
        # Stat proof: files younger than the window are never trusted.
        assert len(git_calls) > 0
    else:
        # inotify: the first scan was confirmed by one more git status after
        # the watches were set, so nothing runs git until an event arrives.
        assert len(git_calls) == 0
        write(repo / "src" / "pkg" / "model.py", "def step(x):\n    return x * 3\n")
        _tick()
        assert r.resolve().digest != first.digest
        assert len(git_calls) > 0

    relaxed = resolver(repo)
    relaxed.resolve()
    write(repo / "README.md", "# changed\n")
    _tick()
    relaxed.resolve()
    git_calls.reset()
    relaxed.resolve()
    assert len(git_calls) == 0  # with no window the new state is trusted at once


def test_same_size_edit_with_restored_mtime_is_detected(repo: Path) -> None:
    r = resolver(repo)
    model = repo / "src" / "pkg" / "model.py"
    clean = r.resolve()
    before = model.stat()
    _tick()
    content = model.read_bytes()
    model.write_bytes(content.replace(b"+ 1", b"+ 7"))
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = model.stat()
    assert after.st_size == before.st_size and after.st_mtime_ns == before.st_mtime_ns
    edited = r.resolve()
    assert edited.digest != clean.digest
    assert set(edited.details["dirty"]) == {"src/pkg/model.py"}


def test_resolver_is_reusable_across_many_changes(repo: Path) -> None:
    r = resolver(repo)
    seen = {check(r).digest}
    for i in range(3):
        write(repo / f"scratch{i}.py", f"V = {i}\n")
        _tick()
        seen.add(check(r).digest)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"c{i}")
        _tick()
        seen.add(check(r).digest)
    assert len(seen) == 7


def test_new_repository_inside_project_root_is_noticed(repo: Path) -> None:
    inner = repo / "src" / "pkg"
    r = resolver(inner)
    outer = r.resolve()
    git(inner, "init", "-q")
    _tick()
    now = r.resolve()
    assert now.details["root"] == os.path.realpath(inner)
    assert now.digest != outer.digest


def test_worktree_is_described(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(wt))
    _tick()
    r = resolver(wt)
    first = check(r)
    assert first.details["root"] == os.path.realpath(wt)
    assert first.details["head"] == git(wt, "rev-parse", "HEAD").strip()

    write(wt / "src" / "pkg" / "model.py", "def step(x):\n    return 0\n")
    _tick()
    edited = check(r)
    assert set(edited.details["dirty"]) == {"src/pkg/model.py"}

    git(wt, "commit", "-q", "-am", "on feature")
    _tick()
    committed = check(r)
    assert committed.details["head"] != first.details["head"]
    assert committed.details["dirty"] == {}
    # A commit in the main worktree does not move the linked worktree's HEAD.
    git(repo, "commit", "-q", "--allow-empty", "-m", "main moves")
    _tick()
    assert check(r).digest == committed.digest


def test_submodule_changes_are_folded_in(tmp_path: Path, git_calls: GitCalls) -> None:
    lib = make_repo(tmp_path / "lib")
    app = make_repo(tmp_path / "app")
    git(app, "submodule", "add", "-q", str(lib), "vendor/lib")
    git(app, "commit", "-q", "-m", "add submodule")
    _tick()
    r = resolver(app)
    clean = check(r)
    assert set(clean.details["submodules"]) == {"vendor/lib"}
    assert clean.details["dirty"] == {}

    git_calls.reset()
    assert r.resolve().digest == clean.digest
    assert len(git_calls) == 0  # the submodule's fingerprint is checked by stat too

    write(app / "vendor" / "lib" / "src" / "pkg" / "model.py", "def step(x):\n    return 42\n")
    _tick()
    edited = check(r)
    assert edited.digest != clean.digest
    assert set(r.diff(clean, edited)) == {"submodules"}

    git(app / "vendor" / "lib", "checkout", "-q", "--", ".")
    _tick()
    assert check(r).digest == clean.digest


def test_uninitialized_submodule(tmp_path: Path) -> None:
    lib = make_repo(tmp_path / "lib")
    app = make_repo(tmp_path / "app")
    git(app, "submodule", "add", "-q", str(lib), "vendor/lib")
    git(app, "commit", "-q", "-m", "add submodule")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(app), str(clone))
    _tick()
    identity = resolver(clone).resolve()
    assert identity.details["submodules"] == {"vendor/lib": "uninitialized"}


# ---------------------------------------------------------------------------
# Outside a repository / without git
# ---------------------------------------------------------------------------


@pytest.fixture
def plain_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory that is certainly not inside a git work tree."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "plain"
    root.mkdir()
    return root


def test_outside_repository_default_falls_back_to_callable_module(
    plain_dir: Path, tmp_path: Path, modules: list[str]
) -> None:
    mod = load_module(write(tmp_path / "mod_fallback.py", MODULE_V1))
    r = resolver(plain_dir)
    identity = r.resolve(fn=mod.step)
    assert identity.mode == "callable_module"
    assert identity.fallback_reason == f"not a git repository: {plain_dir}"
    assert identity.digest == r.resolve("callable_module", mod.step).digest


def test_outside_repository_without_callable_is_unavailable(plain_dir: Path) -> None:
    identity = resolver(plain_dir).resolve()
    assert identity.mode == "unavailable"
    assert identity.digest is None
    assert identity.fallback_reason is not None
    assert identity.fallback_reason.startswith(f"not a git repository: {plain_dir}")


def test_outside_repository_unusable_callable_is_unavailable(plain_dir: Path) -> None:
    identity = resolver(plain_dir).resolve(fn=len)
    assert identity.mode == "unavailable" and identity.digest is None
    assert "callable_module" in (identity.fallback_reason or "")


def test_explicit_repo_git_outside_repository_raises(plain_dir: Path) -> None:
    with pytest.raises(CodeIdentityError, match="code_identity='repo_git'"):
        resolver(plain_dir).resolve("repo_git")


def test_outside_repository_is_cached_and_notices_git_init(
    plain_dir: Path, git_calls: GitCalls
) -> None:
    r = resolver(plain_dir)
    assert r.resolve().mode == "unavailable"
    git_calls.reset()
    assert r.resolve().mode == "unavailable"
    assert len(git_calls) == 0
    git(plain_dir, "init", "-q")
    _tick()
    assert r.resolve().mode == "repo_git"


def test_without_git_installed(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: list[str]
) -> None:
    mod = load_module(write(tmp_path / "mod_nogit.py", MODULE_V1))
    empty_bin = tmp_path / "empty_bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    r = resolver(repo)
    identity = r.resolve(fn=mod.step)
    assert identity.mode == "callable_module"
    assert "git is not installed" in (identity.fallback_reason or "")
    with pytest.raises(CodeIdentityError, match="repo_git"):
        r.resolve("repo_git")


def test_missing_project_root_raises(tmp_path: Path) -> None:
    with pytest.raises(CodeIdentityError, match="project_root"):
        resolver(tmp_path / "nope").resolve()


# ---------------------------------------------------------------------------
# Callable modes
# ---------------------------------------------------------------------------


def test_callable_module_tracks_the_module_file(tmp_path: Path, modules: list[str]) -> None:
    path = write(tmp_path / "mod_module.py", MODULE_V1)
    mod = load_module(path)
    r = resolver(tmp_path)
    first = r.resolve("callable_module", mod.step)
    assert first.mode == "callable_module"
    assert first.details["module"] == mod.__name__
    assert first.details["qualname"] == "step"
    assert first.details["file"] == str(path)
    assert first.details["file_digest"].startswith("blake3:")
    assert r.resolve("callable_module", mod.step) == first
    # Another function of the same module: same file, different qualname.
    assert r.resolve("callable_module", mod.other).digest != first.digest

    _tick()
    write(path, MODULE_V1.replace("return x * 2", "return x * 3"))  # edit `other`
    second = r.resolve("callable_module", mod.step)
    assert second.digest != first.digest
    assert set(r.diff(first, second)) == {"file"}


def test_callable_source_tracks_only_the_function(tmp_path: Path, modules: list[str]) -> None:
    path = write(tmp_path / "mod_source.py", MODULE_V1)
    mod = load_module(path)
    r = resolver(tmp_path)
    first = r.resolve("callable_source", mod.step)
    assert first.mode == "callable_source"
    assert first.details["qualname"] == "step"

    _tick()
    write(path, MODULE_V1.replace("return x * 2", "return x * 3"))  # edit `other` only
    assert r.resolve("callable_source", mod.step).digest == first.digest

    _tick()
    write(path, MODULE_V1.replace("return x + 1", "return x + 5"))  # edit `step`
    on_disk = r.resolve("callable_source", mod.step)
    assert on_disk.digest != first.digest
    assert "source" in r.diff(first, on_disk)

    reload_module(mod)  # the running code now matches the file
    after_reload = r.resolve("callable_source", mod.step)
    assert after_reload.digest not in (first.digest, on_disk.digest)
    assert set(r.diff(on_disk, after_reload)) == {"code"}
    assert resolver(tmp_path).resolve("callable_source", mod.step) == after_reload


def test_callable_source_includes_the_name(tmp_path: Path, modules: list[str]) -> None:
    mod = load_module(write(tmp_path / "mod_names.py", MODULE_V1))
    r = resolver(tmp_path)
    a = r.resolve("callable_source", mod.same_body_a)
    b = r.resolve("callable_source", mod.same_body_b)
    assert a.digest != b.digest
    assert r.diff(a, b)["qualname"] == ("same_body_a", "same_body_b")


def test_callables_are_unwrapped(tmp_path: Path, modules: list[str]) -> None:
    mod = load_module(write(tmp_path / "mod_unwrap.py", MODULE_V1))
    r = resolver(tmp_path)
    for mode in ("callable_module", "callable_source"):
        step = r.resolve(mode, mod.step)
        assert r.resolve(mode, functools.partial(mod.step)).digest == step.digest
        assert r.resolve(mode, functools.partial(functools.partial(mod.step), 1)) == step

        decorated = r.resolve(mode, mod.decorated)
        assert decorated.details["qualname"] == "decorated"

        model = mod.Model()
        method = r.resolve(mode, model.run)
        assert method.details["qualname"] == "Model.run"
        assert r.resolve(mode, mod.Model.run) == method

        instance = r.resolve(mode, model)
        assert instance.details["qualname"] == "Model.__call__"


def test_callable_modes_fail_closed(tmp_path: Path) -> None:
    interactive = eval(compile("lambda x: x + 1", "<stdin>", "eval"))
    r = resolver(tmp_path)
    for mode in ("callable_module", "callable_source"):
        for fn in (interactive, len):
            with pytest.raises(CodeIdentityError, match=f"code_identity='{mode}'"):
                r.resolve(mode, fn)
        with pytest.raises(CodeIdentityError, match="needs the callable"):
            r.resolve(mode)
        with pytest.raises(CodeIdentityError, match="not callable"):
            r.resolve(mode, 42)  # type: ignore[arg-type]


def test_lambda_in_a_module_file_has_identity(tmp_path: Path, modules: list[str]) -> None:
    mod = load_module(write(tmp_path / "mod_lambda.py", "double = lambda x: x * 2\n"))
    r = resolver(tmp_path)
    assert r.resolve("callable_source", mod.double).digest is not None
    assert r.resolve("callable_module", mod.double).details["qualname"] == "<lambda>"


def test_callable_cache_hit_and_invalidation(tmp_path: Path, modules: list[str]) -> None:
    path = write(tmp_path / "mod_cache.py", MODULE_V1)
    mod = load_module(path)
    _tick()
    r = resolver(tmp_path)
    first = r.resolve("callable_module", mod.step)
    assert r.resolve("callable_module", mod.step) == first
    before = path.stat()
    _tick()
    path.write_text(MODULE_V1.replace("x + 1", "x + 9"))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert r.resolve("callable_module", mod.step).digest != first.digest


# ---------------------------------------------------------------------------
# extra deps
# ---------------------------------------------------------------------------


def test_extra_deps_file_and_directory(tmp_path: Path, modules: list[str]) -> None:
    mod = load_module(write(tmp_path / "mod_deps.py", MODULE_V1))
    data_file = write(tmp_path / "deps" / "params.yaml", "a: 1\n")
    data_dir = tmp_path / "deps" / "tables"
    write(data_dir / "t1.csv", "x\n1\n")
    _tick()
    r = resolver(tmp_path)
    deps = ["deps/params.yaml", data_dir]
    for mode in ("callable_module", "callable_source"):
        base = r.resolve(mode, mod.step)
        with_deps = r.resolve(mode, mod.step, extra_deps=deps)
        assert with_deps.digest != base.digest
        assert set(with_deps.details["extra_deps"]) == {"deps/params.yaml", str(data_dir)}

    first = r.resolve("callable_module", mod.step, extra_deps=deps)
    write(data_file, "a: 2\n")
    _tick()
    second = r.resolve("callable_module", mod.step, extra_deps=deps)
    assert second.digest != first.digest
    assert set(r.diff(first, second)["extra_deps"]) == {"deps/params.yaml"}

    write(data_dir / "sub" / "t2.csv", "y\n2\n")  # a new file deep in the directory
    _tick()
    third = r.resolve("callable_module", mod.step, extra_deps=deps)
    assert third.digest != second.digest
    assert set(r.diff(second, third)["extra_deps"]) == {str(data_dir)}
    assert resolver(tmp_path).resolve("callable_module", mod.step, extra_deps=deps) == third


def test_extra_deps_with_repo_git(repo: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "shared.py", "S = 1\n")
    _tick()
    r = resolver(repo)
    plain = r.resolve()
    with_dep = r.resolve(extra_deps=[outside])
    assert with_dep.digest != plain.digest
    write(outside, "S = 2\n")
    _tick()
    changed = r.resolve(extra_deps=[outside])
    assert changed.digest != with_dep.digest
    assert set(r.diff(with_dep, changed)) == {"extra_deps"}


def test_missing_extra_dep_raises(repo: Path) -> None:
    r = resolver(repo)
    with pytest.raises(CodeIdentityError, match="code_identity_extra_deps"):
        r.resolve(extra_deps=["does/not/exist.py"])
    with pytest.raises(CodeIdentityError, match="code_identity_extra_deps"):
        r.resolve(extra_deps="README.md")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# API details
# ---------------------------------------------------------------------------


def test_invalid_mode_raises(repo: Path) -> None:
    with pytest.raises(CodeIdentityError, match="code_identity must be one of") as info:
        resolver(repo).resolve("git")
    for mode in CODE_IDENTITY_MODES:
        assert mode in str(info.value)
    assert issubclass(CodeIdentityError, ValueError)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_invalid_racy_window(repo: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match="racy_window_ns"):
        CodeIdentityResolver(repo, racy_window_ns=bad)


def test_single_exclude_path_is_rejected(repo: Path) -> None:
    with pytest.raises(ValueError, match="exclude_paths"):
        CodeIdentityResolver(repo, exclude_paths="runs")  # type: ignore[arg-type]


def test_diff_between_modes_and_equal_identities(repo: Path, modules: list[str]) -> None:
    mod = load_module(write(repo / "mod_diff.py", MODULE_V1))
    r = resolver(repo)
    git_identity = r.resolve()
    module_identity = r.resolve("callable_module", mod.step)
    assert r.diff(git_identity, module_identity) == {"mode": ("repo_git", "callable_module")}
    assert r.diff(git_identity, r.resolve()) == {}


def test_results_are_independent_copies(repo: Path) -> None:
    r = resolver(repo)
    first = r.resolve()
    first.details["dirty"]["injected"] = "x"
    assert "injected" not in r.resolve().details["dirty"]


def test_details_survive_json_round_trip_for_diff(repo: Path) -> None:
    r = resolver(repo)
    clean = r.resolve()
    write(repo / "new.py", "N = 1\n")
    _tick()
    dirty = r.resolve()
    stored = CodeIdentity(
        clean.mode, clean.digest, json.loads(json.dumps(clean.details)), clean.fallback_reason
    )
    assert r.diff(stored, dirty) == {"files": {"new.py": (None, dirty.details["dirty"]["new.py"])}}


def _timed(fn: Callable[[], object], n: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def test_fast_path_is_fast(repo: Path) -> None:
    # Generous bound (the design target is ~0.1 ms): this guards against a fast
    # path that silently spawns git (several ms) or re-hashes files.
    r = resolver(repo)
    r.resolve()
    assert _timed(r.resolve) < 0.002
