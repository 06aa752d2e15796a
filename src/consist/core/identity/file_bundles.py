"""Files hashed together as one: a shapefile (``.shp``) with its sidecar files.

A Shapefile is several files named alike (``roads.shp``, ``roads.dbf``,
``roads.prj``, ...); editing only the ``.dbf`` is a new version of the layer.
The hasher (:mod:`consist.core.identity.hashing`) hashes a ``.shp`` path as
the Merkle list of its bundle, under a domain tag of its own so a bundle's
digest never equals a directory's.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Sequence

__all__ = ["BUNDLE_DOMAIN", "SHAPEFILE_SIDECARS", "Bundle", "bundle_rows", "shapefile_bundle"]

BUNDLE_DOMAIN = b"consist-shp-bundle-v1\0"

SHAPEFILE_SIDECARS: tuple[str, ...] = (
    ".shp", ".shx", ".dbf", ".prj", ".cpg", ".sbn", ".sbx", ".qix",
    ".fbn", ".fbx", ".ain", ".aih", ".atx", ".ixs", ".mxs", ".shp.xml",
)  # fmt: skip
"""Suffixes (matched case-insensitively) of the files hashed with a ``.shp``."""


class Bundle(list):
    """The rows ``(suffix, path, stat)`` of a shapefile bundle."""


def is_shp(path: str) -> bool:
    """Whether ``path`` names a ``.shp`` file (case-insensitive)."""
    return path.lower().endswith(".shp")


def domain_for(plan: Sequence[object], directory_domain: bytes) -> bytes:
    """The Merkle domain tag of a hashing plan: a bundle's own, else the directory one."""
    return BUNDLE_DOMAIN if isinstance(plan, Bundle) else directory_domain


def shapefile_bundle(path: str | os.PathLike[str]) -> list[str]:
    """The files hashed together with a ``.shp``: itself and its sidecars.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.shp`` file.

    Returns
    -------
    list of str
        Paths of the regular files in the same directory named like ``path``
        with a suffix in :data:`SHAPEFILE_SIDECARS` (case-insensitive), sorted
        by suffix; empty if ``path`` does not end with ``.shp``.
    """
    rows = bundle_rows(os.fspath(path))
    return [a for _r, a, _s in rows] if rows else []


def bundle_rows(path: str) -> Bundle | None:
    """A ``.shp`` path's bundle rows (relative name = the suffix), else None."""
    if not is_shp(path):
        return None
    folder, name = os.path.split(path)
    stem = name[:-4]
    rows = Bundle()
    with os.scandir(folder or ".") as it:
        for entry in it:
            suffix = entry.name[len(stem) :]
            if not entry.name.startswith(stem) or suffix.lower() not in SHAPEFILE_SIDECARS:
                continue
            try:
                st = entry.stat()
            except OSError:
                continue  # removed meanwhile, or a dangling link: no content
            if stat_mod.S_ISREG(st.st_mode):
                rows.append((suffix, entry.path, st))
    rows.sort()
    return rows if any(r == name[-4:] for r, _a, _s in rows) else None
