"""Code identity in the layout modelers use: the tracker inside the project's repository.

Every test builds a real git repository in ``tmp_path`` holding committed code and
configs, untracked data files, logs and a ``.gitignore``'d folder, with the
tracker's run directory and DuckDB file (and so its WAL and lock files) inside
the repository. What counts as code: ``HEAD``, tracked files that differ from it
(any extension) and untracked files with a source suffix; nothing else is read.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import Child, git, make_git_repo, write
from consist import CacheOptions, Tracker
from consist.core.identity.code_identity import DEFAULT_SOURCE_SUFFIXES, CodeIdentityResolver

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

STEP_SOURCE = """\
CALLS = []


def simulate(scale: int = 1) -> None:
    CALLS.append(scale)
"""


class Project:
    """A model repository with the tracker inside it (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.package = f"ci_model_{uuid.uuid4().hex[:10]}"
        make_git_repo(
            root,
            {
                "README.md": "# model\n",
                ".gitignore": "scratch/\n*.tmp\n",
            },
        )
        write(root / self.package / "__init__.py", "")
        write(root / self.package / "steps.py", STEP_SOURCE)
        write(root / "configs" / "coeffs.csv", "name,value\nalpha,0.5\n")
        write(root / "configs" / "settings.yaml", "iterations: 3\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "model code")
        write(root / "data" / "zones.csv", "zone,pop\n1,100\n")
        write(root / "logs" / "setup.log", "started\n")
        write(root / "scratch" / "notes.py", "IGNORED = True\n")
        self.root = root
        sys.path.insert(0, str(root))
        module = __import__(f"{self.package}.steps", fromlist=["simulate"])
        self.step = module.simulate
        self.calls: list[int] = module.CALLS
        self.tracker = self.new_tracker()

    def new_tracker(self, **options: Any) -> Tracker:
        return Tracker(
            run_dir=self.root / "work" / "runs",
            db_path=self.root / "work" / "provenance.duckdb",
            project_root=self.root,
            **options,
        )

    def run(self, tracker: Tracker | None = None, **kwargs: Any) -> Any:
        tracker = tracker or self.tracker
        kwargs.setdefault("config", {"scale": 2})
        return tracker.run(fn=self.step, name="simulate", **kwargs)

    def explanation(self, tracker: Tracker | None = None) -> dict[str, Any]:
        record = (tracker or self.tracker).last_run
        assert record is not None
        return record.run.meta["cache_miss_explanation"]

    def close(self) -> None:
        self.tracker.close()
        sys.path.remove(str(self.root))
        for name in [m for m in sys.modules if m.startswith(self.package)]:
            del sys.modules[name]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    proj = Project(tmp_path / "model_repo")
    yield proj
    proj.close()


class GitCalls:
    """Counts processes started through ``subprocess.Popen`` (git is the only one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.commands: list[list[str]] = []
        real = subprocess.Popen

        def counting(args: Any, *a: Any, **kw: Any) -> Any:
            self.commands.append(list(args))
            return real(args, *a, **kw)

        monkeypatch.setattr(subprocess, "Popen", counting)

    def __len__(self) -> int:
        return len(self.commands)


@pytest.fixture
def git_calls(monkeypatch: pytest.MonkeyPatch) -> GitCalls:
    return GitCalls(monkeypatch)


class FifoReadDetector:
    """Notices any process opening a FIFO for reading, without patching anything.

    Opening a FIFO write-only and non-blocking fails with ENXIO while no reader
    has it open, and succeeds as soon as one does. The detector polls that, and
    when it succeeds writes a byte and closes, so a reader never hangs.
    """

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                time.sleep(0.0005)
                continue
            self.opened += 1
            try:
                os.write(fd, b"x")
            except BrokenPipeError:
                pass  # the reader closed first: it was still noticed
            finally:
                os.close(fd)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.opened


def _read_bytes() -> int:
    """Bytes this process has read through read(2) and friends (``rchar``)."""
    with open("/proc/self/io") as fh:
        for line in fh:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _tick() -> None:
    time.sleep(0.02)


# ---------------------------------------------------------------------------
# What counts as code
# ---------------------------------------------------------------------------


def test_data_logs_outputs_and_ignored_files_never_change_identity(project: Project) -> None:
    assert not project.run().cache_hit
    # A modeler's day: logs appended, new data files, notebook output, a new
    # folder of results, and a scratch script in an ignored folder.
    with open(project.root / "logs" / "setup.log", "a") as fh:
        fh.write("more\n")
    write(project.root / "data" / "trips.parquet", "PAR1....")
    write(project.root / "data" / "zones.csv", "zone,pop\n1,101\n")
    write(project.root / "analysis" / "plot.png", "png")
    write(project.root / "notebooks" / "explore.ipynb", "{}")
    write(project.root / "scratch" / "try.py", "ALSO_IGNORED = 1\n")
    write(project.root / "model.tmp", "ignored by pattern\n")
    _tick()
    again = project.run()
    assert again.cache_hit
    assert project.calls == [2]


def test_tracked_csv_edit_misses_and_names_the_file(project: Project) -> None:
    first = project.run()
    write(project.root / "configs" / "coeffs.csv", "name,value\nalpha,0.7\n")
    _tick()
    second = project.run()
    assert not first.cache_hit and not second.cache_hit
    explanation = project.explanation()
    files = explanation["code"]["files"]
    assert list(files) == ["configs/coeffs.csv"]
    assert files["configs/coeffs.csv"]["change"] == "changed"
    assert "configs/coeffs.csv" in explanation["summary"]
    # Reverting the edit restores the first identity: a hit on the first run.
    write(project.root / "configs" / "coeffs.csv", "name,value\nalpha,0.5\n")
    _tick()
    assert project.run().cache_hit


def test_new_untracked_source_file_misses_and_names_it(project: Project) -> None:
    project.run()
    write(project.root / project.package / "helpers.py", "def helper():\n    return 1\n")
    write(project.root / "R" / "calibrate.R", "x <- 1\n")  # a new folder of R code
    _tick()
    assert not project.run().cache_hit
    explanation = project.explanation()
    files = explanation["code"]["files"]
    assert set(files) == {f"{project.package}/helpers.py", "R/calibrate.R"}
    assert {change["change"] for change in files.values()} == {"added"}
    assert f"{project.package}/helpers.py (added)" in explanation["summary"]
    record = project.tracker.last_run
    assert record is not None
    assert record.run.meta["code_identity_mode"] == "repo_git"


def test_new_commit_misses_and_names_head(project: Project) -> None:
    project.run()
    old_head = git(project.root, "rev-parse", "HEAD").strip()
    write(project.root / "configs" / "settings.yaml", "iterations: 4\n")
    git(project.root, "commit", "-q", "-am", "more iterations")
    new_head = git(project.root, "rev-parse", "HEAD").strip()
    _tick()
    assert not project.run().cache_hit
    explanation = project.explanation()
    assert explanation["code"]["head"] == {"old": old_head, "new": new_head}
    assert f"HEAD {old_head[:12]} -> {new_head[:12]}" in explanation["summary"]
    assert project.run().cache_hit


def test_gitignore_change_is_noticed(project: Project) -> None:
    project.run()
    write(project.root / ".gitignore", "*.tmp\n")  # scratch/ no longer ignored
    _tick()
    assert not project.run().cache_hit
    files = project.explanation()["code"]["files"]
    assert {".gitignore", "scratch/notes.py"} <= set(files)


def test_tracker_files_inside_the_repository_never_count(project: Project) -> None:
    """Run directory, database, WAL, lock and journal files are excluded by path,
    even when their suffixes are declared to be code."""
    suffixes = [".py", ".duckdb", ".wal", ".lock", ".json", ".tmp", ".parquet", ".csv"]
    tracker = project.new_tracker(code_identity_source_suffixes=suffixes)
    project.tracker.close()
    assert not project.run(tracker).cache_hit
    lock = Path(str(tracker.db_path) + ".consist.lock")
    wal = Path(str(tracker.db_path) + ".wal")
    write(wal, "wal")  # as DuckDB leaves it between checkpoints
    write(lock, "")
    write(tracker.run_dir / "outputs" / "script.py", "print('an output')\n")
    # The single-flight folder beside the database (its shared lock file stays).
    claims = Path(str(tracker.db_path) + ".claims")
    assert (claims / "claims.lock").exists()
    write(claims / "blake3_abc.lock", "")  # a per-signature claim (no OFD locks)
    _tick()
    assert project.run(tracker).cache_hit
    code = tracker.last_run.run.meta  # type: ignore[union-attr]
    assert code["code_identity_mode"] == "repo_git"
    # The data CSV next to the code does count under this suffix set.
    write(project.root / "data" / "zones.csv", "zone,pop\n1,102\n")
    _tick()
    assert not project.run(tracker).cache_hit
    assert "data/zones.csv" in project.explanation(tracker)["code"]["files"]
    tracker.close()


# ---------------------------------------------------------------------------
# Never read, never git on the hot path
# ---------------------------------------------------------------------------


def test_untracked_data_is_never_opened_by_any_process(project: Project) -> None:
    detector = FifoReadDetector(project.root / "data" / "feed.csv")
    try:
        project.tracker.close()
        tracker = project.new_tracker()  # a fresh resolver: a full scan with git
        assert not project.run(tracker, config={"scale": 3}).cache_hit
        write(project.root / "data" / "more.csv", "x\n")
        _tick()
        assert project.run(tracker, config={"scale": 3}).cache_hit
        tracker.close()
        assert detector.opened == 0, "an untracked data file (a FIFO here) was opened"
        with open(detector.path, "rb") as fh:  # control: a reader is noticed
            assert fh.read().startswith(b"x")
    finally:
        opened = detector.stop()
    assert opened >= 1


def test_large_untracked_file_is_not_read(project: Project) -> None:
    big = project.root / "data" / "land_use.bin"
    with open(big, "wb") as fh:
        for _ in range(32):
            fh.write(os.urandom(1 << 20))
    project.tracker.close()
    tracker = project.new_tracker()
    before = _read_bytes()
    assert not project.run(tracker, config={"scale": 4}).cache_hit
    read = _read_bytes() - before
    assert read < 4 << 20, f"{read} bytes read by the first run next to a 32 MiB data file"
    tracker.close()
    # Control: the same measurement sees the file once its suffix counts as code.
    counting = project.new_tracker(code_identity_source_suffixes=[".py", ".bin"])
    before = _read_bytes()
    assert not project.run(counting, config={"scale": 4}).cache_hit
    assert _read_bytes() - before >= 32 << 20
    assert "data/land_use.bin" in project.explanation(counting)["code"]["files"]
    counting.close()


def test_hits_spawn_no_git_while_data_and_logs_are_written(
    project: Project, git_calls: GitCalls
) -> None:
    for scale in range(5):
        project.run(config={"scale": scale})
    # Files younger than the racy window (2 s) are re-checked with git until
    # they are older: let the freshly made repository settle first.
    time.sleep(2.2)
    project.run(config={"scale": 0})
    before = len(git_calls)
    for i in range(30):
        write(project.root / "logs" / f"run_{i}.log", "line\n")  # existing untracked folder
        write(project.root / "data" / f"result_{i}.csv", "a\n1\n")
        if i == 10:
            write(project.root / "outputs_new" / "table.csv", "a\n")  # a brand-new folder
        assert project.run(config={"scale": i % 5}).cache_hit
    assert len(git_calls) == before, git_calls.commands[before:]
    # A real code change still reaches git and misses.
    write(project.root / project.package / "steps.py", STEP_SOURCE + "\n# tuned\n")
    _tick()
    assert not project.run(config={"scale": 0}).cache_hit
    assert len(git_calls) > before


def test_second_process_on_the_same_repository_and_store_hits(
    project: Project, children: list[Child]
) -> None:
    assert not project.run(config={"scale": 9}).cache_hit
    project.tracker.close()
    write(project.root / "logs" / "between.log", "x\n")
    source = """
import sys
sys.path.insert(0, sys.argv[1])
from consist import Tracker
module = __import__(sys.argv[2] + ".steps", fromlist=["simulate"])
root = sys.argv[1]
tracker = Tracker(run_dir=root + "/work/runs", db_path=root + "/work/provenance.duckdb",
                  project_root=root)
result = tracker.run(fn=module.simulate, name="simulate", config={"scale": 9})
print("hit" if result.cache_hit else "miss", module.CALLS, flush=True)
tracker.close()
"""
    child = Child(source, str(project.root), project.package)
    children.append(child)
    assert child.wait_for("") == "hit []"  # served from the first process's run
    assert child.finish() == 0


# ---------------------------------------------------------------------------
# The source-suffix set
# ---------------------------------------------------------------------------


def test_suffix_set_on_the_tracker_and_per_run(project: Project) -> None:
    project.run()
    write(project.root / "data" / "matrix.omx", "omx bytes")
    write(project.root / "tools" / "build.pl", "print 1;\n")
    _tick()
    assert project.run().cache_hit  # .omx and .pl are not code by default

    per_run = CacheOptions(code_identity_source_suffixes=[".pl"])
    assert not project.run(cache_options=per_run).cache_hit
    assert set(project.explanation()["code"]["files"]) == {"tools/build.pl"}
    assert project.run(cache_options=per_run).cache_hit
    assert project.run().cache_hit  # the tracker's default set again

    project.tracker.close()
    tracker = project.new_tracker(code_identity_source_suffixes=[".OMX", ".py"])
    assert not project.run(tracker).cache_hit
    assert set(project.explanation(tracker)["code"]["files"]) == {"data/matrix.omx"}
    tracker.close()


@pytest.mark.parametrize("bad", ["py", ".py", [".py", "py"], [".tar.gz"], [3]])
def test_invalid_suffixes_are_rejected_before_anything_is_written(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match="code_identity_source_suffixes"):
        CacheOptions(code_identity_source_suffixes=bad)
    with pytest.raises(ValueError, match="code_identity_source_suffixes"):
        Tracker(run_dir=tmp_path / "runs", code_identity_source_suffixes=bad)
    assert not (tmp_path / "runs").exists()


def test_default_suffixes_cover_the_usual_model_languages() -> None:
    for suffix in (".py", ".pyx", ".r", ".jl", ".java", ".scala", ".kt", ".c", ".cpp"):
        assert suffix in DEFAULT_SOURCE_SUFFIXES
    for suffix in (".f90", ".f", ".for", ".rs", ".go", ".m", ".sh", ".sql", ".h", ".hpp"):
        assert suffix in DEFAULT_SOURCE_SUFFIXES
    for data in (".csv", ".parquet", ".log", ".json", ".yaml", ".ipynb", ".omx", ".h5"):
        assert data not in DEFAULT_SOURCE_SUFFIXES


# ---------------------------------------------------------------------------
# Both proofs (inotify and stat calls) at the resolver level
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("watch", [True, False], ids=["inotify", "stat"])
def test_resolver_proof_in_both_modes(project: Project, git_calls: GitCalls, watch: bool) -> None:
    root = project.root
    excludes = [root / "work" / "runs", root / "work" / "provenance.duckdb"]
    resolver = CodeIdentityResolver(root, exclude_paths=excludes, racy_window_ns=0, watch=watch)
    clean = resolver.resolve()
    assert resolver._core is not None
    expected = "watch" if watch and _inotify_available() else "stat"
    assert resolver._core.tree.mode == expected
    calls = len(git_calls)

    # Data, logs, a new data folder, database companions: no git, same digest.
    write(root / "logs" / "x.log", "1\n")
    write(root / "data" / "new.csv", "1\n")
    write(root / "fresh" / "deeper" / "out.parquet", "1\n")
    write(root / "work" / "provenance.duckdb.wal", "wal")
    write(root / "work" / "provenance.duckdb.consist.lock", "")
    write(root / "work" / "runs" / "consist_runs" / "r.json", "{}")
    _tick()
    for _ in range(3):
        assert resolver.resolve().digest == clean.digest
    assert len(git_calls) == calls

    # An in-place edit of a tracked file with the same size (only its stat or an
    # event shows it) is seen.
    coeffs = root / "configs" / "coeffs.csv"
    coeffs.write_text(coeffs.read_text().replace("0.5", "0.9"))
    _tick()
    edited = resolver.resolve()
    assert edited.digest != clean.digest
    assert set(edited.details["dirty"]) == {"configs/coeffs.csv"}
    fresh = CodeIdentityResolver(root, exclude_paths=excludes, racy_window_ns=0, watch=watch)
    assert fresh.resolve().digest == edited.digest

    # A source file appearing in a folder adopted without git is seen.
    write(root / "fresh" / "deeper" / "model.py", "A = 1\n")
    _tick()
    with_source = resolver.resolve()
    assert "fresh/deeper/model.py" in with_source.details["dirty"]
    assert with_source.details["untracked"] == ["fresh/deeper/model.py"]


def test_forked_child_does_not_read_the_parents_event_queue(tmp_path: Path) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    root = make_git_repo(tmp_path / "repo", {"steps.py": "X = 1\n", "settings.yaml": "a: 1\n"})
    _tick()
    resolver = CodeIdentityResolver(root, racy_window_ns=0)
    clean = resolver.resolve()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            digest = resolver.resolve().digest
            os.write(write_end, b"same" if digest == clean.digest else b"diff")
        except BaseException as exc:
            os.write(write_end, repr(exc).encode()[:200])
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert (status, os.read(read_end, 256)) == (0, b"same")
    os.close(read_end)
    # The parent's queue still carries the events that follow.
    write(root / "settings.yaml", "a: 2\n")
    _tick()
    assert resolver.resolve().digest != clean.digest


def test_after_an_edit_git_runs_once_not_for_the_whole_racy_window(
    project: Project, git_calls: GitCalls
) -> None:
    """With inotify, files younger than the racy window are confirmed by one more
    ``git status`` instead of re-running git on every call until they age."""
    if not _inotify_available():
        pytest.skip("inotify is not available here")
    resolver = CodeIdentityResolver(project.root)  # default 2 s racy window
    write(project.root / "configs" / "coeffs.csv", "name,value\nalpha,0.8\n")
    edited = resolver.resolve()
    assert "configs/coeffs.csv" in edited.details["dirty"]
    calls = len(git_calls)
    for _ in range(5):
        assert resolver.resolve().digest == edited.digest
    assert len(git_calls) == calls
    git(project.root, "commit", "-q", "-am", "tuned alpha")
    committed = resolver.resolve()
    assert committed.details["dirty"] == {}
    calls = len(git_calls)
    assert resolver.resolve().digest == committed.digest
    assert len(git_calls) == calls


def _inotify_available() -> bool:
    from consist.core.identity.code_identity_watch import TreeWatcher, WatchUnavailable

    try:
        TreeWatcher().close()
    except WatchUnavailable:
        return False
    return True
