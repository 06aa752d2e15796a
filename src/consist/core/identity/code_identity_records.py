"""Public records of code identity: the modes, the result type and the error.

They live apart from the resolver so that the modules computing identities
(:mod:`.git_state`, :mod:`.callable_identity`, :mod:`.code_identity_deps`) can
raise :class:`CodeIdentityError` without importing the resolver. Import them from
:mod:`consist.core.identity.code_identity`, which re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CODE_IDENTITY_MODES: tuple[str, ...] = ("repo_git", "callable_module", "callable_source")
"""Allowed values of ``code_identity``.

``None`` selects the default, see ``CodeIdentityResolver.resolve``.
"""

UNAVAILABLE = "unavailable"
"""Mode of a result that carries no identity (callers then disable caching)."""


class CodeIdentityError(ValueError):
    """The code identity cannot be computed truthfully; the message says how to fix it."""


@dataclass(frozen=True)
class CodeIdentity:
    """The code identity of a run.

    Attributes
    ----------
    mode : str
        ``"repo_git"``, ``"callable_module"``, ``"callable_source"`` or
        ``"unavailable"`` (no identity could be established; callers disable
        caching for the run).
    digest : str or None
        ``"blake3:<64 hex>"``; ``None`` only for ``"unavailable"``.
    details : dict
        JSON-serialisable description of what was hashed, used by
        :meth:`CodeIdentityResolver.diff`. ``repo_git``: ``{"root", "head",
        "dirty": {relpath: digest | "deleted"}, "untracked": [relpath, ...],
        "submodules": {relpath: digest | "uninitialized"}, "extra_deps": {path:
        digest}}``: ``dirty`` holds the tracked paths that differ from ``HEAD``
        and the counted untracked files (source suffixes), which ``untracked``
        lists; dirty digests of executables, symlinks and untracked nested
        repositories are prefixed ``"exec:"``, ``"symlink:"`` (digest of the
        link target) and ``"dir:"`` (digest of its source files).
        ``callable_module``: ``{"module", "qualname", "file", "file_digest",
        "code_digest", "extra_deps"}``. ``callable_source``: ``{"module",
        "qualname", "file", "source_digest", "code_digest", "extra_deps"}``.
        A fresh copy is returned by every ``resolve`` call.
    fallback_reason : str or None
        Why the default mode could not be used (e.g. ``"not a git repository:
        /path"``), when the result comes from a fallback.
    """

    mode: str
    digest: str | None
    details: dict[str, Any] = field(hash=False)
    fallback_reason: str | None = None
