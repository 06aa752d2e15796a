"""Running git and parsing its output, for the ``repo_git`` code identity.

Git is run with ``GIT_OPTIONAL_LOCKS=0`` (``git status`` never rewrites the
index, which would make the index look racy), ``LC_ALL=C``, and without the
variables that re-point git elsewhere (``GIT_DIR``, ``GIT_WORK_TREE``,
``GIT_INDEX_FILE``, ...), so a pre-commit hook cannot make it describe a
temporary index.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from consist.core.identity.code_identity_records import CodeIdentityError

# Environment variables that would make git describe something else than the work
# tree containing project_root.
_GIT_ENV_DROP = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
        "GIT_INTERNAL_SUPER_PREFIX",
    }
)


class _GitMissingError(Exception):
    """The git executable could not be started."""


def _git_env() -> dict[str, str]:
    """The environment git runs in: see the module docstring."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env.update(LC_ALL="C", LANGUAGE="C", GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0")
    return env


def _start_git(args: Sequence[str], cwd: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``git *args`` in ``cwd`` with stdout and stderr captured.

    Raises
    ------
    _GitMissingError
        If the git executable cannot be found.
    CodeIdentityError
        If ``cwd`` no longer exists.
    """
    try:
        return subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        if not os.path.isdir(cwd):
            raise CodeIdentityError(
                f"code_identity: directory {cwd!r} disappeared while reading git state"
            ) from exc
        raise _GitMissingError(str(exc)) from exc


def _finish_git(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, str]:
    """Wait for ``proc``: (return code, stdout bytes, stripped stderr text)."""
    out, err = proc.communicate()
    return proc.returncode, out, err.decode("utf-8", "replace").strip()


def _git_failed(what: str, root: str, message: str) -> CodeIdentityError:
    """The error raised when a git command fails unexpectedly."""
    return CodeIdentityError(
        f"code_identity='repo_git': {what} failed in {root}: {message or 'no message'}. "
        "Fix the repository, or choose code_identity='callable_module' / "
        "'callable_source' for this run."
    )


@dataclass
class _Status:
    """Parsed ``git status --porcelain=v2 -z`` output."""

    head: str | None = None
    changed: dict[str, bool | None] = field(default_factory=dict)  # rel -> must exist?
    untracked: set[str] = field(default_factory=set)
    untracked_dirs: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)
    ignored_dirs: set[str] = field(default_factory=set)


def _expect_exists(xy: str) -> bool | None:
    """Whether a changed path must exist in the work tree, from its XY status."""
    x, y = xy[0], xy[1]
    if y == "D":
        return False
    if y != ".":
        return True
    return None if x == "D" else True


def _parse_status(out: bytes) -> _Status:
    """Parse ``git status --porcelain=v2 --branch -z`` output.

    Raises
    ------
    CodeIdentityError
        On output this parser does not understand.
    """
    status = _Status()
    tokens = out.split(b"\0")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token:
            continue
        kind = token[:1]
        if kind == b"#":
            if token.startswith(b"# branch.oid "):
                oid = token[len(b"# branch.oid ") :].decode("ascii")
                status.head = None if oid == "(initial)" else oid
        elif kind in (b"1", b"2", b"u"):
            nfields = {b"1": 8, b"2": 9, b"u": 10}[kind]
            parts = token.split(b" ", nfields)
            if len(parts) != nfields + 1:
                raise CodeIdentityError(f"code_identity: unexpected git status line {token!r}")
            xy, sub = parts[1].decode("ascii"), parts[2]
            rel = os.fsdecode(parts[nfields])
            if kind == b"2":
                orig = os.fsdecode(tokens[i])
                i += 1
                if not sub.startswith(b"S"):
                    status.changed.setdefault(orig, None)
            if sub.startswith(b"S"):
                continue  # submodules are described by their own repo_git digest
            status.changed[rel] = None if kind == b"u" else _expect_exists(xy)
        elif kind == b"?":
            rel = os.fsdecode(token[2:])
            if rel.endswith("/"):
                status.untracked_dirs.add(rel[:-1])
            else:
                status.untracked.add(rel)
        elif kind == b"!":
            rel = os.fsdecode(token[2:])
            if rel.endswith("/"):
                status.ignored_dirs.add(rel[:-1])
            else:
                status.ignored.add(rel)
        else:
            raise CodeIdentityError(f"code_identity: unexpected git status output {token!r}")
    return status


def _parse_ls_files(out: bytes) -> tuple[dict[str, str], set[str]]:
    """``git ls-files -z -s -v`` -> ({rel: tag}, gitlink rels).

    Raises
    ------
    CodeIdentityError
        On output this parser does not understand.
    """
    tracked: dict[str, str] = {}
    gitlinks: set[str] = set()
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, sep, path = record.partition(b"\t")
        fields = meta.split(b" ")
        if not sep or len(fields) != 4:
            raise CodeIdentityError(f"code_identity: unexpected git ls-files output {record!r}")
        rel = os.fsdecode(path)
        if fields[1] == b"160000":
            gitlinks.add(rel)
        else:
            tracked.setdefault(rel, fields[0].decode("ascii"))
    return tracked, gitlinks
