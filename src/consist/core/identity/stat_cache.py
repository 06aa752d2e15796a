"""Stat cache records and backends: what lets the hasher skip unchanged files.

A :class:`StatCacheEntry` remembers the digest of a file version identified by
its :class:`StatKey` (device, inode, size, mtime, ctime); the hasher
(:mod:`consist.core.identity.hashing`) trusts it only outside the racy window.
Backends: :class:`MemoryStatCache` in process, the store's ``stat_cache``
table across processes (any :class:`StatCacheBackend`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MemoryStatCache", "StatCacheBackend", "StatCacheEntry", "StatKey"]


@dataclass(frozen=True)
class StatKey:
    """The stat identity of a file version: any change to content changes one of these
    fields, except an edit that preserves size and lands within the same timestamp tick
    (which the racy check in :class:`ContentHasher` guards against)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def from_stat(cls, st: os.stat_result) -> StatKey:
        """Build the key from an ``os.stat`` / ``os.fstat`` result.

        Parameters
        ----------
        st : os.stat_result
            The stat result of the file (symlinks already followed).

        Returns
        -------
        StatKey
        """
        return cls(
            dev=st.st_dev,
            ino=st.st_ino,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns,
        )


@dataclass(frozen=True)
class StatCacheEntry:
    """A remembered content digest of one file version.

    Attributes
    ----------
    path : str
        Absolute, symlink-resolved path of the file.
    key : StatKey
        Stat identity of the file while its content was read.
    digest : str
        Labelled content digest (``"blake3:..."``).
    recorded_ns : int
        ``time.time_ns()`` taken just *before* the content was read.
    """

    path: str
    key: StatKey
    digest: str
    recorded_ns: int


class StatCacheBackend(Protocol):
    """Persistent store of :class:`StatCacheEntry` records, keyed by resolved path."""

    def get_many(self, paths: Sequence[str]) -> dict[str, StatCacheEntry]:
        """Return the stored entries for those of ``paths`` that have one."""
        ...

    def put_many(self, entries: Sequence[StatCacheEntry]) -> None:
        """Insert or replace entries (one per path; the last one wins)."""
        ...


class MemoryStatCache:
    """A :class:`StatCacheBackend` held in a dict (no database; or a shared process layer).

    Like any backend, it is only written by its owner: :class:`ContentHasher` never
    writes to its backend, so callers persist ``hasher.take_new_entries()`` with
    ``cache.put_many(...)`` whichever backend they use.
    """

    def __init__(self) -> None:
        self._entries: dict[str, StatCacheEntry] = {}
        self._lock = threading.Lock()

    def get_many(self, paths: Sequence[str]) -> dict[str, StatCacheEntry]:
        """Return the stored entries for those of ``paths`` that have one.

        Parameters
        ----------
        paths : sequence of str
            Resolved absolute paths.

        Returns
        -------
        dict of str to StatCacheEntry
        """
        with self._lock:
            return {p: self._entries[p] for p in paths if p in self._entries}

    def put_many(self, entries: Sequence[StatCacheEntry]) -> None:
        """Insert or replace entries, keyed by ``entry.path``.

        Parameters
        ----------
        entries : sequence of StatCacheEntry
        """
        with self._lock:
            for entry in entries:
                self._entries[entry.path] = entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
