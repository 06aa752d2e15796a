"""Extra code dependencies (``code_identity_extra_deps``): files or directories by content.

They are folded into the code identity in every mode, keyed by the path as given
(normalised). Each digest is cached behind a stat fingerprint of what was read
(for a directory: every file and directory ``hash_directory`` reads, symlinks
followed).
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Sequence
from dataclasses import dataclass

from consist.core.identity.code_identity_fingerprint import _Fingerprint, _stat_key
from consist.core.identity.code_identity_records import CodeIdentityError
from consist.core.identity.hashing import hash_directory, hash_file

_MAX_DEP_ENTRIES = 1024


@dataclass(eq=False)
class _DepEntry:
    """Digest of one extra dependency, behind the fingerprint of what was read."""

    digest: str
    fingerprint: _Fingerprint


def _walk_followed(root: str, fp: _Fingerprint, t0: int) -> None:
    """Record the stat of a directory tree as ``hash_directory`` reads it (links followed)."""
    root_key = _stat_key(root)
    fp.add_stat(root, root_key, t0)
    if root_key is None:
        return
    stack: list[tuple[str, frozenset[tuple[int, int]]]] = [
        (root, frozenset({(root_key[4], root_key[3])}))
    ]
    while stack:
        directory, ancestors = stack.pop()
        with os.scandir(directory) as it:
            entries = list(it)
        for entry in entries:
            key = _stat_key(entry.path)
            if key is None:
                continue  # dangling symlink (its parent directory's stat covers it)
            if stat_mod.S_ISDIR(key[5]):
                ident = (key[4], key[3])
                if ident in ancestors:
                    continue
                fp.add_stat(entry.path, key, t0)
                stack.append((entry.path, ancestors | {ident}))
            elif stat_mod.S_ISREG(key[5]):
                fp.add_stat(entry.path, key, t0)


class _ExtraDeps:
    """Normalises extra dependencies and caches their digests (not thread-safe).

    Parameters
    ----------
    root : str
        Absolute project root; relative paths are resolved against it.
    window_ns : int
        Racy window of the fingerprints.
    """

    def __init__(self, root: str, window_ns: int) -> None:
        self._root = root
        self._window = window_ns
        self._cache: dict[str, _DepEntry] = {}

    def normalize(
        self, extra_deps: Sequence[str | os.PathLike[str]]
    ) -> tuple[tuple[str, str], ...]:
        """Validate and resolve the ``code_identity_extra_deps`` option.

        Parameters
        ----------
        extra_deps : sequence of str or os.PathLike
            Files or directories; relative paths are resolved against the root.

        Returns
        -------
        tuple of (str, str)
            ``(key, absolute path)`` pairs, sorted and deduplicated by key; the
            key is the path as given, normalised, with ``/`` separators.

        Raises
        ------
        CodeIdentityError
            If ``extra_deps`` is a single path, or an entry is not a path.
        """
        if not extra_deps:
            return ()
        if isinstance(extra_deps, str | bytes | os.PathLike):
            raise CodeIdentityError(
                "code_identity_extra_deps must be a list of paths, not a single path; "
                f"wrap it in a list: [{os.fsdecode(os.fspath(extra_deps))!r}]"
            )
        deps: dict[str, str] = {}
        for item in extra_deps:
            try:
                given = os.fsdecode(os.fspath(item))
            except TypeError:
                raise CodeIdentityError(
                    f"code_identity_extra_deps entries must be paths (str or os.PathLike); "
                    f"got {item!r}"
                ) from None
            key = os.path.normpath(given).replace(os.sep, "/")
            deps[key] = os.path.normpath(os.path.join(self._root, given))
        return tuple(sorted(deps.items()))

    def digests(self, deps: tuple[tuple[str, str], ...]) -> dict[str, str]:
        """Content digests of normalised dependencies, recomputed only when changed.

        Parameters
        ----------
        deps : tuple of (str, str)
            The result of :meth:`normalize`.

        Returns
        -------
        dict
            ``{key: digest}`` in the order of ``deps``.

        Raises
        ------
        CodeIdentityError
            If a dependency does not exist or is neither a file nor a directory.
        """
        out: dict[str, str] = {}
        for key, path in deps:
            entry = self._cache.get(path)
            if entry is None or not entry.fingerprint.valid():
                entry = self._compute(key, path)
                if len(self._cache) >= _MAX_DEP_ENTRIES:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[path] = entry
            out[key] = entry.digest
        return out

    def _compute(self, key: str, path: str) -> _DepEntry:
        """Hash one dependency and fingerprint what was read."""
        t0 = time.time_ns()
        fp = _Fingerprint(self._window)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise CodeIdentityError(
                f"code_identity_extra_deps: {key!r} does not exist (resolved to {path!r}; "
                f"relative paths are resolved against the project root {self._root!r}). "
                "Fix or remove the path."
            ) from None
        if stat_mod.S_ISDIR(st.st_mode):
            _walk_followed(path, fp, t0)  # before hashing: later changes show as a mismatch
            digest = hash_directory(path)
        elif stat_mod.S_ISREG(st.st_mode):
            before = _stat_key(path)
            digest = hash_file(path)
            fp.add_read_stat(path, before, t0)
        else:
            raise CodeIdentityError(
                f"code_identity_extra_deps: {key!r} ({path!r}) is neither a regular file "
                "nor a directory"
            )
        return _DepEntry(digest, fp)
