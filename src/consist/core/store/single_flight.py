"""Single-flight: one process computes a given signature at a time (DuckDB mode).

When several workers (sweep processes, cluster jobs sharing a store) reach
the same cache signature at once, only one should run the step; the others
wait and then hit its result. A claim is an exclusive ``flock`` on a lock
file named after the signature, in a folder beside the database
(``<db_path>.claims/``). The kernel releases a ``flock`` when its holder's
file is closed, including when the process dies (SIGKILL, OOM), so a crashed
holder never blocks the others: the next waiter takes the claim and, finding
no completed run, computes the step itself.

The lock is advisory and scoped to one machine's file system view of the
folder (``flock`` over NFS depends on the mount); team mode on a database
server will use the server's advisory locks instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Claim", "SignatureClaims", "SingleFlightTimeout"]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class SingleFlightTimeout(TimeoutError):
    """Another process kept computing the same signature longer than allowed."""


@dataclass
class Claim:
    """An exclusive claim on one signature; :meth:`release` lets the next waiter in."""

    path: Path
    waited: bool  # another process held it first: its result may now be stored
    _fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        """Give the claim back and remove its lock file (idempotent).

        The file is unlinked while still locked; a waiter that locked the
        unlinked file notices (its descriptor no longer matches the path) and
        tries again, so at most one process ever holds a signature.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # already gone, or a read-only folder
                os.unlink(self.path)
            os.close(fd)  # closing the descriptor drops the flock


class SignatureClaims:
    """Claims on signatures of one store.

    Parameters
    ----------
    directory:
        Folder of the lock files (created when first needed).
    timeout_s:
        How long a waiter waits for another holder (None: as long as it takes).
    """

    def __init__(self, directory: Path, timeout_s: float | None = None) -> None:
        self.directory = directory
        self.timeout_s = timeout_s
        self._folder_made = False

    def path_for(self, signature: str) -> Path:
        """The lock file of ``signature`` (its name derived, never a path the signature names)."""
        name = _SAFE.sub("_", signature.split(":", 1)[-1])[:128] or "signature"
        return self.directory / f"{name}.lock"

    def claim(self, signature: str) -> Claim:
        """Wait for and take the claim on ``signature``.

        Raises
        ------
        SingleFlightTimeout
            If another process holds it longer than ``timeout_s``.
        """
        path = self.path_for(signature)
        if not self._folder_made:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._folder_made = True
        waited = False
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        delay = 0.005
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            except FileNotFoundError:  # the folder was removed meanwhile
                self.directory.mkdir(parents=True, exist_ok=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                waited = True
            else:
                if _same_file(fd, path):
                    return Claim(path, waited, fd)
                os.close(fd)  # the holder removed that file as it finished: again
                waited = True
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise SingleFlightTimeout(
                    f"another process has been computing signature {signature} for more "
                    f"than single_flight_timeout={self.timeout_s:g} s (claim {path}); "
                    "raise single_flight_timeout, wait for it, or stop that process"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
