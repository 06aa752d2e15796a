"""The pending ledger: which journal snapshots the database may not have yet.

Each process appends to its own ledger file in ``consist_runs/.pending/``:
``P <ns> <run_id>`` when a snapshot version is journaled, ``S <ns> <run_id>``
once the database has committed it (or a catch-up replayed it). A snapshot is
outstanding while some ``P`` has no ``S`` at least as new, across all ledger
files. Appending to an open file costs far less than creating and deleting a
marker file per write.

``B <ns> <run_id> <snapshot JSON>`` records the start of a function-shaped run
(``Tracker.run``) whose only journal file is written when it ends: if the
process dies while the function executes, a catch-up turns the line into the
run's snapshot (status ``running``), so a killed run still leaves a trace. One
append costs a few microseconds; a separate snapshot file would cost a file
creation and a rename on every run.

The owner holds an ``flock`` on its ledger for its lifetime, so a catch-up can
tell a dead process's ledger (lockable) from a live one's; the kernel drops
the lock when a process dies. A ledger with nothing outstanding is truncated
in place, and removed when its process exits cleanly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

_LEDGERS: weakref.WeakSet[PendingLog] = weakref.WeakSet()


@dataclass
class LedgerScan:
    """Outstanding snapshot versions by run id, and ledgers of dead processes."""

    outstanding: dict[str, int] = field(default_factory=dict)
    dead_files: list[Path] = field(default_factory=list)
    # Start snapshots (version, JSON) of runs begun by processes that died.
    dead_starts: dict[str, tuple[int, bytes]] = field(default_factory=dict)


class PendingLog:
    """This process's ledger in one ``.pending`` directory.

    Parameters
    ----------
    pending_dir:
        ``<run_dir>/consist_runs/.pending`` (created by the journal).
    """

    def __init__(self, pending_dir: Path) -> None:
        self.pending_dir = pending_dir
        self._fd: int | None = None
        self._pid = 0
        self._path: Path | None = None
        self._outstanding: dict[str, int] = {}
        self._lock = threading.Lock()
        _LEDGERS.add(self)

    @staticmethod
    def close_all() -> None:
        """Close every ledger of this process (at exit, after the final flush)."""
        for ledger in list(_LEDGERS):
            ledger.close()

    def _ensure_open(self) -> int:
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        # First use, or a forked child: a ledger of our own.
        self._pid = os.getpid()
        self._outstanding = {}
        self._path = self.pending_dir / f"{self._pid}-{time.time_ns()}.log"
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd
        return fd

    def note_pending(self, run_id: str, version: int) -> None:
        """Snapshot ``version`` of ``run_id`` is journaled, not yet in the DB."""
        with self._lock:
            fd = self._ensure_open()
            os.write(fd, f"P\t{version}\t{run_id}\n".encode())
            if version > self._outstanding.get(run_id, -1):
                self._outstanding[run_id] = version

    def note_started(self, run_id: str, version: int, snapshot: bytes) -> None:
        """A run began; ``snapshot`` (one-line JSON) is its start record.

        Raises
        ------
        ValueError
            If ``snapshot`` contains a line break (it must stay one line).
        """
        if b"\n" in snapshot:
            raise ValueError("a start snapshot must be single-line JSON")
        line = f"B\t{version}\t{run_id}\t".encode() + snapshot + b"\n"
        with self._lock:
            fd = self._ensure_open()
            os.write(fd, line)

    def note_synced(self, run_id: str, version: int) -> None:
        """The DB holds ``run_id`` at ``version`` (or newer)."""
        with self._lock:
            fd = self._ensure_open()
            os.write(fd, f"S\t{version}\t{run_id}\n".encode())
            if self._outstanding.get(run_id, -1) <= version:
                self._outstanding.pop(run_id, None)
            if not self._outstanding:
                os.ftruncate(fd, 0)  # nothing outstanding: compact in place

    def close(self) -> None:
        """Release the ledger; remove it when nothing is outstanding."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None or self._pid != os.getpid():
                return
            if not self._outstanding and self._path is not None:
                with contextlib.suppress(OSError):
                    self._path.unlink()
            os.close(fd)

    @staticmethod
    def scan(pending_dir: Path) -> LedgerScan:
        """Combine every ledger: outstanding versions, and ledgers of dead owners."""
        result = LedgerScan()
        try:
            entries = [e for e in os.scandir(pending_dir) if e.name.endswith(".log")]
        except FileNotFoundError:
            return result
        pending: dict[str, int] = {}
        synced: dict[str, int] = {}
        for entry in entries:
            path = Path(entry.path)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            dead = False
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    result.dead_files.append(path)
                    dead = True
                except BlockingIOError:
                    pass  # its process is alive
                data = _read_all(fd)
            finally:
                os.close(fd)
            for raw in data.split(b"\n"):
                if raw.startswith(b"B\t"):
                    if dead:
                        _note_start(raw, result.dead_starts)
                    continue
                parts = raw.decode(errors="replace").split("\t", 2)
                if len(parts) != 3 or not parts[1].isdigit():
                    continue  # a torn last line of a killed writer
                kind, version, run_id = parts[0], int(parts[1]), parts[2]
                target = pending if kind == "P" else synced if kind == "S" else None
                if target is not None and version > target.get(run_id, -1):
                    target[run_id] = version
        result.outstanding = {
            run_id: version
            for run_id, version in pending.items()
            if version > synced.get(run_id, -1)
        }
        return result


def _note_start(raw: bytes, starts: dict[str, tuple[int, bytes]]) -> None:
    parts = raw.split(b"\t", 3)
    if len(parts) != 4 or not parts[1].isdigit() or not parts[3].endswith(b"}"):
        return  # torn by the kill
    version, run_id = int(parts[1]), parts[2].decode(errors="replace")
    if version > starts.get(run_id, (-1, b""))[0]:
        starts[run_id] = (version, parts[3])


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
