"""``begin_run(hash_inputs=...)``: extra files folded into the config side of identity.

Hash inputs are configuration kept in files (a settings bundle, a directory
of YAML). They are not logged as run inputs; their content joins the run's
``config_hash``, so a change to them reads as a config change. Inside a
hashed directory, names starting with ``.`` (``.DS_Store``, ``.git``, editor
swap files, checkpoints) are skipped at every level; a dotfile named
explicitly is hashed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from consist.core.identity.hashing import ContentHasher, hash_bytes

HASH_INPUTS_VERSION = "consist-hash-inputs-v1"
CONFIG_FOLD_VERSION = "consist-config-with-hash-inputs-v1"


def _visible_files(root: str) -> list[tuple[str, str]]:
    """(relative POSIX path, path) of the files under ``root``, dot-names skipped."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink cycle
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            if os.path.isfile(path):
                out.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    return sorted(out)


def digest_hash_inputs(
    hasher: ContentHasher, named_paths: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """Content digest of each ``(name, path)``; directories skip dot-names.

    A file contributes its content digest; a directory a digest of the sorted
    (relative path, content digest) list of its visible files.
    """
    plans: list[tuple[str, list[tuple[str, str]] | None, str]] = []
    files: list[str] = []
    for name, path in named_paths:
        if os.path.isdir(path):
            listing = _visible_files(path)
            files.extend(p for _, p in listing)
            plans.append((name, listing, path))
        else:
            files.append(path)
            plans.append((name, None, path))
    digests = dict(zip(files, hasher.digest_many(files), strict=True)) if files else {}
    out: dict[str, str] = {}
    for name, listing, path in plans:
        if listing is None:
            out[name] = digests[path]
            continue
        entries = [[rel, digests[p]] for rel, p in listing]
        payload = json.dumps({"directory": entries}, separators=(",", ":"), ensure_ascii=False)
        out[name] = hash_bytes(HASH_INPUTS_VERSION.encode() + b"\0" + payload.encode())
    return out


def fold_into_config_hash(config_hash: str, digests: Mapping[str, str]) -> str:
    """The config digest with the hash inputs folded in (unchanged when there are none)."""
    if not digests:
        return config_hash
    payload = json.dumps(
        {"config": config_hash, "hash_inputs": dict(sorted(digests.items()))},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hash_bytes(CONFIG_FOLD_VERSION.encode() + b"\0" + payload.encode())
