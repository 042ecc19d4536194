"""The file seam: the few file-system calls the storage layer makes, in one place.

Everything under ``strom.storage`` reaches the disk through a
:class:`FileSystem`, so tests can substitute one that tears writes, fails
fsyncs or forgets what was not fsync'd, and an in-memory log can substitute
one that keeps bytes in RAM.  The OS implementation is a thin layer over
``os``: unbuffered file descriptors, ``pread``/``pwritev`` at explicit
positions (no ``O_APPEND``: Linux ignores pwrite's position on such fds), and
``flock`` locks on dedicated, never-closed descriptors.

Why ``flock`` and not ``fcntl`` record locks: POSIX record locks are dropped
when the process closes *any* descriptor of the file, a classic way to
corrupt a database (SQLite's "How to corrupt" 2.2).  ``flock`` belongs to the
open file description, is released by the kernel when the holder dies (kill
-9 included), and two descriptors opened separately in one process exclude
each other, so two Log objects on one directory in one process are safe too.

Why ``pread`` and not ``mmap`` for reads: recovery in another process may
truncate a segment, and touching a truncated mapping raises SIGBUS.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import uuid
from typing import Sequence

from .notify import AppendSignal, TailWaiter, os_tail_waiter

__all__ = ["File", "FileLock", "FileSystem", "OS_FS"]

# A single write(2) moves at most this much on Linux; larger calls loop.
_MAX_IO = 0x7FFFF000
_IOV_MAX = 1024


class File:
    """An open file descriptor with positional I/O."""

    __slots__ = ("fd", "path", "__weakref__")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def pread(self, n: int, pos: int) -> bytes:
        """Up to ``n`` bytes at ``pos``; fewer only at end of file."""
        data = os.pread(self.fd, n, pos)
        if len(data) == n or not data:
            return data
        parts = [data]  # a short read before EOF is legal; keep reading
        got = len(data)
        while got < n:
            more = os.pread(self.fd, n - got, pos + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def pwritev(self, buffers: Sequence[bytes], pos: int) -> int:
        """Write all ``buffers`` contiguously at ``pos``; returns bytes written."""
        total = 0
        bufs = [memoryview(b) for b in buffers if len(b)]
        while bufs:
            chunk = bufs[:_IOV_MAX]
            n = os.pwritev(self.fd, chunk, pos + total)
            if n <= 0:
                raise OSError(errno.EIO, "pwritev wrote nothing", self.path)
            total += n
            while bufs and n >= len(bufs[0]):  # drop what was written, keep the rest
                n -= len(bufs[0])
                bufs.pop(0)
            if n:
                bufs[0] = bufs[0][n:]
        return total

    def size(self) -> int:
        """Current file size in bytes."""
        return os.fstat(self.fd).st_size

    def ino(self) -> int:
        """The inode number of the open file (tells a replaced file from the one opened)."""
        return os.fstat(self.fd).st_ino

    def truncate(self, size: int) -> None:
        """Cut (or extend with zeros) the file to ``size`` bytes."""
        os.ftruncate(self.fd, size)

    def fdatasync(self) -> None:
        """Flush the file's data (and size) to stable storage."""
        if hasattr(os, "fdatasync"):
            os.fdatasync(self.fd)
        else:  # macOS: fsync does not flush the drive cache; F_FULLFSYNC does
            fullfsync = getattr(fcntl, "F_FULLFSYNC", None)
            if fullfsync is not None:
                fcntl.fcntl(self.fd, fullfsync)
            else:
                os.fsync(self.fd)

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown; nothing useful to do
            pass


class FileLock:
    """An exclusive ``flock`` on a dedicated descriptor, plus a small hint area.

    The lock file's first bytes may hold a hint that lock holders publish to
    each other (the partition writer stores its active segment's base
    offset there); it is read and written with pread/pwrite, never trusted
    beyond a hint.
    """

    __slots__ = ("fd", "path")

    def __init__(self, path: str, probe: bool = False) -> None:
        self.path = path
        # A probe opens read-only and never creates: closing it raises no
        # IN_CLOSE_WRITE, which watchers take for a holder's death.
        flags = os.O_RDONLY if probe else os.O_RDWR | os.O_CREAT
        self.fd = os.open(path, flags | os.O_CLOEXEC, 0o644)

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False if another holder has it."""
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        while True:
            try:
                fcntl.flock(self.fd, flags)
                return True
            except BlockingIOError:
                return False
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue

    def release(self) -> None:
        """Release the lock."""
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def read_hint(self, n: int) -> bytes:
        """The first ``n`` bytes of the lock file (may be shorter or stale)."""
        return os.pread(self.fd, n, 0)

    def is_current(self) -> bool:
        """True while ``path`` still names the file this lock is on (not unlinked or replaced)."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self.fd)
        return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)

    def write_hint(self, data: bytes, offset: int = 0) -> None:
        """Overwrite the lock file's bytes at ``offset`` (only while holding the lock)."""
        os.pwrite(self.fd, data, offset)

    def close(self) -> None:
        """Close the descriptor, which releases the lock."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FileSystem:
    """The operating system's file system, through ``os``."""

    def open(self, path: str, *, write: bool = False, create: bool = False,
             exclusive: bool = False) -> File:
        """Open ``path`` for reading, or reading and writing with ``write``."""
        flags = os.O_CLOEXEC | (os.O_RDWR if write else os.O_RDONLY)
        if create:
            flags |= os.O_CREAT
        if exclusive:
            flags |= os.O_EXCL
        return File(os.open(path, flags, 0o644), path)

    def lock(self, path: str, probe: bool = False) -> FileLock:
        """A lock object on ``path`` (created if missing), not yet acquired.

        ``probe=True``: only to test whether someone holds the lock of an
        existing file (read-only; FileNotFoundError if it is missing).
        """
        return FileLock(path, probe)

    def tail_waiter(self, signal: AppendSignal) -> TailWaiter:
        """What a reader waits on for appends: ``signal``, and other processes' writes."""
        return os_tail_waiter(signal)

    def abspath(self, path: str) -> str:
        """``path`` made absolute (relative to the current directory) and normalised."""
        return os.path.abspath(path)

    def listdir(self, path: str) -> list[str]:
        """Names in a directory."""
        return os.listdir(path)

    def exists(self, path: str) -> bool:
        """True if ``path`` exists (following links)."""
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        """True if ``path`` is a directory."""
        return os.path.isdir(path)

    def islink(self, path: str) -> bool:
        """True if ``path`` is a symbolic link."""
        return os.path.islink(path)

    def file_size(self, path: str) -> int:
        """Size of the file at ``path``."""
        return os.stat(path).st_size

    def size_and_ino(self, path: str) -> tuple[int, int]:
        """``(size, inode number)`` of the file at ``path``."""
        st = os.stat(path)
        return st.st_size, st.st_ino

    def stamp(self, path: str) -> tuple[int, int]:
        """A value that changes when the file at ``path`` is replaced or written: (inode, mtime)."""
        st = os.stat(path)
        return st.st_ino, st.st_mtime_ns

    def makedirs(self, path: str) -> None:
        """Create a directory and its parents (no error if it exists)."""
        os.makedirs(path, exist_ok=True)

    def mkdir(self, path: str) -> None:
        """Create one directory."""
        os.mkdir(path)

    def rename(self, src: str, dst: str) -> None:
        """Atomically rename; ``dst`` must not be a non-empty directory."""
        os.rename(src, dst)

    def replace(self, src: str, dst: str) -> None:
        """Atomically rename over ``dst``."""
        os.replace(src, dst)

    def unlink(self, path: str, missing_ok: bool = True) -> None:
        """Remove a file."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmtree(self, path: str) -> None:
        """Remove a directory tree (missing is fine)."""
        if os.path.isdir(path):
            shutil.rmtree(path)

    def fsync_dir(self, path: str) -> None:
        """Make the directory's entries (creates, renames, unlinks) durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_atomic(self, path: str, data: bytes, *, durable: bool = True) -> None:
        """Replace ``path`` with ``data`` all at once: temp file, fsync, rename, fsync dir.

        A crash at any instant leaves the old contents or the new, never a mix.
        ``durable=False`` skips both fsyncs (for caches that are rebuilt on loss).
        """
        directory = os.path.dirname(path) or "."
        tmp = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
        f = self.open(tmp, write=True, create=True, exclusive=True)
        try:
            f.pwritev([data], 0)
            if durable:
                f.fdatasync()
        except BaseException:
            f.close()
            self.unlink(tmp)
            raise
        f.close()
        try:
            self.replace(tmp, path)
        except BaseException:
            self.unlink(tmp)
            raise
        if durable:
            self.fsync_dir(directory)


#: The process-wide OS file system.
OS_FS = FileSystem()
