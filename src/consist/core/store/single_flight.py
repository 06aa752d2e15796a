"""Single-flight: one process computes a given signature at a time (DuckDB mode).

When several workers (sweep processes, cluster jobs sharing a store) reach
the same cache signature at once, only one should run the step; the others
wait and then hit its result. A claim is an exclusive lock in a folder beside
the database (``<db_path>.claims/``):

* on Linux, an open-file-description lock (``F_OFD_SETLK``) on one byte of
  the shared file ``claims.lock``, at an offset derived from the signature
  (a 62-bit BLAKE2 digest): nothing is created or removed per claim, so a
  cache miss adds no file-system metadata to the journal's fsync (a file per
  claim cost about 0.1 ms per miss, a tenth of the durable-record floor);
* elsewhere, an exclusive ``flock`` on a lock file named after the
  signature, removed when the claim is released.

Both are tied to the holder's open file, which the kernel closes when the
process dies (SIGKILL, OOM), so a crashed holder never blocks the others: the
next waiter takes the claim and, finding no completed run, computes the step
itself. Consist versions before the shared file used per-signature files
only; processes of both kinds on one store at once do not exclude each other.

The lock is advisory and scoped to one machine's file system view of the
folder (``flock`` over NFS depends on the mount); team mode on a database
server will use the server's advisory locks instead.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Claim", "SignatureClaims", "SingleFlightTimeout"]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)  # Linux 3.15+
SHARED_LOCK_FILE = "claims.lock"


class SingleFlightTimeout(TimeoutError):
    """Another process kept computing the same signature longer than allowed."""


@dataclass
class Claim:
    """An exclusive claim on one signature; :meth:`release` lets the next waiter in."""

    path: Path
    waited: bool  # another process held it first: its result may now be stored
    _fd: int | None = field(default=None, repr=False)
    _owns_file: bool = field(default=True, repr=False)  # a per-signature file

    def release(self) -> None:
        """Give the claim back (idempotent); a per-signature lock file is removed.

        That file is unlinked while still locked; a waiter that locked the
        unlinked file notices (its descriptor no longer matches the path) and
        tries again, so at most one process ever holds a signature.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            if self._owns_file:
                with contextlib.suppress(OSError):  # already gone, or a read-only folder
                    os.unlink(self.path)
            os.close(fd)  # closing the descriptor drops the lock


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
        if not self._folder_made:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._folder_made = True
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        if _OFD_SETLK is not None:
            return self._claim_range(signature, _OFD_SETLK, deadline)
        return self._claim_file(signature, deadline)

    def _claim_range(self, signature: str, setlk: int, deadline: float | None) -> Claim:
        """Lock the signature's byte of the shared lock file (one open file per claim)."""
        path = self.directory / SHARED_LOCK_FILE
        digest = hashlib.blake2b(signature.encode(), digest_size=8).digest()
        offset = int.from_bytes(digest, "big") >> 2  # below 2**62: a valid off_t
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks).
        request = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
                break
            except FileNotFoundError:  # the folder was removed meanwhile
                self.directory.mkdir(parents=True, exist_ok=True)
        waited = False
        delay = 0.005
        while True:
            try:
                fcntl.fcntl(fd, setlk, request)
                return Claim(path, waited, fd, _owns_file=False)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            waited = True
            try:
                self._wait_turn(signature, path, deadline, delay)
            except BaseException:
                os.close(fd)
                raise
            delay = min(delay * 2, 0.25)

    def _wait_turn(self, signature: str, path: Path, deadline: float | None, delay: float) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise SingleFlightTimeout(
                f"another process has been computing signature {signature} for more "
                f"than single_flight_timeout={self.timeout_s:g} s (claim {path}); "
                "raise single_flight_timeout, wait for it, or stop that process"
            )
        time.sleep(delay)

    def _claim_file(self, signature: str, deadline: float | None) -> Claim:
        """Where there are no OFD locks: ``flock`` a lock file named after the signature."""
        path = self.path_for(signature)
        waited = False
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
            self._wait_turn(signature, path, deadline, delay)
            delay = min(delay * 2, 0.25)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
