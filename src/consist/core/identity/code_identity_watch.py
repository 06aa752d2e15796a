"""Kernel change notification (Linux inotify) for the ``repo_git`` fingerprint.

Proving with ``lstat`` that no tracked file changed costs one system call per
tracked file on every run (~2 us each: 0.6 ms for 300 files). On Linux, with the
repository on a local filesystem, the work tree's directories are instead
watched with inotify: the kernel queues an event for every file created,
written, renamed, deleted or re-attributed in a watched directory, and a run
that finds the queue empty knows that nothing in the work tree changed, at the
cost of one ``read`` system call.

The watch is used only where it is exact:

* on filesystems whose changes all pass through this kernel (ext2/3/4, XFS,
  Btrfs, tmpfs, overlayfs, ZFS, F2FS, bcachefs, ReiserFS, JFS); network and
  FUSE filesystems (NFS, Lustre, GPFS, CIFS, sshfs, ...) fall back to ``lstat``
  fingerprints, since another machine's edit raises no local event;
* in the process that created it: a forked child shares the queue with its
  parent and never reads it (it falls back to a fresh scan);
* until the queue overflows (``IN_Q_OVERFLOW``), after which the next call
  recomputes with git.

Watches are set on a directory *before* it is listed, so a change made after a
listing always leaves an event; changes between git's own reading and the watch
are caught by the racy rule of the scan (see :mod:`.git_state`).

Known blind spots of inotify (they concern code files, not data): a write
through a hard link that lives outside the watched directories, and a write
through a shared memory mapping, raise no event on the watched directory. The
next change of anything relevant, or a new process, describes the tree again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import struct
import sys
from collections.abc import Iterator

# inotify(7) constants (linux/inotify.h).
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)

_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)
# Events about the watched directory itself (it vanished, moved, or the watch ended).
SELF_EVENTS = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED

_EVENT = struct.Struct("iIII")

# statfs(2) magic numbers of filesystems whose changes all go through this kernel.
_LOCAL_FS_MAGIC = frozenset(
    {
        0xEF53,  # ext2 / ext3 / ext4
        0x58465342,  # XFS
        0x9123683E,  # Btrfs
        0x01021994,  # tmpfs
        0x794C7630,  # overlayfs
        0x2FC12FC1,  # ZFS
        0xF2F52010,  # F2FS
        0xCA451A4E,  # bcachefs
        0x52654973,  # ReiserFS
        0x3153464A,  # JFS
    }
)


class WatchUnavailable(Exception):
    """inotify cannot be used here (platform, filesystem, or watch limit)."""


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_init1.restype = ctypes.c_int
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        lib.inotify_add_watch.restype = ctypes.c_int
        lib.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.statfs.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib


_LIBC: ctypes.CDLL | bool | None = False  # False: not loaded yet


def _get_libc() -> ctypes.CDLL | None:
    global _LIBC
    if _LIBC is False:
        _LIBC = _libc()
    return _LIBC  # type: ignore[return-value]


def _fs_is_local(lib: ctypes.CDLL, path: str) -> bool:
    """Whether ``path`` lives on a filesystem listed in ``_LOCAL_FS_MAGIC``."""
    buf = ctypes.create_string_buffer(512)  # larger than struct statfs everywhere
    if lib.statfs(os.fsencode(path), buf) != 0:
        return False
    magic = ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF
    return magic in _LOCAL_FS_MAGIC


class TreeWatcher:
    """One inotify instance watching directories of a work tree.

    Raises
    ------
    WatchUnavailable
        From the constructor when inotify is not available on this platform.
    """

    def __init__(self) -> None:
        lib = _get_libc()
        if lib is None:
            raise WatchUnavailable("inotify is not available on this platform")
        fd = lib.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise WatchUnavailable(os.strerror(ctypes.get_errno()))
        self._lib = lib
        self._fd = fd
        self._pid = os.getpid()
        self._local_devs: dict[int, bool] = {}
        self.dirs: dict[int, str] = {}  # watch descriptor -> repository-relative dir

    def add(self, abs_dir: str, rel_dir: str, dev: int) -> None:
        """Watch ``abs_dir`` (call before listing it).

        Raises
        ------
        WatchUnavailable
            If its filesystem is not local, or the kernel refuses the watch
            (e.g. ``fs.inotify.max_user_watches`` reached).
        """
        local = self._local_devs.get(dev)
        if local is None:
            local = self._local_devs[dev] = _fs_is_local(self._lib, abs_dir)
        if not local:
            raise WatchUnavailable(f"{abs_dir} is not on a local filesystem")
        wd = self._lib.inotify_add_watch(self._fd, os.fsencode(abs_dir), _MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):
                raise FileNotFoundError(abs_dir)
            raise WatchUnavailable(f"inotify_add_watch({abs_dir}): {os.strerror(err)}")
        self.dirs[wd] = rel_dir

    def usable(self) -> bool:
        """False in a forked child (the queue belongs to the parent) or once closed."""
        return self._fd >= 0 and os.getpid() == self._pid

    def events(self) -> Iterator[tuple[int, int, str]]:
        """Drain the queue: ``(watch descriptor, mask, name)`` per event.

        Raises
        ------
        WatchUnavailable
            If the watcher is not usable in this process.
        """
        if not self.usable():
            raise WatchUnavailable("inotify queue belongs to another process")
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                raw = data[offset : offset + length]
                offset += length
                yield wd, mask, os.fsdecode(raw.rstrip(b"\0"))

    def close(self) -> None:
        """Release the inotify instance (only in the process that created it)."""
        if self._fd >= 0 and os.getpid() == self._pid:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1

    def __del__(self) -> None:
        self.close()
