"""Stat fingerprints: evidence, checkable with stat calls only, that nothing changed.

Every cached code identity is kept behind a :class:`_Fingerprint`: the stats
(``mtime_ns``, ``ctime_ns``, size, inode, device, mode) of the files it was
computed from, the identity of entries whose presence matters, the bytes of
small metadata files, and the stat and listing of watched directories. While
all of them still hold, the cached result is returned without reading a file.

The racy rule
-------------
Stats taken *after* a file was read are compared with the moment ``t_ref``
just *before* it was read: an entry whose mtime or ctime is later than
``t_ref - window_ns`` is "racy" (an edit in the same timestamp tick would be
invisible), and the fingerprint is then not trusted, so the next call
recomputes. This is git's and the stat cache's rule (``hashing.ContentHasher``).
``ctime`` is always set by the kernel, so an in-place edit whose mtime was
restored with ``os.utime`` is still caught.

The work tree of a repository is proven unchanged by its own object (``tree``,
see :mod:`.code_identity_tree`), checked after the metadata files.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterable
from typing import Any

# Names next to an excluded path that belong to it (database journals, temp files,
# the single-flight claims folder ``<db>.claims/`` and everything in it).
_COMPANION_SUFFIXES = frozenset(
    {".wal", "-wal", "-shm", "-journal", ".lock", ".consist.lock", ".tmp", ".claims"}
)

# (mtime_ns, ctime_ns, size, inode, device, mode), or None when the path is absent.
_Key = tuple[int, int, int, int, int, int] | None
# (file type bits, device, inode), or None when the path is absent.
_Ident = tuple[int, int, int] | None


def _key_of(st: os.stat_result) -> tuple[int, int, int, int, int, int]:
    """The stat fields a fingerprint compares (see ``_Key``)."""
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, st.st_mode)


def _lstat_key(path: str) -> _Key:
    """Stat identity of ``path`` itself (symlinks not followed); None if absent."""
    try:
        return _key_of(os.lstat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _stat_key(path: str) -> _Key:
    """Stat identity of what ``path`` points to (symlinks followed); None if absent."""
    try:
        return _key_of(os.stat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _ident(path: str, *, follow: bool = False) -> _Ident:
    """Which object sits at ``path`` (type, device, inode); None if absent."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (stat_mod.S_IFMT(st.st_mode), st.st_dev, st.st_ino)


def _read_small(path: str) -> bytes | None:
    """Content of a small metadata file (HEAD, a ref, a ``.git`` file); None if absent."""
    try:
        with open(path, "rb") as fh:
            return fh.read(65536)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _entry_kind(entry: os.DirEntry[str]) -> str:
    """``"l"`` symlink, ``"d"`` directory, ``"f"`` regular file, ``"s"`` anything else."""
    if entry.is_symlink():
        return "l"
    if entry.is_dir(follow_symlinks=False):
        return "d"
    if entry.is_file(follow_symlinks=False):
        return "f"
    return "s"


def _is_companion(name: str, base: str) -> bool:
    """Whether ``name`` is a journal / temp file belonging to the excluded ``base``."""
    if not name.startswith(base) or len(name) == len(base):
        return False
    rest = name[len(base) :]
    return rest in _COMPANION_SUFFIXES or (
        rest.startswith(".") and rest.endswith(".tmp") and len(rest) > 4
    )


def _name_excluded(name: str, bases: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of the excluded ``bases`` or a companion of one."""
    return any(name == base or _is_companion(name, base) for base in bases)


class _Fingerprint:
    """Evidence, checkable with stat calls only, that nothing relevant changed.

    ``trusted`` is False when the evidence was racy or inconsistent when taken;
    such a fingerprint never validates.
    """

    __slots__ = ("contents", "idents", "lstats", "stats", "tree", "trusted", "window")

    def __init__(self, window_ns: int) -> None:
        self.window = window_ns
        self.trusted = True
        self.lstats: list[tuple[str, _Key]] = []
        self.stats: list[tuple[str, _Key]] = []
        self.idents: list[tuple[str, _Ident, bool]] = []
        self.contents: list[tuple[str, bytes | None]] = []
        # The work tree's own proof (see code_identity_tree), checked last.
        self.tree: Any = None

    def is_racy(self, key: _Key, t_ref: int) -> bool:
        """Whether ``key`` changed too close to ``t_ref`` to be trusted later."""
        return key is not None and t_ref - max(key[0], key[1]) < self.window

    def add_lstat(self, path: str, key: _Key, t_ref: int) -> None:
        """Watch the ``lstat`` key of ``path`` (taken after ``t_ref``)."""
        self.lstats.append((path, key))
        if self.is_racy(key, t_ref):
            self.trusted = False

    def add_stat(self, path: str, key: _Key, t_ref: int) -> None:
        """Watch the ``stat`` key of ``path`` (taken after ``t_ref``)."""
        self.stats.append((path, key))
        if self.is_racy(key, t_ref):
            self.trusted = False

    def add_read_stat(self, path: str, before: _Key, t_ref: int) -> None:
        """Watch ``path`` whose stat was ``before`` just before it was read.

        The fingerprint is distrusted if the stat changed while the file was read.
        """
        if _stat_key(path) != before:
            self.trusted = False
        self.add_stat(path, before, t_ref)

    def add_ident(self, path: str, *, follow: bool = False) -> _Ident:
        """Watch which object sits at ``path``; return it (None if absent)."""
        ident = _ident(path, follow=follow)
        self.idents.append((path, ident, follow))
        return ident

    def add_read(self, path: str, t_ref: int) -> bytes | None:
        """Read a small metadata file and watch its ``stat`` key (racy relative to ``t_ref``).

        Cheaper to check than :meth:`add_content`: git rewrites ``HEAD`` and refs
        by renaming a new file into place, which changes the inode and ctime.
        """
        before = _stat_key(path)
        content = _read_small(path)
        self.add_read_stat(path, before, t_ref)
        return content

    def add_content(self, path: str) -> bytes | None:
        """Watch the bytes of a small metadata file; return them (None if absent)."""
        content = _read_small(path)
        self.contents.append((path, content))
        return content

    def valid(self) -> bool:
        """Whether every recorded observation still holds (stat calls only)."""
        if not self.trusted:
            return False
        try:
            for path, ident, follow in self.idents:
                if _ident(path, follow=follow) != ident:
                    return False
            for path, content in self.contents:
                if _read_small(path) != content:
                    return False
            if not keys_unchanged(self.stats, os.stat) or not keys_unchanged(self.lstats, os.lstat):
                return False
        except OSError:
            return False
        return self.tree is None or self.tree.valid()


def keys_unchanged(items: Iterable[tuple[str, Any]], stat_fn: Callable[[str], Any]) -> bool:
    """Whether every ``(path, key)`` still has its recorded stat key.

    ``key`` is ``(mtime_ns, ctime_ns, size, ino, dev, mode)``, or None for a
    path that was absent (it must still be). This is ``_stat_key`` /
    ``_lstat_key`` inlined: it runs on every run's path. Raises OSError for
    errors other than a missing path.
    """
    for path, key in items:
        try:
            st = stat_fn(path)
        except (FileNotFoundError, NotADirectoryError):
            if key is not None:
                return False
            continue
        if key != (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, st.st_mode):
            return False
    return True
