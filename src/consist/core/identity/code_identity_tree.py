"""Proof that the work tree's *code* did not change since git last described it.

The ``repo_git`` identity covers tracked files (any extension) and untracked
files with a source suffix (:mod:`.code_identity_sources`). Everything else in
the work tree (data, logs, run outputs, the tracker's database and lock files)
may change freely without invalidating the proof, and is never read.

A :class:`_TreeProof` is built while git's answer is checked against the work
tree (:func:`.git_state._walk_worktree`). It records, for every non-ignored,
non-excluded directory, the names git reported as tracked or ignored there, and
its *relevant listing*: subdirectories, tracked names, git control files
(``.gitignore``, ...), ``.git`` and names with a source suffix. Two ways prove
that nothing relevant changed:

Watch mode (Linux, local filesystem; :mod:`.code_identity_watch`)
    Every such directory is watched with inotify before it is listed, and so
    are git's own directories (``.git``, the directory of the current branch's
    ref, ``info``) before ``HEAD``, refs and the index are read. A run
    drains the event queue; an event counts only if it names a tracked file, a
    source-suffix file, a control file, ``.git``, or a subdirectory that was
    removed or renamed. A new subdirectory is watched and listed on the spot:
    if it holds nothing relevant (a new folder of data or logs), the proof
    still holds, without git. Cost on a quiet tree: one ``read`` system call.
Stat mode (everywhere else)
    The ``lstat`` of every tracked and counted untracked file and of every
    control file, and the ``lstat`` of every watched directory. A directory
    whose stat changed is re-listed: if its relevant listing is unchanged (a
    log or a data file appeared), the new stat is adopted; a new subdirectory
    holding nothing relevant is adopted the same way. Racy rule: a directory
    whose new stat is within the racy window of the moment it was listed is
    re-listed on every call until it settles.

Anything else (a relevant name appeared, vanished or changed; the event queue
overflowed; a watch could not be set) makes the proof fail, and the caller runs
git again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from consist.core.identity.code_identity_fingerprint import (
    _entry_kind,
    _Key,
    _lstat_key,
    _name_excluded,
    keys_unchanged,
)
from consist.core.identity.code_identity_sources import is_source
from consist.core.identity.code_identity_watch import (
    IN_CREATE,
    IN_DELETE,
    IN_ISDIR,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    SELF_EVENTS,
    TreeWatcher,
    WatchUnavailable,
)

# Files that change what git ignores or how it compares; relevant wherever they are.
GIT_CONTROL_FILES = frozenset({".gitignore", ".gitattributes", ".gitmodules"})

# A new directory holding more entries than this is described by git, not listed here.
_EXPLORE_LIMIT = 2000

_Listing = frozenset[tuple[str, str]]

# Prefix of the watcher's label for git's own directories (never a relative path).
_GIT_DIR_MARK = "\0git:"


class _DirInfo:
    """One watched directory: what git said about its names, and its relevant listing."""

    __slots__ = ("abs", "bases", "ignored", "key", "listing", "racy", "rel", "tracked")

    def __init__(
        self,
        rel: str,
        abs_path: str,
        *,
        tracked: frozenset[str],
        ignored: frozenset[str],
        bases: tuple[str, ...],
        key: _Key,
        listing: _Listing,
        racy: bool,
    ) -> None:
        self.rel = rel
        self.abs = abs_path
        self.tracked = tracked
        self.ignored = ignored
        self.bases = bases
        self.key = key
        self.listing = listing
        self.racy = racy


class _TreeProof:
    """Evidence that no code in the work tree changed (see the module docstring).

    Parameters
    ----------
    toplevel : str
        Root of the work tree.
    suffixes : frozenset of str
        Source suffixes whose untracked files count as code.
    excluded : callable
        ``excluded(rel)``: whether a repository-relative path is excluded.
    bases_of : callable
        ``bases_of(rel_dir)``: excluded names directly inside ``rel_dir``.
    window_ns : int
        Racy window (stat mode).
    watch : bool
        Try inotify; on any failure the proof uses stat mode.
    """

    def __init__(
        self,
        toplevel: str,
        suffixes: frozenset[str],
        excluded: Callable[[str], bool],
        bases_of: Callable[[str], tuple[str, ...]],
        window_ns: int,
        watch: bool,
    ) -> None:
        self.toplevel = toplevel
        self.suffixes = suffixes
        self.excluded = excluded
        self.bases_of = bases_of
        self.window = window_ns
        self.dirs: dict[str, _DirInfo] = {}
        self.files: list[tuple[str, _Key]] = []
        self.watcher: TreeWatcher | None = None
        if watch:
            try:
                self.watcher = TreeWatcher()
            except WatchUnavailable:
                self.watcher = None

    # -- building (during a scan) -------------------------------------------

    @property
    def mode(self) -> str:
        """``"watch"`` or ``"stat"``."""
        return "watch" if self.watcher is not None else "stat"

    def watch_dir(self, abs_dir: str, rel_dir: str, key: _Key) -> None:
        """Watch a directory before it is listed (no-op in stat mode)."""
        if self.watcher is None or key is None:
            return
        try:
            self.watcher.add(abs_dir, rel_dir, key[4])
        except (WatchUnavailable, FileNotFoundError):
            self._drop_watcher()

    def watch_git_dir(self, abs_dir: str) -> None:
        """Watch one of git's own directories (``.git``, its refs, ``info``).

        Any event there except a ``*.lock`` file coming or going counts: git
        updates ``HEAD``, refs, the index and config by renaming a lock file
        into place. A directory that does not exist is skipped (its parent is
        watched). No-op in stat mode.
        """
        if self.watcher is None or not os.path.isdir(abs_dir):
            return
        try:
            self.watcher.add(abs_dir, _GIT_DIR_MARK + abs_dir, os.stat(abs_dir).st_dev)
        except (WatchUnavailable, FileNotFoundError):
            self._drop_watcher()

    def relevant(self, name: str, kind: str, tracked: frozenset[str]) -> bool:
        """Whether an entry belongs to the relevant listing of its directory."""
        return (
            kind == "d"
            or name == ".git"
            or name in tracked
            or name in GIT_CONTROL_FILES
            or is_source(name, self.suffixes)
        )

    def add_dir(self, info: _DirInfo) -> None:
        """Record a directory listed during the scan."""
        self.dirs[info.rel] = info

    def add_file(self, path: str, key: _Key) -> None:
        """Record the ``lstat`` of a file that counts (checked in stat mode)."""
        self.files.append((path, key))

    def close(self) -> None:
        """Release the inotify instance, if any."""
        self._drop_watcher()

    def _drop_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None

    # -- checking (every run) -----------------------------------------------

    def valid(self) -> bool:
        """Whether nothing that counts changed (see the module docstring)."""
        watcher = self.watcher
        if watcher is not None:
            if not watcher.usable():
                return False
            for wd, mask, name in watcher.events():
                if self._event_counts(watcher, wd, mask, name):
                    return False
            return True
        return self._stat_valid()

    def _event_counts(self, watcher: TreeWatcher, wd: int, mask: int, name: str) -> bool:
        if mask & IN_Q_OVERFLOW:
            return True
        rel_dir = watcher.dirs.get(wd)
        if rel_dir is None or mask & SELF_EVENTS:
            return True
        if rel_dir.startswith(_GIT_DIR_MARK):
            return not name.endswith(".lock")
        info = self.dirs.get(rel_dir)
        if info is None:
            return True
        if not name or (info.bases and _name_excluded(name, info.bases)):
            return False
        if name == ".git":
            return True
        if name in info.ignored:
            return False
        if mask & IN_ISDIR:
            if mask & (IN_CREATE | IN_MOVED_TO):
                return not self._explore(info.rel, name)
            return bool(mask & (IN_DELETE | IN_MOVED_FROM))
        return name in info.tracked or name in GIT_CONTROL_FILES or is_source(name, self.suffixes)

    def _stat_valid(self) -> bool:
        try:
            if not keys_unchanged(self.files, os.lstat):
                return False
            for info in list(self.dirs.values()):
                key = _lstat_key(info.abs)
                if key == info.key and not info.racy:
                    continue
                if key is None:
                    return False
                t_ref = time.time_ns()
                listing = self._listing(info.abs, info.bases, info.tracked)
                if listing != info.listing:
                    if info.listing - listing:
                        return False  # something relevant vanished
                    for name, kind in listing - info.listing:
                        if kind != "d" or not self._explore(info.rel, name):
                            return False
                    info.listing = listing
                info.key = key
                info.racy = self._is_racy(key, t_ref)
        except OSError:
            return False
        return True

    def _is_racy(self, key: _Key, t_ref: int) -> bool:
        return key is not None and t_ref - max(key[0], key[1]) < self.window

    def _listing(self, path: str, bases: tuple[str, ...], tracked: frozenset[str]) -> _Listing:
        with os.scandir(path) as it:
            return frozenset(
                (entry.name, kind)
                for entry in it
                if not (bases and _name_excluded(entry.name, bases))
                and self.relevant(entry.name, kind := _entry_kind(entry), tracked)
            )

    def _explore(self, parent_rel: str, name: str) -> bool:
        """Adopt a new subdirectory if nothing under it counts; False if something may."""
        rel = f"{parent_rel}/{name}" if parent_rel else name
        if self.excluded(rel):
            return True
        budget = _EXPLORE_LIMIT
        found: list[_DirInfo] = []
        stack = [rel]
        while stack:
            current = stack.pop()
            abs_dir = os.path.join(self.toplevel, current)
            t_ref = time.time_ns()
            key = _lstat_key(abs_dir)
            if key is None or not os.path.isdir(abs_dir) or os.path.islink(abs_dir):
                return False
            if self.watcher is not None:
                try:
                    self.watcher.add(abs_dir, current, key[4])
                except (WatchUnavailable, FileNotFoundError):
                    return False
            bases = self.bases_of(current)
            subdirs: set[tuple[str, str]] = set()
            try:
                with os.scandir(abs_dir) as it:
                    entries = list(it)
            except OSError:
                return False
            for entry in entries:
                entry_name = entry.name
                if bases and _name_excluded(entry_name, bases):
                    continue
                budget -= 1
                if budget < 0 or entry_name == ".git" or entry_name in GIT_CONTROL_FILES:
                    return False
                kind = _entry_kind(entry)
                if kind == "d":
                    child = f"{current}/{entry_name}"
                    subdirs.add((entry_name, "d"))
                    if not self.excluded(child):
                        stack.append(child)
                elif is_source(entry_name, self.suffixes):
                    return False
            found.append(
                _DirInfo(
                    current,
                    abs_dir,
                    tracked=frozenset(),
                    ignored=frozenset(),
                    bases=bases,
                    key=key,
                    listing=frozenset(subdirs),
                    racy=self._is_racy(key, t_ref),
                )
            )
        for info in found:
            self.dirs[info.rel] = info
        return True
