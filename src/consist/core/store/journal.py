"""The journal: one human-readable JSON snapshot per run, written before the DB.

Layout under ``run_dir``::

    consist.json                  the latest snapshot this run_dir wrote
    consist_runs/<run_id>.json    one snapshot per run (full record)
    consist_runs/.pending/*.log   ledgers: snapshot versions not yet in the DB
    consist_runs/.pending/quarantine/   damaged ledgers (and stray entries) set aside

Every snapshot is written atomically (temporary file, fsync, rename), so a
reader never sees a torn file and a crash leaves either the old or the new
version. Each write is noted in the pending ledger until the database has
committed the same version; a store that opens later replays whatever is
still outstanding (see :mod:`consist.core.store.recovery` and
:mod:`consist.core.store.pending_log`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from consist.core.store.pending_log import LedgerScan, PendingLog
from consist.core.validation import validate_run_id
from consist.models.records import ConsistRecord

logger = logging.getLogger("consist")

RUNS_DIRNAME = "consist_runs"
LATEST_FILENAME = "consist.json"
PENDING_DIRNAME = ".pending"
QUARANTINE_DIRNAME = "quarantine"
# A temporary journal file this old is abandoned (a write takes milliseconds).
STALE_TEMP_AGE_S = 60.0


class JournalWriteError(OSError):
    """A run's journal snapshot (or its pending-ledger entry) could not be written.

    An ``OSError`` with the ``errno`` of the cause (e.g. ``ENOSPC``); the
    message names the run, the path and what to do.
    """


def journal_write_error(exc: OSError, run_id: str, path: Path) -> JournalWriteError:
    """The :class:`JournalWriteError` for ``exc`` raised while writing ``path``."""
    where = exc.filename or path
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = (
            f"no space left on the device holding {where}; free space there (the journal "
            "needs room for one snapshot per run) or point run_dir elsewhere, then run again"
        )
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = (
            f"{where} is not writable ({exc.strerror}); give write access, or open the "
            "tracker with read_only=True to read the store without recording runs"
        )
    else:
        reason = f"{exc.strerror or exc} ({where})"
    return JournalWriteError(exc.errno, f"could not write the journal of run {run_id!r}: {reason}")


def snapshot_bytes(record: ConsistRecord, *, indent: int | None = None) -> bytes:
    """The JSON snapshot of ``record``.

    Raises
    ------
    ValueError
        If a value of the record cannot be written as JSON (run metadata or
        artifact metadata nested too deep, or of a type JSON cannot hold).
    """
    try:
        return record.model_dump_json(indent=indent).encode()
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(
            f"run {record.run.id!r} cannot be written to its journal snapshot ({exc}); run "
            "or artifact metadata must be plain str/int/float/bool/None values, lists or "
            "dicts of them, nested at most a few dozen levels"
        ) from exc


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename.

    Raises
    ------
    OSError
        As raised by the file system (the temporary file is removed).
    """
    # Plain strings, not pathlib: this runs on every run's durable path.
    target = os.fspath(path)
    head, name = os.path.split(target)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        # A full disk or an I/O error must not leave temp files behind.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Journal:
    """Reads and writes the JSON snapshots of one ``run_dir``.

    Parameters
    ----------
    run_dir:
        The tracker's run directory (created if missing).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.runs_dir = self.run_dir / RUNS_DIRNAME
        self.pending_dir = self.runs_dir / PENDING_DIRNAME
        self.latest_path = self.run_dir / LATEST_FILENAME
        self._runs_dir_text = os.fspath(self.runs_dir)
        self._run_dir_text = os.fspath(self.run_dir)
        self._latest_text = os.fspath(self.latest_path)
        self.ledger = PendingLog(self.pending_dir)
        self._ready = False

    def _ensure_dirs(self) -> None:
        if not self._ready:
            self.pending_dir.mkdir(parents=True, exist_ok=True)
            self._ready = True

    def path_for(self, run_id: str) -> Path:
        """The snapshot file of ``run_id``.

        Raises
        ------
        ValueError
            If ``run_id`` is not a valid run id (it could name a file outside
            the journal).
        """
        return Path(self._path_text(run_id))

    def _path_text(self, run_id: str) -> str:
        """:meth:`path_for` as a string (the write path avoids pathlib)."""
        return os.path.join(self._runs_dir_text, f"{_checked_run_id(run_id)}.json")

    def write(self, record: ConsistRecord, *, pending: bool = True, latest: bool = True) -> None:
        """Atomically write the run's snapshot (and the latest pointer).

        Parameters
        ----------
        record:
            The snapshot; its ``updated_ns`` is set to this write's version.
        pending:
            Note the version in the pending ledger until :meth:`mark_synced`.
        latest:
            Also refresh ``consist.json`` (best effort: it is derivable).

        Raises
        ------
        ValueError
            If the record cannot be serialised (nothing is written).
        JournalWriteError
            If the snapshot or its ledger entry cannot be written (disk full,
            read-only directory); the message names the path and the fix.
        """
        self._start_write(record, pending=pending, latest=latest)()

    def prepare_write(self, record: ConsistRecord, *, pending: bool = True) -> Callable[[], None]:
        """Version the run's snapshot; return its write, for the store to run before it commits.

        The returned callable serialises the snapshot, notes it in the
        ledger, writes, fsyncs and renames the file and refreshes the latest
        pointer: the store calls it while its own statements run on its
        worker thread (see :mod:`consist.core.store.overlapped_commit`).

        Raises
        ------
        ValueError
            If the run id could name a file outside the journal. The
            returned callable raises ``ValueError`` if the record cannot be
            serialised (nothing is written) and :class:`JournalWriteError`
            if the ledger entry or the snapshot cannot be written.
        """
        return self._start_write(record, pending=pending, latest=True)

    def _start_write(
        self, record: ConsistRecord, *, pending: bool, latest: bool
    ) -> Callable[[], None]:
        """Version ``record``; return the write of its snapshot (serialised when it runs)."""
        record.updated_ns = max(time.time_ns(), record.updated_ns + 1)
        run_id = record.run.id
        path = self._path_text(run_id)

        def write_files() -> None:
            data = snapshot_bytes(record, indent=1)  # before anything is written
            try:
                self._ensure_dirs()
                if pending:
                    self.ledger.note_pending(run_id, record.updated_ns)
            except OSError as exc:
                raise journal_write_error(exc, run_id, Path(path)) from exc
            try:
                atomic_write_bytes(path, data)
            except OSError as exc:
                raise journal_write_error(exc, run_id, Path(path)) from exc
            if not latest:
                return
            try:
                self._point_latest_at(path, data)
            except OSError as exc:  # derivable: the snapshot itself is safe
                logger.warning("consist: could not update %s (%s)", self.latest_path, exc)

        return write_files

    def _point_latest_at(self, path: str, data: bytes) -> None:
        """Make ``consist.json`` the snapshot just written.

        A hard link to the snapshot's file (which every write replaces with a
        new file, so the link keeps this version) costs a few microseconds
        where a copy costs a file creation; filesystems without hard links
        get a copy. Derivable, so never fsynced.
        """
        tmp = os.path.join(
            self._run_dir_text, f".{LATEST_FILENAME}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        )
        try:
            os.link(path, tmp)
        except OSError:
            atomic_write_bytes(self._latest_text, data, fsync=False)
            return
        try:
            os.replace(tmp, self._latest_text)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def note_started(self, record: ConsistRecord) -> None:
        """Note the start of a run whose snapshot file is written when it ends.

        The start record goes into this process's pending ledger (one
        append, no file of its own); a catch-up after the process died turns
        it into the run's snapshot (see :func:`write_dead_start`).
        """
        record.updated_ns = max(time.time_ns(), record.updated_ns + 1)
        data = snapshot_bytes(record)
        try:
            self._ensure_dirs()
            self.ledger.note_started(record.run.id, record.updated_ns, data)
        except OSError as exc:
            raise journal_write_error(exc, record.run.id, self.pending_dir) from exc

    def write_if_absent(self, record: ConsistRecord) -> bool:
        """Write ``record`` as its run's snapshot unless one exists; True if written.

        Used to restore the start snapshot of a run whose process died. The
        check and the creation are one atomic step (a hard link of a
        complete temporary file), so a snapshot written meanwhile by its
        owner is never replaced by the older start record.
        """
        self._ensure_dirs()
        path = self.path_for(record.run.id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.start.tmp")
        atomic_write_bytes(tmp, record.model_dump_json(indent=1).encode())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def mark_synced(self, run_id: str, up_to_ns: int | None = None) -> None:
        """The DB has committed the snapshot of ``run_id`` written at ``up_to_ns``.

        Without ``up_to_ns``, every version journaled so far counts as synced.
        """
        self._ensure_dirs()
        self.ledger.note_synced(run_id, time.time_ns() if up_to_ns is None else up_to_ns)

    def pending_run_ids(self) -> list[str]:
        """Runs whose latest snapshot may be missing from the DB."""
        return sorted(PendingLog.scan(self.pending_dir).outstanding)

    def pending_scan(self) -> LedgerScan:
        """Outstanding versions and dead processes' ledgers (for catch-up)."""
        return PendingLog.scan(self.pending_dir)

    def close(self) -> None:
        """Release this process's pending ledger."""
        self.ledger.close()

    def read(self, run_id: str) -> ConsistRecord | None:
        """Parse one snapshot, or None when it does not exist.

        Raises
        ------
        SnapshotMismatchError
            If the file holds the snapshot of another run (copied or renamed
            by hand): it is never handed out as ``run_id``'s record.
        ValueError
            If the file is not a valid snapshot.
        OSError
            If the file cannot be read.
        """
        path = self.path_for(run_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        record = ConsistRecord.model_validate_json(raw)
        _check_names(path, run_id, record)
        return record

    def read_raw(self, run_id: str) -> dict | None:
        """The snapshot as plain JSON data, or None when missing."""
        try:
            return json.loads(self.path_for(run_id).read_bytes())
        except FileNotFoundError:
            return None

    def scan(self) -> Iterator[tuple[Path, ConsistRecord | None, str | None]]:
        """Every snapshot file as ``(path, record, None)`` or ``(path, None, error)``.

        A file whose content names another run than its file name is an error.
        """
        try:
            entries = sorted(os.scandir(self.runs_dir), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in entries:
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                record = ConsistRecord.model_validate_json(path.read_bytes())
                _check_names(path, entry.name[: -len(".json")], record)
            except (OSError, ValueError) as exc:
                yield path, None, f"{type(exc).__name__}: {exc}"
            else:
                yield path, record, None

    def snapshot_ids(self) -> list[str]:
        """Run ids of every snapshot file (names only; nothing is parsed)."""
        try:
            names = [e.name for e in os.scandir(self.runs_dir)]
        except FileNotFoundError:
            return []
        ids = []
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                try:
                    ids.append(validate_run_id(name[: -len(".json")]))
                except ValueError:
                    continue  # not a name the journal writes
        return sorted(ids)

    def mark_synced_many(self, versions: dict[str, int]) -> None:
        """:meth:`mark_synced` for several runs (one ledger append)."""
        if versions:
            self._ensure_dirs()
            self.ledger.note_synced_many(versions)

    def quarantine(self, path: Path) -> Path:
        """Move ``path`` (a file or directory) aside into ``.pending/quarantine/``.

        Nothing is deleted: the bytes stay for inspection, under the original
        name plus a timestamp.

        Raises
        ------
        FileNotFoundError
            If ``path`` is gone (another process moved or removed it first).
        """
        target_dir = self.pending_dir / QUARANTINE_DIRNAME
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{path.name}.{time.time_ns()}"
        os.rename(path, target)
        return target

    def remove_stale_temp_files(
        self,
        dead_pids: set[int],
        live_pids: set[int],
        *,
        max_age_s: float = STALE_TEMP_AGE_S,
    ) -> list[Path]:
        """Remove temporary files a crash left between write and rename.

        A temporary file (``.<name>.<pid>.<ns>[.start].tmp`` in the journal
        or beside ``consist.json``) is stale when its writer's ledger is dead
        and no live ledger has the same pid (the lock test is reliable where
        a pid test is not, e.g. across containers), or when it is older than
        ``max_age_s`` (a write takes milliseconds). Returns the removed paths.
        """
        now = time.time()
        removed: list[Path] = []
        for folder in (self.runs_dir, self.run_dir):
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                name = entry.name
                if not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                pid = _temp_owner(name)
                if pid is None:
                    continue  # not a name this journal writes
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                dead_owner = pid in dead_pids and pid not in live_pids
                if dead_owner or now - info.st_mtime > max_age_s:
                    try:
                        os.unlink(entry.path)
                    except FileNotFoundError:
                        continue  # its writer renamed it, or another cleaner got it
                    except OSError:
                        continue  # not ours to remove (permissions): left alone
                    removed.append(Path(entry.path))
        return removed


@functools.lru_cache(maxsize=8192)
def _checked_run_id(run_id: str) -> str:
    # A catch-up resolves thousands of ids; checking each once is enough.
    return validate_run_id(run_id)


class SnapshotMismatchError(ValueError):
    """A snapshot file holds the record of another run than its name says."""


def _check_names(path: Path, run_id: str, record: ConsistRecord) -> None:
    if record.run.id != run_id:
        raise SnapshotMismatchError(
            f"{path} holds the snapshot of run {record.run.id!r}, not {run_id!r} (copied or "
            f"renamed by hand?); put run {run_id!r}'s own snapshot there or remove the file"
        )


def _temp_owner(name: str) -> int | None:
    """The writer's pid in a temporary file name ``.<name>.<pid>.<ns>[.start].tmp``."""
    stem = name[: -len(".tmp")]
    if stem.endswith(".start"):
        stem = stem[: -len(".start")]
    parts = stem.rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return int(parts[1])
