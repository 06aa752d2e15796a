"""Tests for consist.core.identity.hashing: digests, directory Merkle, stat cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import blake3
import pytest

from consist.core.identity import hashing
from consist.core.identity.hashing import (
    ALGORITHM,
    ContentHasher,
    MemoryStatCache,
    StatCacheEntry,
    StatKey,
    hash_bytes,
    hash_directory,
    hash_file,
)

MIB = 1 << 20
HEX64 = set("0123456789abcdef")
SENTINEL = "blake3:" + "ab" * 32  # a syntactically valid digest no real file here has


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repetitive-enough bytes (cheap to build for tens of MiB)."""
    block = blake3.blake3(seed.to_bytes(8, "little")).digest(length=1 << 16)
    reps, rest = divmod(size, len(block))
    return block * reps + block[:rest]


def _edit_in_place(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes without changing size, inode or (hence) anything but times."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _next_tick() -> None:
    """Sleep past the kernel's coarse timestamp granularity so mtime/ctime can move."""
    time.sleep(0.05)


class CountingReader:
    """Wraps hashing._hash_fd to count how often file content is actually read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = hashing._hash_fd

        def counted(fd: int, size_hint: int) -> str:
            self.calls += 1
            return real(fd, size_hint)

        monkeypatch.setattr(hashing, "_hash_fd", counted)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> CountingReader:
    return CountingReader(monkeypatch)


# ---------------------------------------------------------------------------
# hash_bytes / hash_file
# ---------------------------------------------------------------------------


def test_algorithm_and_label() -> None:
    assert ALGORITHM == "blake3"
    digest = hash_bytes(b"hello")
    prefix, hexpart = digest.split(":")
    assert prefix == "blake3"
    assert len(hexpart) == 64 and set(hexpart) <= HEX64


def test_hash_bytes_known_vector() -> None:
    # Official BLAKE3 test vector for the empty input.
    assert hash_bytes(b"") == (
        "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )
    assert hash_bytes(b"abc") == "blake3:" + blake3.blake3(b"abc").hexdigest()
    assert hash_bytes(bytearray(b"abc")) == hash_bytes(memoryview(b"abc")) == hash_bytes(b"abc")


@pytest.mark.parametrize("size", [0, 1, 1023, 64 * 1024 + 7, 3 * MIB + 5])
def test_hash_file_equals_hash_bytes(tmp_path: Path, size: int) -> None:
    data = _pattern(size, seed=size)
    path = _write(tmp_path / "f.bin", data)
    assert hash_file(path) == hash_bytes(data)
    assert hash_file(str(path)) == hash_bytes(data)


@pytest.mark.slow
def test_large_file_pipelined_equals_hash_bytes(tmp_path: Path) -> None:
    # 70 MiB + a ragged tail: exercises the pipelined reader (>= 64 MiB) across many
    # 4 MiB buffers and a final short read.
    data = _pattern(70 * MIB + 12345, seed=7)
    path = _write(tmp_path / "big.bin", data)
    assert hash_file(path) == hash_bytes(data)
    assert hash_file(path) == "blake3:" + blake3.blake3(data).hexdigest()


def test_medium_file_streamed_equals_hash_bytes(tmp_path: Path) -> None:
    data = _pattern(40 * MIB + 3, seed=3)
    path = _write(tmp_path / "medium.bin", data)
    assert hash_file(path) == hash_bytes(data)


def test_all_reading_tiers_agree(tmp_path: Path) -> None:
    data = _pattern(5 * MIB + 17, seed=11)
    path = _write(tmp_path / "f.bin", data)
    expected = blake3.blake3(data).hexdigest()
    fd = os.open(path, os.O_RDONLY)
    try:
        for reader in (
            lambda: hashing._hash_fd(fd, 0),  # small tier
            lambda: hashing._hash_fd_streamed(fd),
            lambda: hashing._hash_fd_pipelined(fd),
        ):
            os.lseek(fd, 0, os.SEEK_SET)
            assert reader() == expected
    finally:
        os.close(fd)


def test_hash_file_missing_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        hash_file(missing)


def test_hash_file_on_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        hash_file(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_hash_file_on_fifo_raises_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        hash_file(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        ContentHasher().digest(fifo)
    # Inside a directory, special files carry no content and are skipped.
    assert hash_directory(tmp_path) == hash_bytes(b"consist-dir-v1\0")


def test_hash_file_follows_symlink(tmp_path: Path) -> None:
    target = _write(tmp_path / "target.txt", b"content")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert hash_file(link) == hash_file(target)


# ---------------------------------------------------------------------------
# hash_directory
# ---------------------------------------------------------------------------


def test_empty_directory_hashes(tmp_path: Path) -> None:
    digest = hash_directory(tmp_path)
    assert digest.startswith("blake3:")
    # Domain-tagged pre-image: not the digest of empty content.
    assert digest != hash_bytes(b"")
    assert digest == hash_bytes(b"consist-dir-v1\0")


def test_directory_preimage_layout(tmp_path: Path) -> None:
    _write(tmp_path / "b.txt", b"B")
    _write(tmp_path / "a" / "x.txt", b"X")
    expected_preimage = (
        b"consist-dir-v1\0"
        + b"a/x.txt\0"
        + hash_bytes(b"X").encode()
        + b"\n"
        + b"b.txt\0"
        + hash_bytes(b"B").encode()
        + b"\n"
    )
    assert hash_directory(tmp_path) == hash_bytes(expected_preimage)


def test_directory_order_independent_of_creation(tmp_path: Path) -> None:
    files = {"a.txt": b"1", "b/c.txt": b"2", "b/d/e.txt": b"3", "z.txt": b"4"}
    first, second = tmp_path / "one", tmp_path / "two"
    for name, data in files.items():
        _write(first / name, data)
    for name, data in reversed(list(files.items())):
        _write(second / name, data)
    assert hash_directory(first) == hash_directory(second)


def test_directory_rename_changes_digest(tmp_path: Path) -> None:
    _write(tmp_path / "a.txt", b"same")
    before = hash_directory(tmp_path)
    (tmp_path / "a.txt").rename(tmp_path / "b.txt")
    assert hash_directory(tmp_path) != before


def test_directory_move_between_subdirs_changes_digest(tmp_path: Path) -> None:
    _write(tmp_path / "x" / "f.txt", b"same")
    (tmp_path / "y").mkdir()
    before = hash_directory(tmp_path)
    (tmp_path / "x" / "f.txt").rename(tmp_path / "y" / "f.txt")
    assert hash_directory(tmp_path) != before


def test_directory_content_change_changes_digest(tmp_path: Path) -> None:
    _write(tmp_path / "sub" / "deep" / "f.txt", b"v1")
    before = hash_directory(tmp_path)
    _write(tmp_path / "sub" / "deep" / "f.txt", b"v2")
    assert hash_directory(tmp_path) != before


def test_directory_new_file_changes_digest(tmp_path: Path) -> None:
    _write(tmp_path / "f.txt", b"v1")
    before = hash_directory(tmp_path)
    _write(tmp_path / "nested" / "g.txt", b"")
    assert hash_directory(tmp_path) != before


def test_directory_ignores_empty_subdirectories(tmp_path: Path) -> None:
    _write(tmp_path / "f.txt", b"v1")
    before = hash_directory(tmp_path)
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    assert hash_directory(tmp_path) == before


def test_directory_same_content_different_location(tmp_path: Path) -> None:
    for root in ("one", "two"):
        _write(tmp_path / root / "d" / "f.txt", b"x")
    assert hash_directory(tmp_path / "one") == hash_directory(tmp_path / "two")


def test_directory_follows_file_symlinks_and_skips_dangling(tmp_path: Path) -> None:
    outside = _write(tmp_path / "outside.txt", b"linked content")
    real, linked = tmp_path / "real", tmp_path / "linked"
    _write(real / "f.txt", b"linked content")
    linked.mkdir()
    (linked / "f.txt").symlink_to(outside)
    (linked / "dangling").symlink_to(tmp_path / "does-not-exist")
    (linked / "self-loop").symlink_to(linked / "self-loop")
    assert hash_directory(linked) == hash_directory(real)
    _write(outside, b"changed through the link")
    assert hash_directory(linked) != hash_directory(real)


def test_directory_follows_dir_symlinks_and_skips_cycles(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _write(data_dir / "f.txt", b"payload")
    root = tmp_path / "root"
    root.mkdir()
    (root / "data").symlink_to(data_dir, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # cycle: skipped
    expected = tmp_path / "expected"
    _write(expected / "data" / "f.txt", b"payload")
    assert hash_directory(root) == hash_directory(expected)
    # Content reached through a directory symlink still counts.
    _write(data_dir / "f.txt", b"edited")
    assert hash_directory(root) != hash_directory(expected)


def test_directory_uses_given_file_digest(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "f.txt", b"x")
    seen: list[Path] = []

    def fake_digest(p: Path) -> str:
        seen.append(p)
        return SENTINEL

    digest = hash_directory(tmp_path, file_digest=fake_digest)
    assert seen == [tmp_path / "a" / "f.txt"]
    assert digest == hash_bytes(b"consist-dir-v1\0a/f.txt\0" + SENTINEL.encode() + b"\n")


def test_directory_missing_and_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing-dir"):
        hash_directory(tmp_path / "missing-dir")
    f = _write(tmp_path / "f.txt", b"x")
    with pytest.raises(NotADirectoryError):
        hash_directory(f)


def test_content_hasher_directory_matches_hash_directory(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "small.txt", b"small")
    _write(tmp_path / "d" / "sub" / "big.bin", _pattern(2 * MIB, seed=1))
    expected = hash_directory(tmp_path / "d")
    hasher = ContentHasher(racy_window_ns=0)
    assert hasher.digest(tmp_path / "d") == expected
    assert hasher.digest(tmp_path / "d") == expected  # second time via the cache


# ---------------------------------------------------------------------------
# StatKey / ContentHasher basics
# ---------------------------------------------------------------------------


def test_stat_key_from_stat(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.txt", b"abc")
    st = os.stat(path)
    key = StatKey.from_stat(st)
    assert key == StatKey(st.st_dev, st.st_ino, 3, st.st_mtime_ns, st.st_ctime_ns)


def test_bad_strategy_names_parameter() -> None:
    with pytest.raises(ValueError, match="hashing_strategy") as info:
        ContentHasher(strategy="quick")
    assert "'full'" in str(info.value) and "'fast'" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"min_cached_bytes": -1}, "min_cached_bytes"),
        ({"racy_window_ns": -5}, "racy_window_ns"),
        ({"racy_window_ns": 1.5}, "racy_window_ns"),
    ],
)
def test_bad_numeric_options(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ContentHasher(**kwargs)  # type: ignore[arg-type]


def test_content_hasher_missing_path(tmp_path: Path) -> None:
    hasher = ContentHasher()
    with pytest.raises(FileNotFoundError, match=r"ghost\.parquet"):
        hasher.digest(tmp_path / "ghost.parquet")
    present = _write(tmp_path / "present.txt", b"x")
    with pytest.raises(FileNotFoundError, match=r"ghost\.parquet"):
        hasher.digest_many([present, tmp_path / "ghost.parquet"])


def test_digest_many_matches_individual_digests(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"f{i}.bin", _pattern(i * 700_000, seed=i)) for i in range(5)]
    _write(tmp_path / "d" / "x.txt", b"x")
    targets = [*paths, tmp_path / "d", paths[0]]
    hasher = ContentHasher(racy_window_ns=0)
    expected = [hash_file(p) for p in paths] + [hash_directory(tmp_path / "d"), hash_file(paths[0])]
    assert hasher.digest_many(targets) == expected
    assert hasher.digest_many(targets) == expected
    assert hasher.digest_many([]) == []


def test_small_files_bypass_cache(tmp_path: Path, reads: CountingReader) -> None:
    path = _write(tmp_path / "small.txt", b"tiny")
    backend = RecordingBackend()
    hasher = ContentHasher(backend, min_cached_bytes=1024, racy_window_ns=0)
    for _ in range(3):
        assert hasher.digest(path) == hash_bytes(b"tiny")
    assert reads.calls == 3  # read every time
    assert backend.get_calls == []  # never looked up
    assert hasher.take_new_entries() == []  # never recorded


def test_file_exactly_at_threshold_is_cached(tmp_path: Path, reads: CountingReader) -> None:
    path = _write(tmp_path / "f.bin", b"x" * 1024)
    hasher = ContentHasher(min_cached_bytes=1024, racy_window_ns=0)
    hasher.digest(path)
    hasher.digest(path)
    assert reads.calls == 1
    assert len(hasher.take_new_entries()) == 1


# ---------------------------------------------------------------------------
# Stat cache
# ---------------------------------------------------------------------------


class RecordingBackend(MemoryStatCache):
    """MemoryStatCache that records the batches it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.get_calls: list[list[str]] = []
        self.put_calls = 0

    def get_many(self, paths):  # type: ignore[no-untyped-def]
        self.get_calls.append(list(paths))
        return super().get_many(paths)

    def put_many(self, entries):  # type: ignore[no-untyped-def]
        self.put_calls += 1
        super().put_many(entries)


def _sentinel_entry(path: Path, *, recorded_ns: int | None = None) -> StatCacheEntry:
    st = os.stat(path)
    key = StatKey.from_stat(st)
    if recorded_ns is None:
        recorded_ns = max(key.mtime_ns, key.ctime_ns) + 10_000_000_000
    return StatCacheEntry(
        path=os.path.realpath(path), key=key, digest=SENTINEL, recorded_ns=recorded_ns
    )


def test_trusted_backend_entry_is_returned_without_reading(
    tmp_path: Path, reads: CountingReader
) -> None:
    path = _write(tmp_path / "big.bin", _pattern(2 * MIB))
    backend = MemoryStatCache()
    backend.put_many([_sentinel_entry(path)])
    hasher = ContentHasher(backend)  # default 2 s racy window; entry is 10 s "old"
    assert hasher.digest(path) == SENTINEL
    assert reads.calls == 0
    assert hasher.take_new_entries() == []


def test_second_digest_of_unchanged_file_does_not_read(
    tmp_path: Path, reads: CountingReader
) -> None:
    data = _pattern(3 * MIB)
    path = _write(tmp_path / "big.bin", data)
    hasher = ContentHasher(racy_window_ns=0)
    assert hasher.digest(path) == hash_bytes(data)
    assert reads.calls == 1
    assert hasher.digest(path) == hash_bytes(data)
    assert hasher.digest(str(path)) == hash_bytes(data)
    assert reads.calls == 1


def test_cache_keyed_by_resolved_path(tmp_path: Path, reads: CountingReader) -> None:
    path = _write(tmp_path / "big.bin", _pattern(2 * MIB))
    link = tmp_path / "alias.bin"
    link.symlink_to(path)
    hasher = ContentHasher(racy_window_ns=0)
    hasher.digest(path)
    hasher.digest(link)
    hasher.digest(tmp_path / "." / "big.bin")
    assert reads.calls == 1
    (entry,) = hasher.take_new_entries()
    assert entry.path == os.path.realpath(path)
    assert os.path.isabs(entry.path)


def test_in_place_edit_same_size_detected(tmp_path: Path) -> None:
    data = _pattern(2 * MIB)
    path = _write(tmp_path / "big.bin", data)
    hasher = ContentHasher(racy_window_ns=0)
    first = hasher.digest(path)
    _next_tick()
    _edit_in_place(path, 1000, b"EDITED")
    edited = data[:1000] + b"EDITED" + data[1006:]
    assert os.path.getsize(path) == len(data)
    assert hasher.digest(path) == hash_bytes(edited) != first


def test_in_place_edit_with_mtime_restored_detected(tmp_path: Path) -> None:
    data = _pattern(2 * MIB)
    path = _write(tmp_path / "big.bin", data)
    hasher = ContentHasher(racy_window_ns=0)
    first = hasher.digest(path)
    st = os.stat(path)
    _next_tick()
    _edit_in_place(path, 0, b"\x00\x01\x02")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # hide the edit from mtime
    st_after = os.stat(path)
    assert (st_after.st_size, st_after.st_mtime_ns, st_after.st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )
    assert st_after.st_ctime_ns != st.st_ctime_ns
    assert hasher.digest(path) == hash_bytes(b"\x00\x01\x02" + data[3:]) != first


def test_stale_backend_entry_with_different_key_is_ignored(
    tmp_path: Path, reads: CountingReader
) -> None:
    data = _pattern(2 * MIB)
    path = _write(tmp_path / "big.bin", data)
    entry = _sentinel_entry(path)
    for field, value in [
        ("size", entry.key.size + 1),
        ("mtime_ns", entry.key.mtime_ns - 1),
        ("ctime_ns", entry.key.ctime_ns - 1),
        ("ino", entry.key.ino + 1),
        ("dev", entry.key.dev + 1),
    ]:
        wrong = StatKey(**{**entry.key.__dict__, field: value})
        backend = MemoryStatCache()
        backend.put_many([StatCacheEntry(entry.path, wrong, SENTINEL, entry.recorded_ns)])
        assert ContentHasher(backend).digest(path) == hash_bytes(data), field
    assert reads.calls == 5


def test_racy_entry_is_rehashed(tmp_path: Path, reads: CountingReader) -> None:
    data = _pattern(2 * MIB)
    path = _write(tmp_path / "big.bin", data)
    key = StatKey.from_stat(os.stat(path))
    newest = max(key.mtime_ns, key.ctime_ns)
    backend = MemoryStatCache()
    # Read only 1 ms after the last change: within a 2 s window, so not trusted.
    backend.put_many([_sentinel_entry(path, recorded_ns=newest + 1_000_000)])
    hasher = ContentHasher(backend, racy_window_ns=2_000_000_000)
    assert hasher.digest(path) == hash_bytes(data)
    assert reads.calls == 1
    # The same entry is trusted once the window is smaller than its age.
    assert ContentHasher(backend, racy_window_ns=1_000_000).digest(path) == SENTINEL
    assert reads.calls == 1


def test_racy_boundary_uses_later_of_mtime_and_ctime(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.bin", _pattern(2 * MIB))
    key = StatKey.from_stat(os.stat(path))
    window = 1_000_000_000
    newest = max(key.mtime_ns, key.ctime_ns)
    backend = MemoryStatCache()
    backend.put_many([_sentinel_entry(path, recorded_ns=newest + window)])
    assert ContentHasher(backend, racy_window_ns=window).digest(path) == SENTINEL
    backend.put_many([_sentinel_entry(path, recorded_ns=newest + window - 1)])
    assert ContentHasher(backend, racy_window_ns=window).digest(path) == hash_file(path)


def test_fresh_file_is_racy_with_default_window(tmp_path: Path, reads: CountingReader) -> None:
    # A file written just now cannot be trusted by the default 2 s window: both
    # digests read the content (the second one is correct even if the first entry
    # had been recorded in the same timestamp tick as an edit).
    path = _write(tmp_path / "big.bin", _pattern(2 * MIB))
    hasher = ContentHasher()
    hasher.digest(path)
    hasher.digest(path)
    assert reads.calls == 2


def test_recorded_ns_taken_before_reading(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path / "big.bin", _pattern(2 * MIB))
    read_at: list[int] = []
    real = hashing._hash_fd

    def spy(fd: int, size_hint: int) -> str:
        read_at.append(time.time_ns())
        return real(fd, size_hint)

    monkeypatch.setattr(hashing, "_hash_fd", spy)
    hasher = ContentHasher(racy_window_ns=0)
    hasher.digest(path)
    (entry,) = hasher.take_new_entries()
    assert entry.recorded_ns <= read_at[0]
    assert entry.key == StatKey.from_stat(os.stat(path))
    assert entry.digest == hash_file(path)


def test_file_changing_while_read_is_not_cached(tmp_path: Path, monkeypatch) -> None:
    data = _pattern(2 * MIB)
    path = _write(tmp_path / "big.bin", data)
    real = hashing._hash_fd

    def read_then_append(fd: int, size_hint: int) -> str:
        digest = real(fd, size_hint)
        with open(path, "ab") as fh:  # a writer appends while we were reading
            fh.write(b"more")
        return digest

    monkeypatch.setattr(hashing, "_hash_fd", read_then_append)
    hasher = ContentHasher(racy_window_ns=0)
    assert hasher.digest(path) == hash_bytes(data)  # returned...
    assert hasher.take_new_entries() == []  # ...but not cached


def test_entries_persist_through_backend(tmp_path: Path, reads: CountingReader) -> None:
    data = _pattern(2 * MIB)
    path = _write(tmp_path / "big.bin", data)
    backend = RecordingBackend()
    first = ContentHasher(backend, racy_window_ns=0)
    assert first.digest(path) == hash_bytes(data)
    assert backend.put_calls == 0  # the hasher never writes its backend itself
    backend.put_many(first.take_new_entries())  # the caller persists

    second = ContentHasher(backend, racy_window_ns=0)
    assert second.digest(path) == hash_bytes(data)
    assert reads.calls == 1
    assert second.take_new_entries() == []  # nothing new learned


def test_backend_entry_not_reused_when_racy_for_new_hasher(
    tmp_path: Path, reads: CountingReader
) -> None:
    path = _write(tmp_path / "big.bin", _pattern(2 * MIB))
    backend = MemoryStatCache()
    first = ContentHasher(backend, racy_window_ns=0)
    first.digest(path)
    backend.put_many(first.take_new_entries())
    # The entry was recorded right after the file was written: racy under 1 hour.
    ContentHasher(backend, racy_window_ns=3_600 * 10**9).digest(path)
    assert reads.calls == 2


def test_digest_many_single_backend_round_trip(tmp_path: Path, reads: CountingReader) -> None:
    paths = [_write(tmp_path / f"f{i}.bin", _pattern(MIB + i, seed=i)) for i in range(4)]
    _write(tmp_path / "d" / "inner.bin", _pattern(MIB + 99, seed=99))
    _write(tmp_path / "d" / "small.txt", b"small")
    backend = RecordingBackend()
    hasher = ContentHasher(backend, racy_window_ns=0)
    hasher.digest_many([*paths, tmp_path / "d"])
    assert len(backend.get_calls) == 1
    assert sorted(backend.get_calls[0]) == sorted(
        [os.path.realpath(p) for p in paths] + [os.path.realpath(tmp_path / "d" / "inner.bin")]
    )
    # Everything is now in the memory layer: no further backend lookups.
    hasher.digest_many([*paths, tmp_path / "d"])
    assert len(backend.get_calls) == 1
    assert reads.calls == 5 + 1 + 1  # 5 large once, small.txt twice


def test_memory_layer_defers_to_backend_when_stale(tmp_path: Path) -> None:
    # Another process may have hashed the new version and persisted it.
    data = _pattern(2 * MIB)
    path = _write(tmp_path / "big.bin", data)
    backend = MemoryStatCache()
    hasher = ContentHasher(backend, racy_window_ns=0)
    hasher.digest(path)
    _next_tick()
    _edit_in_place(path, 0, b"Z")
    backend.put_many([_sentinel_entry(path)])  # the "other process" result
    assert hasher.digest(path) == SENTINEL


def test_backend_entry_with_other_algorithm_is_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.bin", _pattern(2 * MIB))
    good = _sentinel_entry(path)
    backend = MemoryStatCache()
    backend.put_many([StatCacheEntry(good.path, good.key, "sha256:" + "0" * 64, good.recorded_ns)])
    assert ContentHasher(backend).digest(path) == hash_file(path)


def test_take_new_entries_returns_and_clears(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.bin", _pattern(2 * MIB, seed=1))
    b = _write(tmp_path / "b.bin", _pattern(2 * MIB, seed=2))
    hasher = ContentHasher(racy_window_ns=0)
    hasher.digest_many([a, b, a])
    entries = hasher.take_new_entries()
    assert {e.path for e in entries} == {os.path.realpath(a), os.path.realpath(b)}
    assert {e.digest for e in entries} == {hash_file(a), hash_file(b)}
    for e in entries:
        assert isinstance(e.key, StatKey)
        assert e.recorded_ns <= time.time_ns()
    assert hasher.take_new_entries() == []


def test_memory_stat_cache_roundtrip(tmp_path: Path) -> None:
    cache = MemoryStatCache()
    key = StatKey(1, 2, 3, 4, 5)
    e1 = StatCacheEntry("/x", key, SENTINEL, 10)
    e2 = StatCacheEntry("/x", key, hash_bytes(b"y"), 11)
    cache.put_many([e1])
    cache.put_many([e2])
    assert cache.get_many(["/x", "/missing"]) == {"/x": e2}
    assert len(cache) == 1


# ---------------------------------------------------------------------------
# "fast" strategy
# ---------------------------------------------------------------------------


def test_fast_strategy_label_and_no_reading(tmp_path: Path, reads: CountingReader) -> None:
    path = _write(tmp_path / "f.txt", b"abc")
    hasher = ContentHasher(strategy="fast")
    digest = hasher.digest(path)
    prefix, hexpart = digest.split(":")
    assert prefix == "stat"
    assert len(hexpart) == 64 and set(hexpart) <= HEX64
    assert digest != hash_file(path)
    assert reads.calls == 1  # only hash_file above read content
    assert hasher.take_new_entries() == []


def test_fast_strategy_changes_with_mtime(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.txt", b"abc")
    hasher = ContentHasher(strategy="fast")
    first = hasher.digest(path)
    assert hasher.digest(path) == first
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))
    assert hasher.digest(path) != first


def test_fast_strategy_directory(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "f.txt", b"abc")
    hasher = ContentHasher(strategy="fast")
    digest = hasher.digest(tmp_path / "d")
    assert digest.startswith("stat:")
    assert digest != hash_directory(tmp_path / "d")
    assert hasher.digest(tmp_path / "d") == digest
