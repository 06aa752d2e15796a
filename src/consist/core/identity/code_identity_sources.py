"""Which untracked files are code: the source-suffix set of the ``repo_git`` identity.

Inside a git repository, tracked files are code whatever their extension (a
committed CSV of coefficients or a YAML of settings is part of the model). An
*untracked* file joins the code identity only when its name ends with one of
the source suffixes below; data, logs, notebook outputs and run results that sit
untracked in the repository are never read.

The default set covers Python (and Cython), R, Julia, the JVM languages, C and
C++, Fortran, Rust, Go, MATLAB/Octave, shell scripts and SQL. Matching ignores
case (``.R`` and ``.r``, ``.F90`` and ``.f90``). Pass another set to the tracker
(``code_identity_source_suffixes``) or per run (``CacheOptions``) to change it;
an empty set counts no untracked file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

DEFAULT_SOURCE_SUFFIXES: frozenset[str] = frozenset(
    {
        # Python and Cython
        ".py",
        ".pyx",
        ".pxd",
        ".pyi",
        # R, Julia, MATLAB / Octave
        ".r",
        ".jl",
        ".m",
        # JVM
        ".java",
        ".scala",
        ".kt",
        # C / C++
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".cxx",
        ".hpp",
        ".hh",
        # Fortran
        ".f",
        ".for",
        ".f77",
        ".f90",
        ".f95",
        ".f03",
        ".f08",
        # Rust, Go
        ".rs",
        ".go",
        # Scripts and queries
        ".sh",
        ".bash",
        ".sql",
    }
)
"""Suffixes (lower case) of untracked files that count as code by default."""


def normalize_suffixes(value: Any, param: str) -> frozenset[str]:
    """Validate a source-suffix set and return it lower-cased.

    Parameters
    ----------
    value : iterable of str
        Suffixes such as ``[".py", ".R"]``: each is one extension with its dot
        (no further dot, no path separator).
    param : str
        The parameter name used in error messages.

    Returns
    -------
    frozenset of str

    Raises
    ------
    ValueError
        If ``value`` is a single string or contains an invalid suffix.
    """
    if isinstance(value, str | bytes | os.PathLike):
        raise ValueError(
            f"{param} must be a list of suffixes such as ['.py', '.R'], not a single "
            f"string; wrap it in a list: [{value!r}]"
        )
    if not isinstance(value, Iterable):
        raise ValueError(f"{param} must be a list of suffixes such as ['.py', '.R']; got {value!r}")
    out: set[str] = set()
    for item in value:
        if (
            not isinstance(item, str)
            or len(item) < 2
            or not item.startswith(".")
            or "." in item[1:]
            or "/" in item
            or os.sep in item
            or "\0" in item
        ):
            raise ValueError(
                f"{param}: {item!r} is not a file suffix; give the last extension "
                "with its dot, e.g. '.py' or '.j2'"
            )
        out.add(item.lower())
    return frozenset(out)


def is_source(name: str, suffixes: frozenset[str]) -> bool:
    """Whether the file name ``name`` ends with one of ``suffixes`` (lower case).

    The suffix is the text from the last dot; a name without one, or a dotfile
    such as ``.bashrc``, has none.
    """
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in suffixes
