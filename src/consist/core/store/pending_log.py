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

:meth:`PendingLog.scan` reads every ledger without changing anything and
reports what it cannot trust: a line that is not a ledger entry (garbage, a
run id the tracker would refuse, so a line can never name a file outside the
journal), a dead ledger's unfinished last line, and entries named ``*.log``
that are not regular files (opened without following links or blocking, so
a FIFO cannot hang an open). :mod:`consist.core.store.recovery` acts on it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import stat
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from consist.core.validation import validate_run_id

_LEDGERS: weakref.WeakSet[PendingLog] = weakref.WeakSet()


@dataclass
class LedgerScan:
    """What every ledger of one ``.pending`` directory says, and what is wrong with it.

    Attributes
    ----------
    outstanding:
        Latest journaled version of each run whose database commit is not
        confirmed (by any ledger).
    dead_files, live_files:
        Ledgers whose process has died (their lock is free), and the others.
    dead_starts:
        Start records ``(version, JSON, ledger)`` of runs begun by processes
        that died.
    dead_pending:
        For each dead ledger, the runs it noted as pending (so a ledger whose
        snapshot turns out unreadable can be set aside with it).
    problems:
        ``{ledger path: [descriptions]}``: lines that are not ledger lines
        (garbage, a hostile run id), a start record cut off by a kill.
    damaged:
        Ledgers holding lines that cannot be read as ledger lines: what they
        said is lost, so runs they listed may be missing from the database.
    not_ledgers:
        Entries named ``*.log`` that are not regular files (a directory, a
        FIFO, a symlink): never opened.
    """

    outstanding: dict[str, int] = field(default_factory=dict)
    dead_files: list[Path] = field(default_factory=list)
    live_files: list[Path] = field(default_factory=list)
    dead_starts: dict[str, tuple[int, bytes, Path]] = field(default_factory=dict)
    dead_pending: dict[Path, set[str]] = field(default_factory=dict)
    problems: dict[Path, list[str]] = field(default_factory=dict)
    damaged: set[Path] = field(default_factory=set)
    not_ledgers: list[Path] = field(default_factory=list)

    def problem(self, path: Path, text: str, *, damaged: bool = True) -> None:
        """Note a problem with the ledger at ``path``."""
        self.problems.setdefault(path, []).append(text)
        if damaged:
            self.damaged.add(path)


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
            if self._outstanding.get(run_id, -1) <= version:
                self._outstanding.pop(run_id, None)
            if self._outstanding:
                os.write(fd, f"S\t{version}\t{run_id}\n".encode())
            else:
                # Nothing outstanding: compact in place (an ``S`` line would
                # only be truncated away; a crash before this truncation
                # leaves a ``P`` whose replay the store ignores as not newer).
                os.ftruncate(fd, 0)

    def note_synced_many(self, versions: dict[str, int]) -> None:
        """:meth:`note_synced` for several runs in one append."""
        data = "".join(f"S\t{v}\t{run_id}\n" for run_id, v in versions.items()).encode()
        with self._lock:
            fd = self._ensure_open()
            os.write(fd, data)
            for run_id, version in versions.items():
                if self._outstanding.get(run_id, -1) <= version:
                    self._outstanding.pop(run_id, None)
            if not self._outstanding:
                os.ftruncate(fd, 0)

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
        """Combine every ledger: outstanding versions, dead owners, and problems.

        Nothing is changed on disk; :func:`consist.core.store.recovery.catch_up`
        acts on what this finds.
        """
        result = LedgerScan()
        try:
            entries = [e for e in os.scandir(pending_dir) if e.name.endswith(".log")]
        except FileNotFoundError:
            return result
        pending: dict[str, int] = {}
        synced: dict[str, int] = {}
        for entry in entries:
            path = Path(entry.path)
            read = _read_ledger(path, result)
            if read is not None:
                dead, data = read
                _parse_ledger(path, data, dead, pending, synced, result)
        result.outstanding = {
            run_id: version
            for run_id, version in pending.items()
            if version > synced.get(run_id, -1)
        }
        return result


def _read_ledger(path: Path, result: LedgerScan) -> tuple[bool, bytes] | None:
    """``(owner is dead, content)`` of one ledger, or None when it cannot be read.

    Opened without following symlinks and without blocking (a FIFO named
    ``*.log`` must not hang every open); anything but a regular file is noted
    in ``result.not_ledgers``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None  # its process exited and removed it meanwhile
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink
            result.not_ledgers.append(path)
        else:
            result.problem(path, f"cannot be opened ({exc.strerror})", damaged=False)
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            result.not_ledgers.append(path)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            dead = True
        except BlockingIOError:
            dead = False  # its process is alive
        try:
            data = _read_all(fd)
        except OSError as exc:
            result.problem(path, f"cannot be read ({exc.strerror})", damaged=False)
            return None
    finally:
        os.close(fd)
    (result.dead_files if dead else result.live_files).append(path)
    return dead, data


# What a line cut off by a kill can look like (the file's last bytes, no newline).
_TORN_TAIL = re.compile(rb"[PS](\t\d*(\t[^\t]*)?)?|B(\t\d*(\t[^\t]*(\t.*)?)?)?", re.DOTALL)


def _parse_ledger(
    path: Path,
    data: bytes,
    dead: bool,
    pending: dict[str, int],
    synced: dict[str, int],
    result: LedgerScan,
) -> None:
    lines = data.split(b"\n")
    tail = lines.pop()  # empty when the file ends with a complete line
    bad: list[bytes] = []
    for raw in lines:
        if not raw:
            continue
        parsed = _parse_line(raw)
        if parsed is None:
            bad.append(raw)
            continue
        kind, version, run_id, snapshot = parsed
        if kind == "B":
            known = result.dead_starts.get(run_id)
            if dead and (known is None or version > known[0]):
                result.dead_starts[run_id] = (version, snapshot, path)
            continue
        target = pending if kind == "P" else synced
        if version > target.get(run_id, -1):
            target[run_id] = version
        if dead and kind == "P":
            result.dead_pending.setdefault(path, set()).add(run_id)
    if tail and dead:
        # A live owner may be writing its last line right now: only a dead
        # ledger's unfinished last line is judged.
        if not _TORN_TAIL.fullmatch(tail):
            bad.append(tail)
        elif tail.startswith(b"B"):
            result.problem(
                path,
                "the start record of a run was cut off when its process died; "
                "that run leaves no trace",
                damaged=False,
            )
    if bad:
        examples = ", ".join(repr(raw[:60]) for raw in bad[:3])
        result.problem(path, f"{len(bad)} line(s) that are not ledger entries (e.g. {examples})")


def _parse_line(raw: bytes) -> tuple[str, int, str, bytes] | None:
    """``(kind, version, run_id, start JSON)`` of one complete line, or None if invalid.

    A run id must be one the tracker accepts (so it can only name a file in
    the journal); anything else in a ledger is damage or tampering.
    """
    kind = raw[:1]
    if kind == b"B":
        parts = raw.split(b"\t", 3)
        if len(parts) != 4 or not parts[3].startswith(b"{") or not parts[3].endswith(b"}"):
            return None
    elif kind in (b"P", b"S"):
        parts = raw.split(b"\t", 2)
        if len(parts) != 3:
            return None
    else:
        return None
    if parts[0] != kind or not parts[1].isdigit():
        return None
    run_id = _valid_id(parts[2])
    if run_id is None:
        return None
    return kind.decode(), int(parts[1]), run_id, parts[3] if kind == b"B" else b""


@functools.lru_cache(maxsize=8192)
def _valid_id(raw: bytes) -> str | None:
    # The same id appears on several lines (start, pending, synced): check it once.
    try:
        return validate_run_id(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
