"""Helpers shared by the test modules (imported as ``_support``; tests/ is on sys.path)."""

from __future__ import annotations

import queue
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from consist import Tracker

GIT_IDENTITY = (
    "-c",
    "user.name=consist-tests",
    "-c",
    "user.email=tests@example.invalid",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
)


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a fixed identity; return stdout (fails the test on error)."""
    proc = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"git {args} failed: {proc.stderr}"
    return proc.stdout


def make_git_repo(path: Path, files: dict[str, str]) -> Path:
    """A repository at ``path`` with ``files`` committed."""
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (creating parents); return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def persisted(tracker: Tracker) -> tuple[dict[str, bytes], dict[str, int]]:
    """Journal files (with bytes), the latest pointer, and DB row counts.

    Counts come first (reading the store commits queued writes); the pending
    ledger under ``consist_runs/.pending`` is bookkeeping and left out.
    """
    counts = tracker.store.table_counts()
    files: dict[str, bytes] = {}
    runs_dir = tracker.run_dir / "consist_runs"
    if runs_dir.exists():
        for p in sorted(runs_dir.rglob("*")):
            if p.is_file() and ".pending" not in p.parts:
                files[str(p.relative_to(tracker.run_dir))] = p.read_bytes()
    latest = tracker.run_dir / "consist.json"
    if latest.exists():
        files["consist.json"] = latest.read_bytes()
    return files, counts


def in_threads(work, count: int, timeout: float = 120.0) -> list[BaseException]:
    """Run ``work(n)`` for n in range(count), each in its own thread; the errors they raised."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return errors


class Child:
    """A child Python process whose stdout lines are collected by a thread."""

    def __init__(
        self, source: str, *args: object, stdin: bool = False, timeout: float = 60.0
    ) -> None:
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, "-c", source, *map(str, args)],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_for(self, prefix: str, timeout: float | None = None) -> str:
        """The first stdout line starting with ``prefix`` (AssertionError on exit/timeout)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"child never printed {prefix!r}: {self.stderr()}")
            try:
                line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise AssertionError(
                        f"child exited ({self.proc.returncode}) before printing {prefix!r}: "
                        f"{self.stderr()}"
                    ) from None
                continue
            if line.startswith(prefix):
                return line

    def send(self, line: str) -> None:
        """Write one line to the child's stdin (started with ``stdin=True``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def sigkill(self) -> None:
        """Kill the child with SIGKILL and wait for it."""
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def finish(self, timeout: float | None = None) -> int:
        """Wait for the child to exit; its return code."""
        rc = self.proc.wait(timeout=self.timeout if timeout is None else timeout)
        self._reader.join(timeout=5)
        return rc

    def stderr(self) -> str:
        """The child's stderr once it has exited."""
        if self.proc.poll() is None or self.proc.stderr is None:
            return "<still running>"
        return self.proc.stderr.read()

    def kill(self) -> None:
        """Kill the child if it is still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def make_model_project(root: Path) -> Path:
    """A model repository as modelers keep one: committed code and settings,
    untracked data and a log beside them."""
    make_git_repo(
        root, {"model.py": "def simulate():\n    return 1\n", "settings.yaml": "mode: base\n"}
    )
    write(root / "data" / "households.csv", "hh_id,size\n1,2\n2,4\n3,1\n")
    write(root / "logs" / "model.log", "started\n")
    return root


def project_tracker(repo: Path) -> Tracker:
    """A tracker with its run directory and database inside ``repo``."""
    return Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)


def random_lineage_graph(
    seed: int, runs: int
) -> list[tuple[str, list[uuid.UUID], list[uuid.UUID]]]:
    """A random run graph: ``(run id, input ids, output ids)`` in the order the runs happen.

    Chains and diamonds (inputs drawn from earlier outputs), raw inputs read by
    several runs, runs handed an earlier output again (cache hits) and runs
    that output an artifact others read raw.
    """
    rng = random.Random(seed)
    produced: list[uuid.UUID] = []
    raw: list[uuid.UUID] = [uuid.uuid4() for _ in range(4)]
    graph = []
    for k in range(runs):
        run_id = f"run_{seed}_{k}"
        pool = produced + raw
        inputs = rng.sample(pool, k=min(len(pool), rng.choice([0, 1, 1, 1, 2, 3])))
        if rng.random() < 0.1:
            raw.append(uuid.uuid4())
            inputs.append(raw[-1])
        outputs = [uuid.uuid4() for _ in range(rng.choice([0, 1, 1, 2]))]
        roll = rng.random()
        if roll < 0.15 and produced:
            outputs.append(rng.choice(produced))  # a cache hit handed an earlier output
        elif roll < 0.25 and raw:
            outputs.append(rng.choice(raw))  # a run outputs what others read raw
        produced.extend(o for o in outputs if o not in produced)
        graph.append((run_id, inputs, outputs))
    return graph
