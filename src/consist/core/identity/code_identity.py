"""Code identity: a labelled digest that changes whenever the code behind a run could have.

A run is skipped only when an identical run (same code, config and input bytes)
already exists, so the *code* part of that identity must never stay equal while
the code changed (invariant 1), and must never be replaced by a constant or a
timestamp when it cannot be computed (invariant 2).

Modes
-----
``"repo_git"`` (default)
    The git state of the repository containing ``project_root``: the ``HEAD``
    commit plus, by content, every tracked path whose working-tree state
    differs from it (modified, added, deleted; any extension: committed
    configs and CSVs are code of the model) and every untracked, non-ignored
    file whose suffix is a *source suffix* (:mod:`.code_identity_sources`;
    ``.py``, ``.R``, ``.jl``, ``.f90``, ... by default). Untracked files with
    other suffixes (data, logs, outputs) are never read and never count;
    ignored files never count. Staging does not matter: entries describe the
    working tree, so ``git add`` alone does not change the digest, while any
    edit does. Submodules are folded in by their own ``repo_git`` digest.
    Paths under ``exclude_paths`` are ignored (see below).
``"callable_module"``
    The content of the source file of the module defining the callable, the
    module name and the callable's qualified name.
``"callable_source"``
    The dedented source text of the callable (``inspect.getsource``), its module
    name and qualified name: two functions with the same body but different
    names differ, and editing *another* function of the module does not change
    the digest.

Both callable modes also fold in a digest of the callable's *loaded* bytecode
(code objects, constants and names; never line numbers or file paths). The
source on disk and the code actually running can disagree when a module is
edited after import without being reloaded (notebooks); folding both in means
such a run can never be mistaken for the reloaded code. The price: a Python
upgrade that changes bytecode turns those digests over (a miss, never a wrong
hit). ``repo_git`` does not depend on the interpreter.

``extra_deps`` (files or directories, relative paths resolved against
``project_root``) are folded in by content in every mode, keyed by the path as
given (normalised). With ``repo_git`` they cover files outside the repository,
which git cannot see.

The callable is unwrapped first: ``functools.partial`` (its bound arguments are
not code and are ignored), decorators that set ``__wrapped__``
(``functools.wraps``), bound methods, static/class methods, and callable class
instances (the type's ``__call__``). A decorator that does not set
``__wrapped__`` hides the decorated function; the decorator's own module is then
what ``callable_module`` sees (use ``repo_git`` or ``extra_deps``).

Exclusions (``repo_git``)
-------------------------
The tracker passes its run directory, database file and journal, so outputs
written inside an un-ignored folder of the repository never make the code look
dirty. An excluded path covers itself, everything below it, and the usual
companions of a database or atomically-written file next to it: ``<name>.wal``,
``-wal``, ``-shm``, ``-journal``, ``.lock``, ``.consist.lock``, ``.tmp``,
``.<anything>.tmp`` and the single-flight folder ``.claims`` with what is in it.
An exclude that equals or contains the repository root is ignored (it cannot be
meant to hide the code). Excludes are also passed to git as ``:(exclude)``
pathspecs, so git does not even walk a large run directory.

What git itself does not see is not part of the identity either: ignored files,
and the targets of tracked symlinks. Compiled caches (``__pycache__/*.pyc``) do
not have a source suffix and never count.

Speed
-----
Every result is cached behind a fingerprint and recomputed only when the
fingerprint can no longer prove that nothing that counts changed (the racy rule
is described in :mod:`.code_identity_fingerprint`). ``repo_git`` then runs git
again. The fingerprint reads the repository metadata (``HEAD`` and its ref, the
index, config and excludes files) with a few stat calls, and proves the work
tree unchanged with inotify on Linux local filesystems, else with ``lstat``
calls (:mod:`.code_identity_tree`). Data files, logs, the tracker's database,
lock and journal files appearing or changing in the repository never make it
run git; a new folder of such files is listed once.
Callable modes cache their result per (callable, code objects, defining file
stat, extra dependency stats) under the same racy rule; a hit costs
microseconds.

Measured on the 2-core development VM (Python 3.11, git 2.39): a repeated
``resolve()`` on an unchanged repository of 300 tracked files takes ~27 us with
inotify (~0.6 ms with ``lstat`` calls, one per tracked file); a recompute runs
three git processes in parallel (~15-20 ms), plus one ``git status`` when a file
was changed within the racy window. A repeated ``callable_module`` /
``callable_source`` resolve takes ~7 us.

Keep one resolver per tracker: the fingerprints live in the instance.
Resolvers are thread-safe (one lock per instance).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from consist.core.identity.callable_identity import (
    _CallableEntry,
    _code_objects,
    _describe_callable,
    _unwrap_callable,
)
from consist.core.identity.code_identity_deps import _ExtraDeps
from consist.core.identity.code_identity_records import (
    CODE_IDENTITY_MODES,
    UNAVAILABLE,
    CodeIdentity,
    CodeIdentityError,
)
from consist.core.identity.code_identity_sources import (
    DEFAULT_SOURCE_SUFFIXES,
    is_source,
    normalize_suffixes,
)
from consist.core.identity.git_state import _compute_git_core, _discover, _GitCore, _Location
from consist.core.identity.hashing import hash_bytes

__all__ = [
    "CODE_IDENTITY_MODES",
    "DEFAULT_SOURCE_SUFFIXES",
    "CodeIdentity",
    "CodeIdentityError",
    "CodeIdentityResolver",
]

# Versioned, NUL-terminated domain tags: pre-images of different kinds never overlap
# (callable_identity holds the bytecode one).
_GIT_DOMAIN = b"consist-code-git-v1\0"
_MODULE_DOMAIN = b"consist-code-module-v1\0"
_SOURCE_DOMAIN = b"consist-code-source-v1\0"

_UNINITIALIZED = "uninitialized"
_MAX_CALLABLE_ENTRIES = 256

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _digest(domain: bytes, payload: dict[str, Any]) -> str:
    """Digest of a domain tag followed by the canonical JSON of ``payload``."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hash_bytes(domain + body.encode("ascii"))


def _copy_json(value: Any) -> Any:
    """Deep copy of nested dicts and lists (leaves are immutable)."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def _copy_identity(identity: CodeIdentity) -> CodeIdentity:
    """A copy whose ``details`` the caller may mutate without touching the cache."""
    return CodeIdentity(
        identity.mode, identity.digest, _copy_json(identity.details), identity.fallback_reason
    )


def _map_diff(old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for keys whose values differ (absent or non-dict: None)."""
    old_map = old if isinstance(old, dict) else {}
    new_map = new if isinstance(new, dict) else {}
    return {
        key: (old_map.get(key), new_map.get(key))
        for key in sorted(set(old_map) | set(new_map))
        if old_map.get(key) != new_map.get(key)
    }


# ---------------------------------------------------------------------------
# The resolver
# ---------------------------------------------------------------------------


class CodeIdentityResolver:
    """Computes (and caches, behind stat fingerprints) the code identity of runs.

    Parameters
    ----------
    project_root : str or os.PathLike
        Directory of the code. For ``repo_git`` the repository containing it is
        described (all of it, not only this subdirectory). Relative
        ``exclude_paths`` and ``extra_deps`` are resolved against it.
    exclude_paths : sequence of str or os.PathLike
        Paths whose content never counts as a code change under ``repo_git``
        (the tracker's run directory, database file and journal). Each covers
        itself, everything below it and its journal/temp companions
        (``.wal``, ``-wal``, ``-shm``, ``-journal``, ``.lock``, ``.tmp``).
    racy_window_ns : int
        A cached fingerprint is trusted only if nothing it watches changed
        later than this long before it was taken (default 2 s); covers coarse
        filesystem timestamps and clock skew on network filesystems.
    source_suffixes : iterable of str, optional
        Suffixes of untracked files that count as code under ``repo_git``
        (case-insensitive); default :data:`DEFAULT_SOURCE_SUFFIXES`.
    watch : bool
        Prove an unchanged work tree with inotify where possible (default);
        False always uses ``lstat`` calls.

    Raises
    ------
    ValueError
        If ``racy_window_ns`` is not a non-negative int, ``exclude_paths`` is
        a single path instead of a sequence of paths, or ``source_suffixes``
        is not a list of suffixes.
    """

    def __init__(
        self,
        project_root: str | os.PathLike[str],
        *,
        exclude_paths: Sequence[str | os.PathLike[str]] = (),
        racy_window_ns: int = 2_000_000_000,
        source_suffixes: Iterable[str] | None = None,
        watch: bool = True,
    ) -> None:
        if isinstance(racy_window_ns, bool) or not isinstance(racy_window_ns, int):
            raise ValueError(f"racy_window_ns must be an int; got {racy_window_ns!r}")
        if racy_window_ns < 0:
            raise ValueError(f"racy_window_ns must be >= 0; got {racy_window_ns}")
        if isinstance(exclude_paths, str | bytes | os.PathLike):
            raise ValueError(
                "exclude_paths must be a sequence of paths, not a single path; "
                f"wrap it in a list: [{os.fspath(exclude_paths)!r}]"
            )
        self._root = os.path.abspath(os.fspath(project_root))
        self._excludes = tuple(
            os.path.normpath(os.path.join(self._root, os.fsdecode(os.fspath(p))))
            for p in exclude_paths
        )
        self._window = racy_window_ns
        self._suffixes = (
            DEFAULT_SOURCE_SUFFIXES
            if source_suffixes is None
            else normalize_suffixes(source_suffixes, "code_identity_source_suffixes")
        )
        self._watch = bool(watch)
        self._lock = threading.RLock()
        self._loc: _Location | None = None
        self._core: _GitCore | None = None
        self._git_last: tuple[tuple[Any, ...], CodeIdentity] | None = None
        self._submodules: dict[str, CodeIdentityResolver] = {}
        self._callables: dict[tuple[str, int], _CallableEntry] = {}
        self._deps = _ExtraDeps(self._root, racy_window_ns)

    @property
    def project_root(self) -> str:
        """Absolute path of the project root."""
        return self._root

    @property
    def source_suffixes(self) -> frozenset[str]:
        """The default source suffixes of this resolver (lower case)."""
        return self._suffixes

    # -- public API ---------------------------------------------------------

    def resolve(
        self,
        mode: str | None = None,
        fn: Callable[..., Any] | None = None,
        extra_deps: Sequence[str | os.PathLike[str]] = (),
        source_suffixes: Iterable[str] | None = None,
        exclude_dirs: Sequence[str | os.PathLike[str]] = (),
    ) -> CodeIdentity:
        """Return the code identity of a run.

        Parameters
        ----------
        mode : {"repo_git", "callable_module", "callable_source"} or None
            The ``code_identity`` option. ``None`` (default) means ``"repo_git"``
            when ``project_root`` is inside a git work tree; otherwise
            ``"callable_module"`` of ``fn`` with ``fallback_reason`` set, or, with
            no ``fn`` (or one whose module file cannot be found), a result of mode
            ``"unavailable"`` with ``digest=None`` and the reason (the caller must
            then not cache the run).
        fn : callable, optional
            The callable being run (required by the callable modes, ignored by
            ``repo_git``).
        extra_deps : sequence of str or os.PathLike
            The ``code_identity_extra_deps`` option: files or directories folded in
            by content in every mode; relative paths are resolved against
            ``project_root``.
        source_suffixes : iterable of str, optional
            The ``code_identity_source_suffixes`` option of this run: suffixes of
            untracked files that count as code under ``repo_git``; None uses the
            resolver's set.
        exclude_dirs : sequence of paths, optional
            Under ``repo_git``, work-tree changes below these directories do
            not count (a config adapter accounts for its config tree by
            canonical content); ``HEAD`` still does. Directories outside the
            repository are ignored.

        Returns
        -------
        CodeIdentity

        Raises
        ------
        CodeIdentityError
            If ``mode`` is not an allowed value; if an explicit mode cannot be
            computed (``repo_git`` outside a repository or without git; a callable
            mode for a built-in or for code with no source/file on disk); if an
            extra dependency does not exist; if git fails unexpectedly; if
            ``source_suffixes`` is not a list of suffixes.
        """
        if mode is not None and mode not in CODE_IDENTITY_MODES:
            allowed = ", ".join(repr(m) for m in CODE_IDENTITY_MODES)
            raise CodeIdentityError(
                f"code_identity must be one of {allowed} or None (default: repo_git, "
                f"falling back to callable_module outside a repository); got {mode!r}"
            )
        deps = self._deps.normalize(extra_deps)
        if source_suffixes is None:
            suffixes = self._suffixes
        else:
            try:
                suffixes = normalize_suffixes(source_suffixes, "code_identity_source_suffixes")
            except ValueError as exc:
                raise CodeIdentityError(str(exc)) from None
        with self._lock:
            if mode is not None and mode != "repo_git":
                return self._resolve_callable(mode, fn, deps)
            loc = self._location()
            if loc.toplevel is not None:
                return self._resolve_git(loc, deps, suffixes, _below(loc.toplevel, exclude_dirs))
            reason = loc.reason  # always set when there is no repository
            if mode == "repo_git":
                raise CodeIdentityError(
                    f"code_identity='repo_git' needs a git repository, but {reason}. Run "
                    "from inside a git work tree (or `git init` the project), or choose "
                    "code_identity='callable_module' or 'callable_source'."
                )
            dep_digests = self._deps.digests(deps)
            unavailable = {"root": self._root, "extra_deps": dep_digests}
            if fn is None:
                return CodeIdentity(
                    UNAVAILABLE,
                    None,
                    unavailable,
                    f"{reason}; no callable given to fall back to callable_module",
                )
            try:
                identity = self._resolve_callable("callable_module", fn, deps)
            except CodeIdentityError as exc:
                return CodeIdentity(
                    UNAVAILABLE, None, unavailable, f"{reason}; callable_module failed: {exc}"
                )
            return replace(identity, fallback_reason=reason)

    def prefetch(self) -> None:
        """Find the repository and compute its git state now (default suffixes, no extras).

        Meant for a tracker waiting for its store (see
        ``connection.while_waiting_for_the_file``): its first run then only
        proves that state unchanged, by ``stat`` calls, instead of running
        git while it holds the file. Outside a repository it does nothing;
        errors are left for :meth:`resolve` to raise.
        """
        with self._lock:
            loc = self._location()
            if loc.toplevel is not None:
                self._resolve_git(loc, (), self._suffixes)

    def diff(self, old: CodeIdentity, new: CodeIdentity) -> dict[str, Any]:
        """Describe what differs between two identities ("why did this step re-run").

        Parameters
        ----------
        old, new : CodeIdentity
            Identities to compare (e.g. the cached run's and the current one).

        Returns
        -------
        dict
            Empty if the identities are equal. Otherwise ``{"mode": (old, new)}``
            when the modes differ; for ``repo_git`` any of ``"head": (old, new)``,
            ``"files": {relpath: (old_entry_or_None, new_entry_or_None)}`` (None:
            the path was clean), ``"submodules": {relpath: (old, new)}``; for the
            callable modes any of ``"module"``, ``"qualname"``, ``"file"`` (file
            digests), ``"file_path"``, ``"source"`` (source digests), ``"code"``
            (bytecode digests), each ``(old, new)``; in every mode
            ``"extra_deps": {path: (old, new)}``. If the digests differ but no
            detail explains it, ``{"digest": (old, new)}``.
        """
        if old.mode != new.mode:
            return {"mode": (old.mode, new.mode)}
        if old.digest == new.digest:
            return {}
        od = old.details if isinstance(old.details, dict) else {}
        nd = new.details if isinstance(new.details, dict) else {}
        out: dict[str, Any] = {}

        def scalar(key: str, name: str) -> None:
            if od.get(key) != nd.get(key):
                out[name] = (od.get(key), nd.get(key))

        if old.mode == "repo_git":
            scalar("head", "head")
            for key, name in (("dirty", "files"), ("submodules", "submodules")):
                changed = _map_diff(od.get(key), nd.get(key))
                if changed:
                    out[name] = changed
        else:
            scalar("module", "module")
            scalar("qualname", "qualname")
            scalar("file_digest", "file")
            scalar("file", "file_path")
            scalar("source_digest", "source")
            scalar("code_digest", "code")
        extra = _map_diff(od.get("extra_deps"), nd.get("extra_deps"))
        if extra:
            out["extra_deps"] = extra
        if not out:
            out["digest"] = (old.digest, new.digest)
        return out

    def _location(self) -> _Location:
        """Where the repository is, rediscovered when its fingerprint fails."""
        loc = self._loc
        if loc is None or not loc.fingerprint.valid():
            loc = _discover(self._root, self._window)
            self._loc = loc
        return loc

    def _resolve_git(
        self,
        loc: _Location,
        deps: tuple[tuple[str, str], ...],
        suffixes: frozenset[str],
        excluded: tuple[str, ...] = (),
    ) -> CodeIdentity:
        """``repo_git`` identity: the cached git core plus submodule and dependency digests."""
        core = self._core
        if (
            core is None
            or core.location is not loc
            or not suffixes <= core.suffixes
            or not core.fingerprint.valid()
        ):
            self._git_last = None
            wanted = suffixes if core is None else core.suffixes | suffixes
            if core is not None:
                core.close()
                self._core = None
            core = _compute_git_core(loc, self._excludes, self._window, wanted, watch=self._watch)
            self._core = core
        submodules = {
            rel: (_UNINITIALIZED if path is None else self._submodule_digest(rel, path, suffixes))
            for rel, path in core.submodules.items()
        }
        dep_digests = self._deps.digests(deps)
        key = (core, suffixes, tuple(submodules.items()), tuple(dep_digests.items()), excluded)
        last = self._git_last
        if last is not None and last[0] == key:
            return _copy_identity(last[1])
        if suffixes == core.suffixes:
            untracked = core.untracked
        else:
            untracked = {
                rel: entry
                for rel, entry in core.untracked.items()
                if entry.startswith("dir:") or is_source(rel.rpartition("/")[2], suffixes)
            }
        dirty = {**core.tracked_dirty, **untracked}
        if excluded:
            dirty = {rel: e for rel, e in dirty.items() if not rel.startswith(excluded)}
            untracked = {rel: e for rel, e in untracked.items() if not rel.startswith(excluded)}
        payload = {
            "head": core.head,
            "dirty": dirty,
            "submodules": submodules,
            "extra_deps": dep_digests,
        }
        details = {"root": loc.toplevel, **payload, "untracked": sorted(untracked)}
        if excluded:
            details["excluded"] = list(excluded)
        identity = CodeIdentity("repo_git", _digest(_GIT_DOMAIN, payload), _copy_json(details))
        self._git_last = (key, identity)
        return _copy_identity(identity)

    def _submodule_digest(self, rel: str, path: str, suffixes: frozenset[str]) -> str:
        """``repo_git`` digest of the checked-out submodule at ``path`` (its own resolver)."""
        sub = self._submodules.get(path)
        if sub is None:
            sub = CodeIdentityResolver(
                path,
                exclude_paths=self._excludes,
                racy_window_ns=self._window,
                source_suffixes=self._suffixes,
                watch=self._watch,
            )
            self._submodules[path] = sub
        # Locate first: a broken checkout would otherwise make git describe (and
        # recurse into) the superproject.
        with sub._lock:
            sub_loc = sub._location()
        if sub_loc.toplevel is None or sub_loc.toplevel != os.path.realpath(sub.project_root):
            raise CodeIdentityError(
                f"code_identity='repo_git': submodule {rel!r} has a .git entry but git "
                "does not treat it as a repository of its own; run `git submodule update "
                "--init` or remove the broken checkout."
            )
        digest = sub.resolve("repo_git", source_suffixes=suffixes).digest
        if digest is None:  # pragma: no cover - repo_git always yields a digest
            raise CodeIdentityError(f"code_identity='repo_git': submodule {rel!r} has no digest")
        return digest

    def _resolve_callable(
        self, mode: str, fn: Callable[..., Any] | None, deps: tuple[tuple[str, str], ...]
    ) -> CodeIdentity:
        """Identity of ``fn`` under a callable mode, cached per callable and code objects."""
        if fn is None:
            raise CodeIdentityError(
                f"code_identity={mode!r} needs the callable being run (fn=...); "
                "tracker.run passes it automatically. For begin_run/trace without a "
                "callable use code_identity='repo_git'."
            )
        if not callable(fn):
            raise CodeIdentityError(f"code_identity={mode!r}: {fn!r} is not callable")
        target = _unwrap_callable(fn)
        codes = _code_objects(target)
        cache_key = (mode, id(target))
        entry = self._callables.get(cache_key)
        if (
            entry is None
            or entry.target is not target
            or len(entry.codes) != len(codes)
            or not all(a is b for a, b in zip(entry.codes, codes, strict=True))
            or not entry.fingerprint.valid()
        ):
            entry = _describe_callable(mode, target, codes, self._window)
            self._callables.pop(cache_key, None)
            if len(self._callables) >= _MAX_CALLABLE_ENTRIES:
                self._callables.pop(next(iter(self._callables)))
            self._callables[cache_key] = entry
        dep_digests = self._deps.digests(deps)
        dep_key = tuple(dep_digests.items())
        if entry.last_result is not None and entry.last_key == dep_key:
            return _copy_identity(entry.last_result)
        domain = _MODULE_DOMAIN if mode == "callable_module" else _SOURCE_DOMAIN
        digest = _digest(domain, {**entry.payload, "extra_deps": dep_digests})
        identity = CodeIdentity(
            mode, digest, {**_copy_json(entry.details), "extra_deps": dep_digests}
        )
        entry.last_key, entry.last_result = dep_key, identity
        return _copy_identity(identity)


def _below(toplevel: str, dirs: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """Repository-relative prefixes (``"configs/"``) of the ``dirs`` inside ``toplevel``."""
    prefixes = []
    for d in dirs:
        rel = os.path.relpath(os.path.realpath(os.fspath(d)), toplevel).replace(os.sep, "/")
        if rel == "." or rel.startswith("../") or rel == "..":
            continue  # the whole repository, or outside it: nothing to exclude
        prefixes.append(rel.rstrip("/") + "/")
    return tuple(sorted(set(prefixes)))
