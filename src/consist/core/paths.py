"""Mounts, portable URIs and traversal guards.

A :class:`PathResolver` maps filesystem paths to *portable URIs* and back, so a
store written on one machine can be read on another whose directories live
elsewhere:

- a path under a mount root becomes ``"<name>://<relative/posix/path>"``;
- a path under ``run_dir`` (and under no more specific mount) becomes
  ``"./<relative/posix/path>"``;
- any other path is recorded as its absolute, normalised POSIX path.

It also enforces design invariant 5, *paths stay in their roots*: a URI never
resolves outside its mount root or ``run_dir``, and nothing the library
derives (an artifact directory, a hydrated copy) is written outside
``run_dir`` and the mount roots unless ``allow_external_paths`` is set.
Reading external files is always allowed, and so is writing to a destination
the user names explicitly (:meth:`PathResolver.user_write_path`).

Path handling decisions
-----------------------
- **POSIX only.** Paths are treated as POSIX paths; a backslash is an ordinary
  filename character, not a separator, and drive letters are not recognised.
- **Naming is lexical, guarding is physical.** Mapping a path to a URI uses the
  *lexical* absolute path (``~`` expanded, made absolute against the current
  directory, ``.``, ``..`` and repeated slashes collapsed, symlinks *not*
  followed), so a symlinked mount root still maps under the name the user gave
  it. Only when a path matches no root lexically are the real (symlink
  resolved) paths compared as well, so ``/private/var/x`` still maps onto a
  root configured as ``/var`` on macOS. Containment checks that protect against
  traversal use :func:`os.path.realpath` of the normalised path, so a symlink
  inside a root that points outside it cannot be used to escape.
- ``~`` is expanded in filesystem paths (``run_dir``, mount roots, paths given
  to :meth:`PathResolver.virtualize`, :meth:`PathResolver.guard_write_path`,
  :meth:`PathResolver.is_within_run_dir` and ``artifact_dir``) but never
  inside URIs.
- Nothing here creates, reads or writes files; the only filesystem access is
  the ``lstat``/``readlink`` calls made by ``realpath``. Roots need not exist.

The module imports only the standard library so it stays cheap to import.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote

__all__ = ["MOUNT_NAME_PATTERN", "PathResolver", "to_posix_relative"]

#: Pattern a mount name must match in full.
MOUNT_NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]*"
_MOUNT_NAME_RE = re.compile(MOUNT_NAME_PATTERN)
# Anything that looks like ``scheme://rest``. Broader than RFC 3986 schemes so
# that every valid mount name (which may contain "_") is recognised.
_URI_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-_]*)://(.*)", re.DOTALL)
# Names that cannot be used for mounts because they already mean something.
_RESERVED_MOUNT_NAMES = frozenset({"file"})
_OUTPUTS_DIRNAME = "outputs"


# --------------------------------------------------------------------------- #
# Pure helpers
# --------------------------------------------------------------------------- #
def _fspath_str(value: object, param: str) -> str:
    """Return ``value`` as a non-empty ``str`` path, or raise naming ``param``."""
    if not isinstance(value, str | os.PathLike):
        raise TypeError(
            f"{param} must be a str or os.PathLike path, got {type(value).__name__}: {value!r}"
        )
    text = os.fspath(value)
    if not isinstance(text, str):
        raise TypeError(f"{param} must be a text path, not bytes: {value!r}")
    if not text:
        raise ValueError(f"{param} must be a non-empty path, got an empty string")
    if "\x00" in text:
        raise ValueError(f"{param} must not contain NUL characters: {text!r}")
    return text


def _normalize(path: str) -> str:
    """Make ``path`` absolute against the current directory and normalise it.

    Purely lexical: symlinks are not followed. POSIX keeps exactly two leading
    slashes as implementation-defined; on Linux and macOS they mean ``/``, so
    they are collapsed too.
    """
    result = os.path.abspath(path)
    if result.startswith("//"):
        result = "/" + result.lstrip("/")
    return result


def _expand_normalize(path: str) -> str:
    """Expand a leading ``~`` and return the normalised absolute path."""
    return _normalize(os.path.expanduser(path))


def _realpath(path: str) -> str:
    """Return the symlink-resolved absolute path (non-strict: may not exist)."""
    return _normalize(os.path.realpath(path))


_UNSAFE_DIR_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def default_run_subdir(model_name: str, run_id: str) -> str:
    """``<model>/<run_id>`` with the model name made safe as a directory name."""
    model = _UNSAFE_DIR_CHARS.sub("_", model_name).strip("._") or "model"
    return f"{model}/{run_id}"


def _plain_below(path: str, root: str) -> bool:
    """True when ``path`` lies lexically under ``root`` with no symlink below it.

    ``path`` is normalised (no ``..``), so if none of its existing components
    below ``root`` is a symbolic link it cannot resolve outside ``root``: a
    few ``lstat`` calls then prove what a full ``realpath`` would (which costs
    one ``lstat`` per component from ``/``, on every run). False means "not
    proven" and the caller resolves the real path.
    """
    rest = _relative(path, root)
    if rest is None:
        return False
    current = root
    for part in rest.split("/") if rest else ():
        current = current + "/" + part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return True  # nothing below a missing component exists yet
        except OSError:
            return False
        if stat.S_ISLNK(mode):
            return False
    return True


def _relative(path: str, root: str) -> str | None:
    """Return ``path`` relative to ``root`` ("" if equal), or None if outside.

    Both arguments must already be absolute and normalised. Matching is by
    whole path components, so ``/data/in`` is not under ``/data/i``.
    """
    if path == root:
        return ""
    prefix = root if root.endswith("/") else root + "/"
    if path.startswith(prefix):
        return path[len(prefix) :]
    return None


def _specificity(candidate: tuple[str | None, str]) -> tuple[int, bool]:
    """Sort key for (mount name or None for run_dir, root): longer roots first,
    then mounts before run_dir. Used with a stable ``reverse=True`` sort, so
    mounts with identical roots keep their given order."""
    name, root = candidate
    return (len(root), name is not None)


def to_posix_relative(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str | None:
    """Express ``path`` relative to ``root`` as a POSIX string.

    The comparison is lexical (symlinks are not followed) and by whole path
    components. Relative arguments are made absolute against the current
    directory first, and both are normalised (``.``, ``..`` and repeated
    slashes collapsed, ``~`` is *not* expanded).

    Parameters
    ----------
    path : str | os.PathLike
        The path to express relative to ``root``.
    root : str | os.PathLike
        The directory it should lie under.

    Returns
    -------
    str | None
        ``""`` when ``path`` equals ``root``, the relative POSIX path (no
        leading ``./``) when it lies under ``root``, or ``None`` otherwise.

    Raises
    ------
    TypeError
        If an argument is not a text path.
    ValueError
        If an argument is empty or contains NUL characters.
    """
    return _relative(_normalize(_fspath_str(path, "path")), _normalize(_fspath_str(root, "root")))


# --------------------------------------------------------------------------- #
# Resolver
# --------------------------------------------------------------------------- #
class PathResolver:
    """Map paths to portable URIs and back, and keep writes inside their roots.

    See the module docstring for how paths are normalised and when symlinks
    are followed. Mounts are matched case-sensitively by name. When several
    roots contain a path, the longest (most specific) root wins; a mount wins
    over ``run_dir`` when both roots are the same directory, and among mounts
    with identical roots the first one given wins.

    Parameters
    ----------
    run_dir : str | os.PathLike
        Directory where the tracker's outputs and journal live. ``~`` is
        expanded and relative paths are resolved against the current
        directory. It need not exist yet.
    mounts : Mapping[str, str | os.PathLike] | None
        Mount name -> root directory, e.g. ``{"inputs": "/data/inputs"}``.
        Names must match ``[A-Za-z][A-Za-z0-9_-]*`` and may not be ``file``.
        Roots may be missing on this machine; ``~`` is expanded, relative
        roots are resolved against the current directory and trailing slashes
        are ignored.
    allow_external_paths : bool
        Default for whether writes outside ``run_dir`` and the mount roots are
        permitted (see :meth:`guard_write_path`).

    Raises
    ------
    TypeError
        If ``run_dir`` or a mount root is not a text path, ``mounts`` is not a
        mapping, or ``allow_external_paths`` is not a bool.
    ValueError
        If ``run_dir`` or a mount root is empty, or a mount name is invalid.

    Attributes
    ----------
    run_dir : Path
        Absolute, normalised run directory.
    mounts : Mapping[str, Path]
        Read-only view of the absolute, normalised mount roots.
    allow_external_paths : bool
        Default used when a method's ``allow_external_paths`` is ``None``.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        mounts: Mapping[str, str | os.PathLike[str]] | None = None,
        *,
        allow_external_paths: bool = False,
    ) -> None:
        self._run_dir = _expand_normalize(_fspath_str(run_dir, "run_dir"))
        self._mount_roots = self._validate_mounts(mounts)
        self.mounts: Mapping[str, Path] = MappingProxyType(
            {name: Path(root) for name, root in self._mount_roots.items()}
        )
        if not isinstance(allow_external_paths, bool):
            raise TypeError(
                "allow_external_paths must be True or False, got "
                f"{type(allow_external_paths).__name__}: {allow_external_paths!r}"
            )
        self.allow_external_paths = allow_external_paths
        # Candidate roots for virtualize(), most specific first. The sort is
        # stable, so for equal roots mounts (listed first) beat run_dir and
        # earlier mounts beat later ones.
        candidates: list[tuple[str | None, str]] = list(self._mount_roots.items())
        candidates.append((None, self._run_dir))
        candidates.sort(key=_specificity, reverse=True)
        self._candidates = tuple(candidates)

    @staticmethod
    def _validate_mounts(
        mounts: Mapping[str, str | os.PathLike[str]] | None,
    ) -> dict[str, str]:
        if mounts is None:
            return {}
        if not isinstance(mounts, Mapping):
            raise TypeError(
                "mounts must be a mapping of name -> root directory, got "
                f"{type(mounts).__name__}: {mounts!r}"
            )
        roots: dict[str, str] = {}
        for name, root in mounts.items():
            if not isinstance(name, str) or not _MOUNT_NAME_RE.fullmatch(name):
                raise ValueError(
                    f"mounts: invalid mount name {name!r}; names must match "
                    f"{MOUNT_NAME_PATTERN} (a letter, then letters, digits, '_' or '-')"
                )
            if name.lower() in _RESERVED_MOUNT_NAMES:
                raise ValueError(
                    f"mounts: mount name {name!r} is reserved for file:// URIs; choose another name"
                )
            roots[name] = _expand_normalize(_fspath_str(root, f"mounts[{name!r}]"))
        return roots

    @property
    def run_dir(self) -> Path:
        """Absolute, normalised run directory."""
        return Path(self._run_dir)

    def __repr__(self) -> str:
        mounts = {name: str(root) for name, root in self.mounts.items()}
        return (
            f"PathResolver(run_dir={self._run_dir!r}, mounts={mounts!r}, "
            f"allow_external_paths={self.allow_external_paths!r})"
        )

    # ------------------------------------------------------------------ #
    # Path -> URI
    # ------------------------------------------------------------------ #
    def virtualize(self, path: str | os.PathLike[str]) -> str:
        """Convert a filesystem path into a portable URI.

        The path is made absolute (``~`` expanded, relative paths against the
        current directory) and normalised lexically. It is then matched
        against the mount roots and ``run_dir``, most specific root first. If
        it matches none lexically, the symlink-resolved path is matched against
        the symlink-resolved roots before giving up. Files need not exist.

        A string of the form ``scheme://...`` is taken to be a URI already: it
        is resolved with :meth:`resolve_uri` and re-virtualized (so the result
        is canonical), or returned unchanged if this resolver cannot resolve
        it (e.g. an unmounted scheme).

        Parameters
        ----------
        path : str | os.PathLike
            The path to convert.

        Returns
        -------
        str
            ``"<mount>://<rel>"`` for a path under a mount root (``<rel>`` is
            empty for the root itself), ``"./<rel>"`` for a path under
            ``run_dir`` (``"./"`` for ``run_dir`` itself), otherwise the
            absolute normalised POSIX path.

        Raises
        ------
        TypeError
            If ``path`` is not a text path.
        ValueError
            If ``path`` is empty, or is a URI that escapes its root (see
            :meth:`resolve_uri`).
        """
        text = _fspath_str(path, "path")
        if isinstance(path, str) and _URI_RE.fullmatch(text):
            resolved = self.resolve_uri(text)
            if _URI_RE.fullmatch(resolved):
                return resolved  # not resolvable here; keep as given
            text = resolved
        absolute = _expand_normalize(text)
        uri = self._match_roots(absolute, self._candidates)
        if uri is not None:
            return uri
        real = _realpath(absolute)
        real_candidates = [(name, _realpath(root)) for name, root in self._candidates]
        real_candidates.sort(key=_specificity, reverse=True)
        uri = self._match_roots(real, real_candidates)
        return uri if uri is not None else absolute

    @staticmethod
    def _match_roots(
        absolute: str, candidates: tuple[tuple[str | None, str], ...] | list[tuple[str | None, str]]
    ) -> str | None:
        for name, root in candidates:
            rel = _relative(absolute, root)
            if rel is not None:
                return f"./{rel}" if name is None else f"{name}://{rel}"
        return None

    # ------------------------------------------------------------------ #
    # URI -> path
    # ------------------------------------------------------------------ #
    def resolve_uri(self, uri: str, *, allow_external_paths: bool | None = None) -> str:
        """Convert a portable URI back into an absolute local path.

        Forms understood:

        - ``"<mount>://<rel>"`` -> mount root / rel (mounted names only);
        - ``"./<rel>"`` (or a bare relative path) -> ``run_dir`` / rel;
        - ``"/abs/path"`` -> the same path, normalised;
        - ``"file:///abs/path"`` (or ``file://localhost/...``) -> ``/abs/path``,
          percent-decoded.

        ``.``, ``..`` and repeated slashes inside ``<rel>`` are normalised;
        the result must stay within its root. ``~`` is not expanded. Any other
        URI (an unmounted or unknown scheme such as ``s3://...``, or a
        ``file://`` URI naming another host) cannot be resolved here and is
        returned unchanged.

        Parameters
        ----------
        uri : str
            The URI to resolve.
        allow_external_paths : bool | None
            When true, a symlink inside the root that points outside it is
            followed instead of rejected. ``..`` or absolute components that
            escape the root are rejected regardless. Defaults to the
            resolver's setting.

        Returns
        -------
        str
            The absolute normalised path, or ``uri`` itself if it cannot be
            resolved here.

        Raises
        ------
        TypeError
            If ``uri`` is not a ``str``.
        ValueError
            If ``uri`` is empty or contains NUL characters, or if a mounted or
            ``./`` URI escapes its root via ``..``, an absolute component, or
            (unless external paths are allowed) a symlink.
        """
        if not isinstance(uri, str):
            raise TypeError(f"uri must be a str, got {type(uri).__name__}: {uri!r}")
        _fspath_str(uri, "uri")
        allow = self._allow(allow_external_paths)
        match = _URI_RE.fullmatch(uri)
        if match is not None:
            scheme, rest = match.group(1), match.group(2)
            if scheme.lower() == "file":
                return self._resolve_file_uri(uri, rest)
            root = self._mount_roots.get(scheme)
            if root is None:
                return uri
            return self._join_inside(root, rest, uri, f"mount {scheme!r}", allow)
        if uri.startswith("/"):
            return _normalize(uri)
        rel = uri[2:] if uri.startswith("./") else uri
        return self._join_inside(self._run_dir, rel, uri, "run_dir", allow)

    @staticmethod
    def _resolve_file_uri(uri: str, rest: str) -> str:
        host, slash, path = rest.partition("/")
        if host not in ("", "localhost") or not slash:
            return uri  # another host, or no path: not resolvable here
        path = unquote("/" + path)
        if "\x00" in path:
            raise ValueError(f"uri must not contain NUL characters: {uri!r}")
        return _normalize(path)

    @staticmethod
    def _join_inside(root: str, rel: str, uri: str, label: str, allow: bool) -> str:
        if rel.startswith("/"):
            raise ValueError(
                f"uri {uri!r} has an absolute path component {rel!r}; it must be "
                f"relative to its {label} root {root}"
            )
        candidate = _normalize(os.path.join(root, rel))
        if _relative(candidate, root) is None:
            raise ValueError(
                f"uri {uri!r} resolves to {candidate}, outside its {label} root {root}; "
                "'..' may not climb out of a root"
            )
        if not allow:
            real, real_root = _realpath(candidate), _realpath(root)
            if _relative(real, real_root) is None:
                raise ValueError(
                    f"uri {uri!r} resolves through a symlink to {real}, outside its "
                    f"{label} root {root} (real path {real_root}); pass "
                    "allow_external_paths=True to follow symlinks out of a root"
                )
        return candidate

    # ------------------------------------------------------------------ #
    # Guards
    # ------------------------------------------------------------------ #
    def _allow(self, allow_external_paths: bool | None) -> bool:
        if allow_external_paths is None:
            return self.allow_external_paths
        if not isinstance(allow_external_paths, bool):
            raise TypeError(
                "allow_external_paths must be True, False or None, got "
                f"{type(allow_external_paths).__name__}: {allow_external_paths!r}"
            )
        return allow_external_paths

    def is_within_run_dir(self, path: str | os.PathLike[str]) -> bool:
        """Tell whether ``path`` physically lies inside ``run_dir``.

        The path is made absolute and normalised, then its symlink-resolved
        real path is compared with the real path of ``run_dir``; ``run_dir``
        itself counts as inside. A link inside ``run_dir`` pointing elsewhere
        is therefore outside, and a path that reaches ``run_dir`` through a
        symlink is inside.

        Parameters
        ----------
        path : str | os.PathLike
            The path to test; it need not exist.

        Returns
        -------
        bool
            True if the path lies within ``run_dir``.

        Raises
        ------
        TypeError
            If ``path`` is not a text path.
        ValueError
            If ``path`` is empty.
        """
        absolute = _expand_normalize(_fspath_str(path, "path"))
        return _relative(_realpath(absolute), _realpath(self._run_dir)) is not None

    def _within_roots(self, absolute: str) -> bool:
        real = _realpath(absolute)
        roots = (self._run_dir, *self._mount_roots.values())
        return any(_relative(real, _realpath(root)) is not None for root in roots)

    def guard_write_path(
        self,
        path: str | os.PathLike[str],
        *,
        allow_external_paths: bool | None = None,
        param: str = "path",
    ) -> Path:
        """Check that a path about to be written lies inside a known root.

        The path is made absolute and normalised lexically; that normalised
        path is returned and is what the caller should write to. It passes if
        its symlink-resolved real path lies inside the real path of
        ``run_dir`` or of any mount root, so a symlink inside a root cannot be
        used to write outside it.

        Parameters
        ----------
        path : str | os.PathLike
            The destination to check; it need not exist.
        allow_external_paths : bool | None
            Skip the containment check. Defaults to the resolver's setting.
        param : str
            Name of the caller's parameter, used in error messages.

        Returns
        -------
        Path
            The absolute, normalised path.

        Raises
        ------
        TypeError
            If ``path`` is not a text path.
        ValueError
            If ``path`` is empty, or lies outside ``run_dir`` and every mount
            root while external paths are not allowed.
        """
        absolute = _expand_normalize(_fspath_str(path, param))
        if self._allow(allow_external_paths) or self._within_roots(absolute):
            return Path(absolute)
        raise ValueError(
            f"{param}={os.fspath(path)!r} resolves to {_realpath(absolute)}, outside "
            f"run_dir ({self._run_dir}){self._describe_mounts()}; write under run_dir or a "
            "mount root, or pass allow_external_paths=True (to this call or the Tracker) "
            "to write outside them"
        )

    def user_write_path(self, path: str | os.PathLike[str], *, param: str = "path") -> Path:
        """The destination a user named explicitly (``path=``, ``output_paths``, ...).

        Invariant 5 confines only the paths the library derives from keys,
        names and stored URIs; a destination the user spells out is honoured
        wherever it points, inside or outside ``run_dir`` and the mounts,
        without ``allow_external_paths``. The path is validated, ``~``
        expanded, made absolute against the current directory and
        normalised; nothing is created.

        Parameters
        ----------
        path : str | os.PathLike
            The destination.
        param : str
            Name of the caller's parameter, used in error messages.

        Returns
        -------
        Path
            The absolute, normalised path.

        Raises
        ------
        TypeError
            If ``path`` is not a text path.
        ValueError
            If ``path`` is empty or contains NUL characters.
        """
        return Path(_expand_normalize(_fspath_str(path, param)))

    def _describe_mounts(self) -> str:
        if not self._mount_roots:
            return ""
        listed = ", ".join(f"{name}={root}" for name, root in self._mount_roots.items())
        return f" and every mount root ({listed})"

    def resolve_artifact_dir(
        self,
        artifact_dir: str | os.PathLike[str] | None,
        default_subdir: str,
        *,
        allow_external_paths: bool | None = None,
    ) -> Path:
        """Resolve the directory a run writes its artifacts to.

        Implements the ``begin_run(artifact_dir=...)`` rule:

        - ``None`` -> ``run_dir/outputs/<default_subdir>``;
        - relative -> ``run_dir/outputs/<artifact_dir>``, which must not climb
          out of ``run_dir/outputs`` via ``..`` (even when external paths are
          allowed: use an absolute path for that);
        - absolute (after ``~`` expansion) -> itself, which must lie within
          ``run_dir`` unless external paths are allowed. Mount roots outside
          ``run_dir`` do not count.

        In every case, unless external paths are allowed, the real path must
        lie within the real path of ``run_dir``, so a symlink (for example a
        symlinked ``outputs`` directory) cannot lead the run's writes outside
        it. Nothing is created.

        Parameters
        ----------
        artifact_dir : str | os.PathLike | None
            The user's override, or ``None`` for the default.
        default_subdir : str
            Per-run subdirectory (typically from the tracker's
            ``run_subdir_fn``). Must be a non-empty relative path without
            ``..`` components; validated even when ``artifact_dir`` is given.
        allow_external_paths : bool | None
            Allow an absolute ``artifact_dir`` (or a symlink target) outside
            ``run_dir``. Defaults to the resolver's setting.

        Returns
        -------
        Path
            The absolute, normalised artifact directory.

        Raises
        ------
        TypeError
            If ``artifact_dir`` or ``default_subdir`` has the wrong type.
        ValueError
            If ``default_subdir`` is unsafe (message names ``run_subdir_fn``),
            if a relative ``artifact_dir`` escapes ``run_dir/outputs``, or if
            the directory lies outside ``run_dir`` while external paths are
            not allowed (message names ``artifact_dir`` and the fix).
        """
        allow = self._allow(allow_external_paths)
        outputs = _normalize(os.path.join(self._run_dir, _OUTPUTS_DIRNAME))
        subdir = self._validate_subdir(default_subdir)

        if artifact_dir is None:
            candidate = _normalize(os.path.join(outputs, subdir))
            shown = f"None (default {candidate})"
        else:
            text = os.path.expanduser(_fspath_str(artifact_dir, "artifact_dir"))
            shown = repr(os.fspath(artifact_dir))
            if os.path.isabs(text):
                candidate = _normalize(text)
            else:
                candidate = _normalize(os.path.join(outputs, text))
                if _relative(candidate, outputs) is None:
                    raise ValueError(
                        f"artifact_dir={shown} climbs out of {outputs} via '..'; "
                        "relative artifact_dir values are resolved under <run_dir>/outputs. "
                        "Use an absolute path (with allow_external_paths=True if it lies "
                        "outside run_dir) instead"
                    )
        if allow or _plain_below(candidate, self._run_dir):
            return Path(candidate)
        real = _realpath(candidate)
        if _relative(real, _realpath(self._run_dir)) is None:
            raise ValueError(
                f"artifact_dir={shown} resolves to {real}, outside run_dir ({self._run_dir}); "
                "choose a directory under run_dir, or pass allow_external_paths=True "
                "(to begin_run or the Tracker) to write artifacts outside it"
            )
        return Path(candidate)

    @staticmethod
    def _validate_subdir(default_subdir: str) -> str:
        if not isinstance(default_subdir, str | os.PathLike):
            raise TypeError(
                "run_subdir_fn must return a str path, got "
                f"{type(default_subdir).__name__}: {default_subdir!r}"
            )
        text = os.fspath(default_subdir)
        if not isinstance(text, str):
            raise TypeError(f"run_subdir_fn must return a text path, not bytes: {text!r}")
        parts = [part for part in text.split("/") if part not in ("", ".")]
        problem = None
        if "\x00" in text:
            problem = "contains NUL characters"
        elif text.startswith("/"):
            problem = "is absolute"
        elif ".." in parts:
            problem = "contains a '..' component"
        elif not parts:
            problem = "is empty (it must name a subdirectory)"
        if problem is not None:
            raise ValueError(
                f"run_subdir_fn returned an unsafe subdirectory {text!r}: it {problem}; "
                "it must be a relative path below <run_dir>/outputs without '..'"
            )
        return "/".join(parts)
