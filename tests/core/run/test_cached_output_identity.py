"""A cached output is proved to be the one recorded before it is handed back (issue 10, 1).

A hit hands back the files an earlier run produced. If such a file was edited
in place, overwritten by another run at the same path, or deleted, the next
identical run is a miss (and its miss explanation says why) under every mode
that checks outputs: ``lazy`` (the default) proves an unchanged file by its
stat identity against a trusted stat-cache entry and re-reads it otherwise;
``eager``/``strict`` reads every byte; ``none`` checks nothing.

Real git repository in tmp_path with run_dir and the DuckDB file inside it,
untracked data beside the code; real parquet/CSV files; nothing mocked (one
test wraps the hasher's read function to count reads, and still reads).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import consist
from _support import make_model_project, project_tracker, write
from consist import CacheOptions, Tracker
from consist.core.identity import hashing


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project repository with committed code and untracked data and logs beside it."""
    root = make_model_project(tmp_path.resolve() / "project")
    monkeypatch.chdir(root)
    return root


open_tracker = project_tracker


@pytest.fixture
def tracker(repo: Path) -> Iterator[Tracker]:
    t = project_tracker(repo)
    yield t
    t.close()


class Grow:
    """A step reading the untracked households file and writing a table."""

    def __init__(self, repo: Path) -> None:
        self.calls = 0
        self.inputs = {"households": repo / "data" / "households.csv"}

    def __call__(self, households: Path, factor: int) -> pd.DataFrame:
        self.calls += 1
        df = pd.read_csv(households)
        df["size"] = df["size"] * factor
        return df

    def run(self, tracker: Tracker, mode: str = "lazy", factor: int = 2) -> consist.RunResult:
        return tracker.run(
            self,
            name="grow",
            inputs=self.inputs,
            config={"factor": factor},
            outputs=["hh"],
            cache_options=CacheOptions(validate_cached_outputs=mode),
        )


def expected(repo: Path, factor: int = 2) -> list[int]:
    return (pd.read_csv(repo / "data" / "households.csv")["size"] * factor).tolist()


def explanation(result: consist.RunResult) -> dict[str, Any]:
    return result.run.meta["cache_miss_explanation"]


class TestChangedOutputsMiss:
    @pytest.mark.parametrize("mode", ["lazy", "strict"])
    def test_edited_in_place(self, tracker: Tracker, repo: Path, mode: str) -> None:
        grow = Grow(repo)
        first = grow.run(tracker)
        path = first.outputs["hh"].path
        pd.DataFrame({"hh_id": [9], "size": [99]}).to_parquet(path)  # other bytes, same path

        again = grow.run(tracker, mode)
        assert not again.cache_hit and grow.calls == 2
        why = explanation(again)
        assert "changed on disk" in why["cached_outputs"]
        assert first.run_id in why["cached_outputs"] and "'hh'" in why["cached_outputs"]
        assert why["summary"].startswith("cached outputs unusable")
        assert pd.read_parquet(again.outputs["hh"].path)["size"].tolist() == expected(repo)

    @pytest.mark.parametrize("mode", ["lazy", "strict"])
    def test_same_size_edit_with_mtime_restored(
        self, tracker: Tracker, repo: Path, mode: str
    ) -> None:
        calls: list[int] = []

        def report(n: int) -> None:
            calls.append(n)
            consist.output_path("report", "csv").write_text(f"n\n{n}\n")

        first = tracker.run(report, config={"n": 1}, validate_cached_outputs=mode)
        path = first.outputs["report"].path
        st = path.stat()
        path.write_text("n\n7\n")  # same size
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        again = tracker.run(report, config={"n": 1}, validate_cached_outputs=mode)
        assert not again.cache_hit and calls == [1, 1]
        assert again.outputs["report"].path.read_text() == "n\n1\n"

    @pytest.mark.parametrize("mode", ["lazy", "strict"])
    def test_deleted(self, tracker: Tracker, repo: Path, mode: str) -> None:
        grow = Grow(repo)
        grow.run(tracker).outputs["hh"].path.unlink()
        again = grow.run(tracker, mode)
        assert not again.cache_hit and grow.calls == 2
        assert "missing" in explanation(again)["cached_outputs"]

    def test_overwritten_by_another_run_at_a_shared_path(
        self, tracker: Tracker, repo: Path
    ) -> None:
        """Two configs writing one explicit destination: a hit never serves the other's bytes."""
        shared = repo / "results" / "summary.csv"
        calls: list[int] = []

        def summarise(k: int) -> Path:
            calls.append(k)
            write(shared, f"k\n{k}\n")
            return shared

        tracker.run(summarise, config={"k": 1}, outputs=["summary"])
        tracker.run(summarise, config={"k": 2}, outputs=["summary"])
        assert shared.read_text() == "k\n2\n"
        again = tracker.run(summarise, config={"k": 1}, outputs=["summary"])
        assert not again.cache_hit and calls == [1, 2, 1]
        assert again.outputs["summary"].path.read_text() == "k\n1\n"

    def test_a_file_inside_a_directory_output(self, tracker: Tracker, repo: Path) -> None:
        calls: list[int] = []

        def tiles(n: int) -> Path:
            calls.append(n)
            out = repo / "tiles" / str(n)
            for i in range(3):
                write(out / f"part-{i}.csv", f"i\n{i * n}\n")
            return out

        first = tracker.run(tiles, config={"n": 3}, outputs=["tiles"])
        assert tracker.run(tiles, config={"n": 3}, outputs=["tiles"]).cache_hit
        (first.outputs["tiles"].path / "part-1.csv").write_text("i\n0\n")
        again = tracker.run(tiles, config={"n": 3}, outputs=["tiles"])
        assert not again.cache_hit and calls == [3, 3]


class TestIntactOutputsHit:
    @pytest.mark.parametrize("mode", ["lazy", "strict", "none"])
    def test_unchanged(self, tracker: Tracker, repo: Path, mode: str) -> None:
        grow = Grow(repo)
        first = grow.run(tracker)
        hit = grow.run(tracker, mode)
        assert hit.cache_hit and grow.calls == 1
        assert hit.outputs["hh"].path == first.outputs["hh"].path
        assert pd.read_parquet(hit.outputs["hh"].path)["size"].tolist() == expected(repo)

    def test_none_checks_nothing(self, tracker: Tracker, repo: Path) -> None:
        """Documented: ``none`` is for outputs restored by hand or never read."""
        grow = Grow(repo)
        first = grow.run(tracker)
        pd.DataFrame({"hh_id": [9], "size": [99]}).to_parquet(first.outputs["hh"].path)
        assert grow.run(tracker, "none").cache_hit and grow.calls == 1


class TestLazyProofCost:
    def test_an_unchanged_output_is_proved_by_stat_not_read(
        self, repo: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reads: list[str] = []  # files whose bytes the hasher read
        real = hashing._hash_fd

        def counting(fd: int, size_hint: int) -> str:
            reads.append(os.readlink(f"/proc/self/fd/{fd}"))
            return real(fd, size_hint)

        if not Path("/proc/self/fd").is_dir():
            pytest.skip("needs /proc/self/fd to tell which file a read belongs to")
        monkeypatch.setattr(hashing, "_hash_fd", counting)
        grow = Grow(repo)
        tracker = open_tracker(repo)
        try:
            first = grow.run(tracker)
            output = str(first.outputs["hh"].path)
            # Past the racy window: a stat identity recorded now can be trusted.
            time.sleep(2.2)
            assert grow.run(tracker).cache_hit  # reads the output once, remembers it
            assert reads.count(output) == 2  # when it was produced, and now
            assert grow.run(tracker).cache_hit
            assert grow.run(tracker).cache_hit
            assert reads.count(output) == 2  # proved by stat calls alone
        finally:
            tracker.close()

        # Another tracker (fresh memory) finds the proof in the store.
        again = open_tracker(repo)
        try:
            hit = grow.run(again)
            assert hit.cache_hit and grow.calls == 1
            assert reads.count(output) == 2
            # An edit that keeps the size and restores mtime changes ctime: read, miss.
            path = Path(output)
            st = path.stat()
            data = bytearray(path.read_bytes())
            data[-20] ^= 0xFF
            path.write_bytes(bytes(data))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
            miss = grow.run(again)
            assert not miss.cache_hit and grow.calls == 2
            assert reads.count(output) == 3
            assert "changed on disk" in explanation(miss)["cached_outputs"]
        finally:
            again.close()


class TestVerifyMany:
    """``ContentHasher.verify_many``, the proof the cache relies on."""

    def test_files_directories_and_gone_paths(self, tmp_path: Path) -> None:
        hasher = hashing.ContentHasher()  # entries of just-written files are never trusted
        small = write(tmp_path / "a.csv", "x\n1\n")
        tree = tmp_path / "tree"
        write(tree / "p.csv", "p\n")
        write(tree / "sub" / "q.csv", "q\n")
        gone = tmp_path / "gone.csv"
        items = [(small, hasher.digest(small)), (tree, hasher.digest(tree))]
        assert hasher.verify_many(items) == [True, True]
        assert hasher.verify_many(items, trust_stat=False) == [True, True]
        assert hasher.verify_many([(gone, items[0][1])]) == [False]
        small.write_text("x\n2\n")
        (tree / "sub" / "q.csv").write_text("Q\n")
        assert hasher.verify_many(items) == [False, False]
        assert hasher.verify_many(items, trust_stat=False) == [False, False]
        with pytest.raises(ValueError, match="unknown algorithm"):
            hasher.verify_many([(small, "md5:abc")])

    def test_stat_digests_of_the_fast_strategy(self, tmp_path: Path) -> None:
        fast = hashing.ContentHasher(strategy="fast")
        path = write(tmp_path / "a.csv", "x\n1\n")
        recorded = fast.digest(path)
        assert fast.verify_many([(path, recorded)]) == [True]
        path.write_text("x\n22\n")
        assert fast.verify_many([(path, recorded)]) == [False]

    def test_a_trusted_entry_spares_the_read_and_is_persisted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        backend = hashing.MemoryStatCache()
        hasher = hashing.ContentHasher(backend, racy_window_ns=0)
        path = write(tmp_path / "small.csv", "x\n1\n")  # far below min_cached_bytes
        digest = hashing.hash_file(path)
        assert hasher.verify_many([(path, digest)]) == [True]  # read once, remembered
        backend.put_many(hasher.take_new_entries())
        assert len(backend) == 1
        reads: list[int] = []
        real = hashing._hash_fd
        monkeypatch.setattr(hashing, "_hash_fd", lambda fd, n: reads.append(n) or real(fd, n))
        fresh = hashing.ContentHasher(backend, racy_window_ns=0)  # knows only the backend
        assert fresh.verify_many([(path, digest)]) == [True]
        assert fresh.verify_many([(path, "blake3:" + "0" * 64)]) == [False]
        assert reads == []
