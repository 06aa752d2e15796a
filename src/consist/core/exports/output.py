"""Where an export is written, and the optional packages it needs.

Checks run before anything is written: the destination is the path the user
named (never a name derived from stored data), its parent directory must
exist, and a file export never replaces a directory. Files are written next
to the destination under a temporary name and renamed into place, so a
failed export leaves no partial document behind.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

EXTRA_HINT = "pip install 'consist[exports]'"


def require(module: str, what: str) -> ModuleType:
    """Import an optional package, or raise ImportError naming the ``exports`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs the 'exports' extra: {EXTRA_HINT} ({exc})") from exc


def check_file_destination(path: Path, param: str = "path") -> Path:
    """Validate a destination for a single-file export (``path`` is absolute).

    Raises
    ------
    ValueError
        If ``path`` is an existing directory or its parent directory does not
        exist.
    """
    if path.is_dir():
        raise ValueError(
            f"{param}={str(path)!r} is a directory; give the path of the file to write "
            "(inside it, or elsewhere)"
        )
    if not path.parent.is_dir():
        raise ValueError(
            f"{param}={str(path)!r}: the directory {str(path.parent)!r} does not exist; "
            "create it first"
        )
    return path


def check_directory_destination(path: Path, param: str = "path") -> Path:
    """Validate a destination directory: absent (to be created) or empty.

    Raises
    ------
    ValueError
        If ``path`` is a file, a non-empty directory, or its parent does not
        exist.
    """
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{param}={str(path)!r} exists and is not a directory; give a new directory "
            "(or a path ending in .zip for a zipped crate)"
        )
    if path.is_dir() and any(path.iterdir()):
        raise ValueError(
            f"{param}={str(path)!r} is a directory that is not empty; give a new or empty directory"
        )
    if not path.parent.is_dir():
        raise ValueError(
            f"{param}={str(path)!r}: the directory {str(path.parent)!r} does not exist; "
            "create it first"
        )
    return path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary file next to ``path``, renamed onto it when the block succeeds."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_directory(path: Path, fill: Callable[[Path], None]) -> None:
    """Fill a temporary sibling directory, then move it to ``path`` (absent or empty)."""
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(tmp)
        if path.is_dir():
            path.rmdir()  # empty: checked before
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
