"""Git state of the work tree containing ``project_root`` (the ``repo_git`` mode).

This module locates the repository, asks git (through :mod:`.git_commands`) what
differs from ``HEAD``, hashes the paths that count from the work tree and
records the fingerprint that lets the next call skip git. What the digest covers is
described in :mod:`consist.core.identity.code_identity`.

The fingerprint
---------------
Spawning git costs milliseconds, so ``repo_git`` runs it only when a stat-only
*fingerprint* can no longer prove that nothing changed. The fingerprint holds:

* the stat of ``HEAD`` and of the loose ref files it points to (in the
  worktree's git dir and the common dir; git replaces them by renaming, so any
  update changes the inode and ctime), and of ``packed-refs`` and
  ``reftable/tables.list``;
* the stat of the index, ``info/exclude``, the repository and global git config
  files and the global excludes file (``core.excludesFile``);
* the work tree's proof (:mod:`.code_identity_tree`): every non-ignored,
  non-excluded directory watched with inotify, or the ``lstat`` (mtime_ns,
  ctime_ns, size, inode, device, mode) of every tracked file, counted untracked
  file and ``.gitignore`` / ``.gitattributes``, and the stat and *relevant
  listing* of every such directory. Each listing was checked against git's own
  output when it was taken: every entry had to be tracked, untracked, ignored,
  a submodule or a walked directory;
* the identity of the ``.git`` entries from ``project_root`` up to the work tree
  root (so a new repository in between, or a re-pointed worktree, is noticed).

Stats of tracked files are taken after git ran, so they are compared against
the moment ``t0`` just *before* git started, under the racy rule of
:mod:`.code_identity_fingerprint`: with stat calls, a file or metadata entry
changed later than ``t0 - racy_window_ns`` makes the next call recompute with
git. With inotify, git's directories are watched before its metadata is read
and the work tree's before any of its files is read, so only the interval
between git's first look and the watches is uncertain: when a file is that
recent, ``git status`` runs once more after the watches are set, and the
result is trusted if git's answer did not change (one extra git process after
an edit, instead of git on every call until the file is older than the
window). The fingerprint
is also distrusted when files disappeared or appeared while git ran, and
whenever the repository contains an untracked nested repository (its source
files are hashed as one ``dir:`` entry, always recomputed).

Untracked files are only hashed when their suffix is a source suffix; git lists
the others, and they are accounted for, but never read.

Files hidden from ``git status`` by ``assume-unchanged`` or ``skip-worktree``
are always hashed when present.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from consist.core.identity.code_identity_fingerprint import (
    _entry_kind,
    _Fingerprint,
    _Key,
    _lstat_key,
    _name_excluded,
    _stat_key,
)
from consist.core.identity.code_identity_records import CodeIdentityError
from consist.core.identity.code_identity_sources import is_source
from consist.core.identity.code_identity_tree import GIT_CONTROL_FILES, _DirInfo, _TreeProof
from consist.core.identity.git_commands import (
    _finish_git,
    _git_env,
    _git_failed,
    _GitMissingError,
    _parse_ls_files,
    _parse_status,
    _start_git,
    _Status,
)
from consist.core.identity.hashing import hash_bytes, hash_file

_DELETED = "deleted"


def _global_git_files(env: dict[str, str]) -> list[str]:
    """Config and excludes files outside the repository that can change git's answers."""
    home = os.path.expanduser("~")
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return [
        env.get("GIT_CONFIG_GLOBAL") or os.path.join(home, ".gitconfig"),
        os.path.join(xdg, "git", "config"),
        os.path.join(xdg, "git", "ignore"),
        env.get("GIT_CONFIG_SYSTEM") or "/etc/gitconfig",
    ]


def _ancestors(start: str, stop: str | None) -> Iterable[str]:
    """``start`` and its parents, up to (excluding) ``stop`` or the filesystem root."""
    current = start
    while current != stop:
        yield current
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


@dataclass(eq=False)
class _Location:
    """Where (and whether) the repository containing project_root is."""

    toplevel: str | None
    git_dir: str | None
    common_dir: str | None
    reason: str | None
    fingerprint: _Fingerprint


def _discover(root: str, window_ns: int) -> _Location:
    """Run ``git rev-parse`` once to locate the work tree, git dir and common dir.

    Returns
    -------
    _Location
        With ``toplevel`` None and a ``reason`` when git is missing or ``root``
        is not in a work tree; fingerprinted by the ``.git`` entries between
        ``root`` and the work tree root (or the filesystem root).

    Raises
    ------
    CodeIdentityError
        If ``root`` is not a directory or ``git rev-parse`` fails otherwise.
    """
    if not os.path.isdir(root):
        raise CodeIdentityError(
            f"code_identity: project_root {root!r} is not an existing directory; "
            "create it or point the tracker's project root at the code's directory."
        )
    fp = _Fingerprint(window_ns)
    fp.add_ident(root, follow=True)
    real = os.path.realpath(root)
    try:
        proc = _start_git(
            ["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"],
            root,
            _git_env(),
        )
    except _GitMissingError:
        return _Location(None, None, None, f"git is not installed (not on PATH): {root}", fp)
    rc, out, err = _finish_git(proc)
    if rc != 0:
        if "not a git repository" in err:
            for directory in _ancestors(real, None):
                fp.add_ident(os.path.join(directory, ".git"))
            return _Location(None, None, None, f"not a git repository: {root}", fp)
        raise _git_failed("git rev-parse", root, err)
    lines = os.fsdecode(out).splitlines()
    if len(lines) != 3:
        raise _git_failed("git rev-parse", root, f"unexpected output {lines!r}")
    toplevel, git_dir, common_dir = lines
    common_dir = os.path.realpath(os.path.join(real, common_dir))
    for directory in _ancestors(real, toplevel):
        fp.add_ident(os.path.join(directory, ".git"))
    dotgit = os.path.join(toplevel, ".git")
    if fp.add_ident(dotgit) is not None and os.path.isfile(dotgit):
        fp.add_content(dotgit)  # worktree / submodule pointer: "gitdir: ..."
    return _Location(toplevel, git_dir, common_dir, None, fp)


class _Excluder:
    """Repository-relative view of ``exclude_paths``."""

    def __init__(self, toplevel: str, excludes: Sequence[str]) -> None:
        rels: set[str] = set()
        for path in excludes:
            candidates = {
                os.path.realpath(path),
                os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)),
            }
            for candidate in candidates:
                rel = os.path.relpath(candidate, toplevel)
                if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
                    continue  # outside the repository, or containing its root: ignored
                rels.add(rel.replace(os.sep, "/"))
        self.rels = tuple(sorted(rels))
        self._prefixes = tuple(rel + "/" for rel in self.rels)
        by_parent: dict[str, list[str]] = {}
        for rel in self.rels:
            parent, _, name = rel.rpartition("/")
            by_parent.setdefault(parent, []).append(name)
        self.by_parent = {parent: tuple(names) for parent, names in by_parent.items()}

    def __call__(self, rel: str) -> bool:
        """Whether the repository-relative path ``rel`` is excluded."""
        if not self.rels:
            return False
        if rel in self.rels or rel.startswith(self._prefixes):
            return True
        while rel:  # the path, or a folder it is in, is a companion of an excluded path
            parent, _, name = rel.rpartition("/")
            bases = self.by_parent.get(parent)
            if bases is not None and _name_excluded(name, bases):
                return True
            rel = parent
        return False

    def pathspecs(self) -> list[str]:
        """Arguments that make git skip the excluded paths (empty if none)."""
        if not self.rels:
            return []
        return ["--", ".", *(f":(exclude,literal){rel}" for rel in self.rels)]


def _worktree_entry(path: str) -> tuple[str, _Key, bool]:
    """(entry, lstat key, volatile) of one file that counts, read from the work tree."""
    key = _lstat_key(path)
    if key is None:
        return _DELETED, None, False
    mode = key[5]
    try:
        if stat_mod.S_ISLNK(mode):
            return "symlink:" + hash_bytes(os.fsencode(os.readlink(path))), key, False
        if stat_mod.S_ISREG(mode):
            digest = hash_file(path)
            return ("exec:" + digest if mode & stat_mod.S_IXUSR else digest), key, False
        if stat_mod.S_ISDIR(mode):
            return _DELETED, None, True  # became a directory: recompute next time
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError):
        return _DELETED, None, True  # replaced while reading: recompute next time
    return "special", key, False


def _nested_sources_digest(path: str, suffixes: frozenset[str]) -> str:
    """Digest of the source-suffix files of an untracked nested repository.

    Only files that count as code are read (never data); symlinks are neither
    followed nor counted, and the nested ``.git`` directory is skipped.
    """
    entries: list[str] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(path, rel_dir) if rel_dir else path
        try:
            with os.scandir(abs_dir) as it:
                listed = sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in listed:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.name == ".git":
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(rel)
            elif entry.is_file(follow_symlinks=False) and is_source(entry.name, suffixes):
                try:
                    entries.append(f"{rel}\0{hash_file(entry.path)}")
                except (FileNotFoundError, IsADirectoryError):
                    continue
    return hash_bytes("\n".join(sorted(entries)).encode("utf-8", "surrogateescape"))


def _walk_worktree(
    toplevel: str,
    *,
    tracked: dict[str, str],
    status: _Status,
    gitlinks: set[str],
    excluded: _Excluder,
    tree: _TreeProof,
    fp: _Fingerprint,
    t0: int,
) -> tuple[bool, bool]:
    """Record every non-ignored directory in ``tree``.

    Returns
    -------
    (racy, accounted)
        Whether a git control file changed within the racy window of ``t0``,
        and whether git accounted for every entry.
    """
    accounted = True
    racy = False
    tracked_by_dir: dict[str, set[str]] = {}
    for rel in tracked:
        parent, _, name = rel.rpartition("/")
        tracked_by_dir.setdefault(parent, set()).add(name)
    ignored_by_dir: dict[str, set[str]] = {}
    for rel in (*status.ignored, *status.ignored_dirs):
        parent, _, name = rel.rpartition("/")
        ignored_by_dir.setdefault(parent, set()).add(name)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(toplevel, rel_dir) if rel_dir else toplevel
        t_ref = time.time_ns()
        key = _lstat_key(abs_dir)
        if key is None:
            accounted = False
            continue
        tree.watch_dir(abs_dir, rel_dir, key)  # before listing: later changes leave an event
        bases = excluded.by_parent.get(rel_dir, ())
        names_tracked = frozenset(tracked_by_dir.get(rel_dir, ()))
        listing: set[tuple[str, str]] = set()
        try:
            with os.scandir(abs_dir) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            accounted = False
            continue
        for entry in entries:
            name = entry.name
            if bases and _name_excluded(name, bases):
                continue
            kind = _entry_kind(entry)
            if tree.relevant(name, kind, names_tracked):
                listing.add((name, kind))
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if name == ".git":
                continue
            if kind == "d":
                if not (
                    rel in gitlinks
                    or rel in status.ignored_dirs
                    or rel in status.untracked_dirs
                    or excluded(rel)
                ):
                    stack.append(rel)
                continue
            if name in GIT_CONTROL_FILES:
                control_key = _lstat_key(entry.path)
                tree.add_file(entry.path, control_key)
                racy = racy or fp.is_racy(control_key, t0)
            if not (
                kind == "s" or rel in tracked or rel in status.untracked or rel in status.ignored
            ):
                accounted = False  # appeared after git looked
        tree.add_dir(
            _DirInfo(
                rel_dir,
                abs_dir,
                tracked=names_tracked,
                ignored=frozenset(ignored_by_dir.get(rel_dir, ())),
                bases=bases,
                key=key,
                listing=frozenset(listing),
                racy=fp.is_racy(key, t_ref),
            )
        )
    return racy, accounted


_STATUS_ARGS = (
    "status",
    "--porcelain=v2",
    "--branch",
    "-z",
    "--untracked-files=all",
    "--ignored=matching",
    "--no-renames",
    "--ignore-submodules=all",
)


def _nearest_dir(path: str, stop: str) -> str:
    """``path`` or its nearest existing ancestor, not above ``stop``."""
    while path != stop and not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            return stop
        path = parent
    return path


def _drop_excluded(status: _Status, excluded: _Excluder) -> None:
    """Remove excluded paths from git's untracked and ignored lists."""
    for attr in ("untracked", "untracked_dirs", "ignored", "ignored_dirs"):
        setattr(status, attr, {rel for rel in getattr(status, attr) if not excluded(rel)})


def _status_unchanged(
    first: _Status, excluded: _Excluder, spec: list[str], toplevel: str, env: dict[str, str]
) -> bool:
    """Whether ``git status``, run again now, says what it said the first time."""
    try:
        rc, out, _ = _finish_git(_start_git([*_STATUS_ARGS, *spec], toplevel, env))
    except (_GitMissingError, CodeIdentityError):
        return False
    if rc != 0:
        return False
    again = _parse_status(out)
    _drop_excluded(again, excluded)
    return (
        again.head == first.head
        and again.changed == first.changed
        and again.untracked == first.untracked
        and again.untracked_dirs == first.untracked_dirs
        and again.ignored == first.ignored
        and again.ignored_dirs == first.ignored_dirs
    )


@dataclass(eq=False)
class _GitCore:
    """The repository's own state (without submodule digests and extra deps).

    ``tracked_dirty`` holds tracked paths that differ from ``HEAD`` (any
    extension); ``untracked`` the untracked files (and nested repositories,
    ``"dir:"``) whose suffix is in ``suffixes``; untracked files with other
    suffixes were never read.
    """

    location: _Location
    head: str | None
    tracked_dirty: dict[str, str]
    untracked: dict[str, str]
    submodules: dict[str, str | None]  # rel -> absolute path, None if not checked out
    suffixes: frozenset[str]
    fingerprint: _Fingerprint
    tree: _TreeProof

    def close(self) -> None:
        """Release the work tree watch."""
        self.tree.close()


def _compute_git_core(
    loc: _Location,
    excludes: Sequence[str],
    window_ns: int,
    suffixes: frozenset[str],
    *,
    watch: bool = True,
) -> _GitCore:
    """Run git and describe the work tree's own state, behind a fingerprint.

    Parameters
    ----------
    loc : _Location
        A located repository (``loc.toplevel`` is not None).
    excludes : sequence of str
        Absolute, normalised ``exclude_paths``.
    window_ns : int
        Racy window of the fingerprint.
    suffixes : frozenset of str
        Source suffixes: untracked files with one of them are hashed, others
        are never read.
    watch : bool
        Prove later calls with inotify where possible (else stat calls).

    Returns
    -------
    _GitCore
        ``HEAD``, the tracked paths that differ from it, the counted untracked
        files and the submodule paths, with the fingerprint proving them
        unchanged.

    Raises
    ------
    CodeIdentityError
        If git is no longer available, fails, or prints unexpected output, or
        the work tree disappears.
    """
    assert loc.toplevel is not None and loc.git_dir is not None
    assert loc.common_dir is not None
    toplevel, git_dir, common = loc.toplevel, loc.git_dir, loc.common_dir
    env = _git_env()
    excluded = _Excluder(toplevel, excludes)
    tree = _TreeProof(
        toplevel,
        suffixes,
        excluded,
        lambda rel_dir: excluded.by_parent.get(rel_dir, ()),
        window_ns,
        watch,
    )
    t0 = time.time_ns()
    fp = _Fingerprint(window_ns)
    # Files git maintains in its own directories: in watch mode those
    # directories are watched before anything is read, so the racy rule is
    # needed only if the proof falls back to stat calls.
    git_meta = _Fingerprint(window_ns)

    # 1. Repository metadata, read before git runs: a later change is a mismatch.
    bases = tuple(dict.fromkeys((git_dir, common)))
    for directory in (*bases, os.path.join(common, "info")):
        tree.watch_git_dir(directory)
    for base in bases:
        if os.path.isdir(os.path.join(base, "reftable")):
            tree.watch_git_dir(os.path.join(base, "reftable"))
    ref = git_meta.add_read(os.path.join(git_dir, "HEAD"), t0)
    for _ in range(5):
        if ref is None or not ref.startswith(b"ref:"):
            break
        name = os.fsdecode(ref[4:].strip())
        if not name.startswith("refs/") or ".." in name.split("/"):
            break
        ref = None
        for base in bases:
            path = os.path.join(base, *name.split("/"))
            tree.watch_git_dir(_nearest_dir(os.path.dirname(path), base))
            content = git_meta.add_read(path, t0)
            if ref is None:
                ref = content
    meta = [
        os.path.join(git_dir, "index"),
        os.path.join(git_dir, "config.worktree"),
        os.path.join(common, "config"),
        os.path.join(common, "packed-refs"),
        os.path.join(common, "info", "exclude"),
        *(
            os.path.join(base, "reftable", "tables.list")
            for base in bases
            if os.path.isdir(os.path.join(base, "reftable"))
        ),
    ]
    for path in dict.fromkeys(meta):
        git_meta.add_stat(path, _stat_key(path), t0)
    for path in dict.fromkeys(_global_git_files(env)):
        fp.add_stat(path, _stat_key(path), t0)

    # 2. Ask git (three processes in parallel).
    spec = excluded.pathspecs()
    try:
        procs = [
            _start_git([*_STATUS_ARGS, *spec], toplevel, env),
            _start_git(["ls-files", "-z", "-s", "-v", *spec], toplevel, env),
            _start_git(["config", "-z", "--get", "--path", "core.excludesFile"], toplevel, env),
        ]
    except _GitMissingError:
        raise CodeIdentityError(
            "code_identity='repo_git': git is no longer available (not on PATH); "
            "install git or choose a callable code_identity"
        ) from None
    (rc_s, out_s, err_s), (rc_l, out_l, err_l), (rc_c, out_c, _) = (_finish_git(p) for p in procs)
    if rc_s != 0:
        raise _git_failed("git status", toplevel, err_s)
    if rc_l != 0:
        raise _git_failed("git ls-files", toplevel, err_l)
    status = _parse_status(out_s)
    tracked, gitlinks = _parse_ls_files(out_l)
    if rc_c == 0 and out_c.strip(b"\0"):
        excludes_file = os.path.join(toplevel, os.fsdecode(out_c.strip(b"\0\n")))
        fp.add_stat(excludes_file, _stat_key(excludes_file), t0)

    tracked = {rel: tag for rel, tag in tracked.items() if not excluded(rel)}
    gitlinks = {rel for rel in gitlinks if not excluded(rel)}
    _drop_excluded(status, excluded)

    # 3. Watch (inotify) and list every directory git looks into, before any
    # work tree file is read; verify git accounted for every entry.
    tree_racy, accounted = _walk_worktree(
        toplevel,
        tracked=tracked,
        status=status,
        gitlinks=gitlinks,
        excluded=excluded,
        tree=tree,
        fp=fp,
        t0=t0,
    )
    if not accounted:
        fp.trusted = False

    # 4. Hash what counts, by content, from the work tree: tracked paths that
    # differ from HEAD (any extension) and untracked files with a source suffix.
    expect: dict[str, bool | None] = {
        rel: must for rel, must in status.changed.items() if not excluded(rel)
    }
    untracked_rels = {
        rel for rel in status.untracked if is_source(rel.rpartition("/")[2], suffixes)
    }
    for rel in untracked_rels:
        expect.setdefault(rel, True)
    for rel, tag in tracked.items():
        if tag.islower() or tag == "S":  # hidden from status: always hash if present
            expect.setdefault(rel, None)
    tracked_dirty: dict[str, str] = {}
    untracked: dict[str, str] = {}
    watched: dict[str, _Key] = {}
    for rel in sorted(expect):
        path = os.path.join(toplevel, rel)
        entry, key, volatile = _worktree_entry(path)
        if volatile or _lstat_key(path) != key:
            fp.trusted = False
        must = expect[rel]
        if (must is True and key is None) or (must is False and key is not None):
            fp.trusted = False  # changed since git looked
        watched[path] = key
        if entry == _DELETED and tracked.get(rel) in ("S", "s"):
            continue  # not checked out (sparse checkout): nothing to describe
        (untracked if rel in untracked_rels else tracked_dirty)[rel] = entry
    for rel in sorted(status.untracked_dirs):
        path = os.path.join(toplevel, rel)
        untracked[rel] = "dir:" + _nested_sources_digest(path, suffixes)
        fp.trusted = False  # an untracked nested repository: always recompute

    # 5. Stat every tracked file, after git: racy relative to t0 (before git).
    for rel, tag in tracked.items():
        path = os.path.join(toplevel, rel)
        if path in watched:
            continue
        key = _lstat_key(path)
        if key is None and tag not in ("S", "s"):
            fp.trusted = False  # git saw it, now it is gone
        watched[path] = key
    for path, key in watched.items():
        tree.add_file(path, key)
        tree_racy = tree_racy or fp.is_racy(key, t0)

    # 6. Racy entries. With stat calls, a file changed within the racy window of
    # t0 could change again unseen: recompute next time. With inotify, every
    # change after the watches were set leaves an event; git, run once more
    # now, confirms that nothing changed between its first look and the watches.
    fp.stats += git_meta.stats
    if tree.mode == "stat":
        if tree_racy or not git_meta.trusted:
            fp.trusted = False
    elif tree_racy and not _status_unchanged(status, excluded, spec, toplevel, env):
        fp.trusted = False
    fp.tree = tree

    # 7. Submodules: described (by the caller) by their own repo_git identity.
    submodules: dict[str, str | None] = {}
    for rel in sorted(gitlinks):
        path = os.path.join(toplevel, rel)
        initialized = fp.add_ident(os.path.join(path, ".git")) is not None
        submodules[rel] = path if initialized else None
    return _GitCore(loc, status.head, tracked_dirty, untracked, submodules, suffixes, fp, tree)
