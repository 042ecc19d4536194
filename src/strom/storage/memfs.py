"""The file seam in memory: a tree of directories and files that lives in RAM.

:class:`MemoryFileSystem` implements :class:`~strom.storage.fs.FileSystem`
for ``strom.open(":memory:")`` (tests, notebooks) and for tests that want
several Log objects on one tree without touching the disk.

What is the same as the OS.  Every call has POSIX's semantics as Linux shows
them, and fails with the same ``OSError`` subclass and ``errno``, with
``filename`` (and ``filename2`` for renames) set to the paths as given:
FileNotFoundError for a missing path or parent, NotADirectoryError when a
file stands where a directory must, IsADirectoryError for writing, unlinking
or renaming a file onto a directory, FileExistsError for ``mkdir`` and
exclusive creation, ``OSError(ENOTEMPTY)`` for renaming onto a non-empty
directory, ``OSError(EINVAL)`` for renaming a directory into itself,
``OSError(EBADF)`` for using a closed file or writing through a read-only
one.  A file is an inode: an open :class:`MemoryFile` keeps its bytes after
the name is unlinked, renamed or replaced, exactly as a descriptor does, and
``rename``/``replace`` swap the inode a name points to atomically.  A
:class:`MemoryFileLock` behaves like ``flock`` on its own descriptor: it
belongs to the inode of the lock file, two lock objects on one file exclude
each other even in one thread, re-acquiring by the holder succeeds, releasing
a lock not held does nothing, and closing releases.  ``stamp`` is an inode
number and a write counter, so it changes whenever the file is replaced or
written (more reliably than an mtime, which can repeat within a clock tick).

What differs.  Nothing is durable and nothing outlives the object: the tree
dies with the MemoryFileSystem (so with the process, and a "kill -9" of the
process loses everything, not only what was not fsync'd); ``fdatasync`` and
``fsync_dir`` only check their argument.  One process only: another process
cannot see the tree.  Paths are normalised lexically with ``posixpath``
(``a/../b`` is ``b``, a trailing slash is ignored) and relative paths start
at the tree's root, ``/``; there are no links (``islink`` is always False),
permissions, or times.  Opening a directory fails with IsADirectoryError even
for reading (Linux would give a descriptor that fails at the first read), and
``file_size`` of a directory is 0.

Thread safety: one re-entrant mutex guards the tree and every file's bytes,
so each call is atomic, as the corresponding system call is.  A blocked
``acquire`` waits on the lock file's own condition, never holding the mutex.
"""

from __future__ import annotations

import errno
import itertools
import os
import posixpath
import threading
from typing import Sequence

from .fs import File, FileLock, FileSystem
from .notify import AppendSignal, TailWaiter

__all__ = ["MemoryFileSystem", "MemoryFile", "MemoryFileLock"]


def _error(code: int, path: str, path2: str | None = None) -> OSError:
    """The OSError (subclass chosen by ``code``) the OS raises for ``path``."""
    if path2 is None:
        return OSError(code, os.strerror(code), path)
    return OSError(code, os.strerror(code), path, None, path2)


class _Node:
    """An inode: a number, and a counter bumped by every change of its contents."""

    __slots__ = ("ino", "version")

    def __init__(self, ino: int) -> None:
        self.ino = ino
        self.version = 0


class _Dir(_Node):
    __slots__ = ("entries",)

    def __init__(self, ino: int) -> None:
        super().__init__(ino)
        self.entries: dict[str, _Node] = {}


class _File(_Node):
    __slots__ = ("data", "lock_state")

    def __init__(self, ino: int) -> None:
        super().__init__(ino)
        self.data = bytearray()
        self.lock_state: _LockState | None = None  # created by the first lock object


class _LockState:
    """The flock state of one inode: which lock object holds it."""

    __slots__ = ("cond", "holder")

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.holder: MemoryFileLock | None = None


class MemoryFile(File):
    """An open file of a :class:`MemoryFileSystem`: :class:`~strom.storage.fs.File`'s methods.

    Holds the inode, not the name: after the name is unlinked or replaced
    the file still reads and writes the bytes it opened.  ``fd`` is always
    -1 (there is no descriptor).
    """

    __slots__ = ("_fs", "_node", "_writable")

    def __init__(self, fs: MemoryFileSystem, node: _File, path: str, writable: bool) -> None:
        super().__init__(-1, path)
        self._fs = fs
        self._node: _File | None = node
        self._writable = writable

    def _open_node(self) -> _File:
        node = self._node
        if node is None:
            raise _error(errno.EBADF, self.path)
        return node

    def pread(self, n: int, pos: int) -> bytes:
        """Up to ``n`` bytes at ``pos``; fewer only at end of file."""
        with self._fs._mutex:
            node = self._open_node()
            if n < 0 or pos < 0:
                raise _error(errno.EINVAL, self.path)
            with memoryview(node.data) as view:
                return bytes(view[pos:pos + n])  # one copy; the slice view dies here

    def pwritev(self, buffers: Sequence[bytes], pos: int) -> int:
        """Write all ``buffers`` contiguously at ``pos`` (zero-filling a gap); returns bytes written."""
        with self._fs._mutex:
            node = self._open_node()
            if not self._writable:
                raise _error(errno.EBADF, self.path)
            if pos < 0:
                raise _error(errno.EINVAL, self.path)
            data = node.data
            total = 0
            for buf in buffers:
                view = memoryview(buf).cast("B")
                n = len(view)
                if not n:
                    continue
                at = pos + total
                if at > len(data):
                    data.extend(bytes(at - len(data)))  # a hole reads as zeros, as on disk
                data[at:at + n] = view
                total += n
            if total:
                node.version += 1
            return total

    def size(self) -> int:
        """Current file size in bytes."""
        with self._fs._mutex:
            return len(self._open_node().data)

    def ino(self) -> int:
        """The inode number of the open file."""
        with self._fs._mutex:
            return self._open_node().ino

    def truncate(self, size: int) -> None:
        """Cut (or extend with zeros) the file to ``size`` bytes."""
        with self._fs._mutex:
            node = self._open_node()
            if not self._writable or size < 0:
                raise _error(errno.EINVAL, self.path)  # Linux's ftruncate on a read-only fd
            data = node.data
            if size < len(data):
                del data[size:]
            else:
                data.extend(bytes(size - len(data)))
            node.version += 1

    def fdatasync(self) -> None:
        """Nothing to flush (memory is all there is); fails only on a closed file."""
        with self._fs._mutex:
            self._open_node()

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._node = None


class MemoryFileLock(FileLock):
    """A lock on a file of a :class:`MemoryFileSystem`, with ``flock``'s semantics.

    The lock belongs to the lock file's inode, as ``flock`` belongs to its
    open file description: two MemoryFileLock objects on one file exclude
    each other (in one thread or many), whichever Log made them; a lock on a
    file that was since unlinked and re-created excludes nobody using the
    new file.  The file's first bytes are the hint area of
    :meth:`read_hint` and :meth:`write_hint`.
    """

    __slots__ = ("_fs", "_node")

    def __init__(self, fs: MemoryFileSystem, path: str, probe: bool = False) -> None:
        self.path = path
        self.fd = -1
        self._fs = fs
        node = fs._open_node(path, write=not probe, create=not probe, exclusive=False)
        with fs._mutex:
            if node.lock_state is None:
                node.lock_state = _LockState()
        self._node: _File | None = node

    def _open_node(self) -> _File:
        node = self._node
        if node is None:
            raise _error(errno.EBADF, self.path)
        return node

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False if another holder has it."""
        state = self._open_node().lock_state
        assert state is not None
        with state.cond:
            while state.holder is not None and state.holder is not self:
                if not blocking:
                    return False
                state.cond.wait()
            state.holder = self
            return True

    def is_current(self) -> bool:
        """True while ``path`` still names the file this lock is on (not unlinked or replaced)."""
        try:
            return self._fs._lookup(self.path) is self._open_node()
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Release the lock (nothing happens if this object does not hold it)."""
        state = self._open_node().lock_state
        assert state is not None
        with state.cond:
            if state.holder is self:
                state.holder = None
                state.cond.notify()

    def read_hint(self, n: int) -> bytes:
        """The first ``n`` bytes of the lock file (may be shorter or stale)."""
        node = self._open_node()
        with self._fs._mutex:
            return bytes(node.data[:n])

    def write_hint(self, data: bytes, offset: int = 0) -> None:
        """Overwrite the lock file's bytes at ``offset`` (only while holding the lock)."""
        node = self._open_node()
        with self._fs._mutex:
            if len(node.data) < offset:
                node.data.extend(bytes(offset - len(node.data)))
            node.data[offset:offset + len(data)] = data
            node.version += 1

    def close(self) -> None:
        """Forget the file, which releases the lock (idempotent)."""
        node, self._node = self._node, None
        if node is None:
            return
        state = node.lock_state
        assert state is not None
        with state.cond:
            if state.holder is self:
                state.holder = None
                state.cond.notify()

    def __enter__(self) -> MemoryFileLock:
        self.acquire()
        return self


class MemoryFileSystem(FileSystem):
    """A file system held in memory: the OS one's semantics, none of its durability.

    Each instance is its own tree, rooted at ``/`` and empty at first; share
    an instance to let several Log objects in one process see one another.
    Thread-safe.  ``write_atomic`` is FileSystem's (temp file, replace).
    """

    def __init__(self) -> None:
        self._mutex = threading.RLock()
        #: Appends through any Log on this tree wake readers of every Log on it.
        self.append_signal = AppendSignal()
        self._inos = itertools.count(1)
        self._root = _Dir(next(self._inos))

    # -- paths -----------------------------------------------------------------

    @staticmethod
    def _parts(path: str | os.PathLike[str]) -> list[str]:
        norm = posixpath.normpath(posixpath.join("/", os.fspath(path)))
        return [p for p in norm.split("/") if p]

    def _walk(self, parts: list[str], path: str) -> _Dir:
        """The directory holding ``parts`` (all but the last component)."""
        node: _Node = self._root
        for name in parts:
            if not isinstance(node, _Dir):
                raise _error(errno.ENOTDIR, path)
            child = node.entries.get(name)
            if child is None:
                raise _error(errno.ENOENT, path)
            node = child
        if not isinstance(node, _Dir):
            raise _error(errno.ENOTDIR, path)
        return node

    def _lookup(self, path: str) -> _Node:
        """The node at ``path`` (FileNotFoundError, NotADirectoryError)."""
        parts = self._parts(path)
        if not parts:
            return self._root
        node = self._walk(parts[:-1], path).entries.get(parts[-1])
        if node is None:
            raise _error(errno.ENOENT, path)
        return node

    def _parent(self, path: str) -> tuple[_Dir, str]:
        """The directory that holds (or would hold) ``path``, and the name in it."""
        parts = self._parts(path)
        if not parts:
            raise _error(errno.EBUSY, path)  # the root has no parent entry
        return self._walk(parts[:-1], path), parts[-1]

    def _open_node(self, path: str, *, write: bool, create: bool, exclusive: bool) -> _File:
        with self._mutex:
            parts = self._parts(path)
            if not parts:
                raise _error(errno.EISDIR, path)
            parent = self._walk(parts[:-1], path)
            node = parent.entries.get(parts[-1])
            if node is None:
                if not create:
                    raise _error(errno.ENOENT, path)
                node = parent.entries[parts[-1]] = _File(next(self._inos))
                parent.version += 1
            elif create and exclusive:
                raise _error(errno.EEXIST, path)
            if isinstance(node, _Dir):
                raise _error(errno.EISDIR, path)
            assert isinstance(node, _File)
            return node

    # -- the FileSystem interface ----------------------------------------------

    def abspath(self, path: str) -> str:
        """``path`` normalised, relative paths starting at the tree's root (no current directory)."""
        return posixpath.normpath(posixpath.join("/", os.fspath(path)))

    def open(self, path: str, *, write: bool = False, create: bool = False,
             exclusive: bool = False) -> MemoryFile:
        """Open ``path`` for reading, or reading and writing with ``write``."""
        node = self._open_node(path, write=write, create=create, exclusive=exclusive)
        return MemoryFile(self, node, path, write)

    def tail_waiter(self, signal: AppendSignal) -> TailWaiter:
        """The signal alone: a memory tree lives in one process, whose appends fire it."""
        return TailWaiter(signal)

    def lock(self, path: str, probe: bool = False) -> MemoryFileLock:
        """A lock object on ``path`` (created if missing, unless ``probe``), not yet acquired."""
        return MemoryFileLock(self, path, probe)

    def listdir(self, path: str) -> list[str]:
        """Names in a directory (in creation order; the OS promises no order)."""
        with self._mutex:
            node = self._lookup(path)
            if not isinstance(node, _Dir):
                raise _error(errno.ENOTDIR, path)
            return list(node.entries)

    def exists(self, path: str) -> bool:
        """True if ``path`` exists."""
        try:
            with self._mutex:
                self._lookup(path)
            return True
        except OSError:
            return False

    def isdir(self, path: str) -> bool:
        """True if ``path`` is a directory."""
        try:
            with self._mutex:
                return isinstance(self._lookup(path), _Dir)
        except OSError:
            return False

    def islink(self, path: str) -> bool:
        """Always False: a memory tree has no links."""
        return False

    def file_size(self, path: str) -> int:
        """Size of the file at ``path`` (0 for a directory)."""
        with self._mutex:
            node = self._lookup(path)
            return len(node.data) if isinstance(node, _File) else 0

    def size_and_ino(self, path: str) -> tuple[int, int]:
        """``(size, inode number)`` of the file at ``path``."""
        with self._mutex:
            node = self._lookup(path)
            return (len(node.data) if isinstance(node, _File) else 0), node.ino

    def stamp(self, path: str) -> tuple[int, int]:
        """(inode number, write count): changes whenever the file is replaced or written."""
        with self._mutex:
            node = self._lookup(path)
            return node.ino, node.version

    def makedirs(self, path: str) -> None:
        """Create a directory and its parents (no error if it exists)."""
        with self._mutex:
            node: _Dir = self._root
            parts = self._parts(path)
            for i, name in enumerate(parts):
                child = node.entries.get(name)
                if child is None:
                    child = node.entries[name] = _Dir(next(self._inos))
                    node.version += 1
                elif not isinstance(child, _Dir):
                    # os.makedirs: the last component exists as a file; else mkdir under a file
                    raise _error(errno.EEXIST if i == len(parts) - 1 else errno.ENOTDIR, path)
                node = child

    def mkdir(self, path: str) -> None:
        """Create one directory."""
        with self._mutex:
            if not self._parts(path):
                raise _error(errno.EEXIST, path)
            parent, name = self._parent(path)
            if name in parent.entries:
                raise _error(errno.EEXIST, path)
            parent.entries[name] = _Dir(next(self._inos))
            parent.version += 1

    def rename(self, src: str, dst: str) -> None:
        """Atomically rename; ``dst`` must not be a non-empty directory (POSIX rename)."""
        with self._mutex:
            src_parts, dst_parts = self._parts(src), self._parts(dst)
            try:  # both parents first, then the source entry: Linux's order of errors
                src_dir, src_name = self._parent(src)
                dst_dir, dst_name = self._parent(dst)
            except OSError as exc:
                raise _error(exc.errno, src, dst) from None
            node = src_dir.entries.get(src_name)
            if node is None:
                raise _error(errno.ENOENT, src, dst)
            target = dst_dir.entries.get(dst_name)
            if target is node:
                return  # the same file: rename(2) does nothing
            if isinstance(node, _Dir) and dst_parts[:len(src_parts)] == src_parts:
                raise _error(errno.EINVAL, src, dst)  # a directory into its own subtree
            if src_parts[:len(dst_parts)] == dst_parts:
                raise _error(errno.ENOTEMPTY, src, dst)  # onto its own ancestor (Linux's trap)
            if target is not None:
                if isinstance(node, _Dir) and not isinstance(target, _Dir):
                    raise _error(errno.ENOTDIR, src, dst)
                if not isinstance(node, _Dir) and isinstance(target, _Dir):
                    raise _error(errno.EISDIR, src, dst)
                if isinstance(target, _Dir) and target.entries:
                    raise _error(errno.ENOTEMPTY, src, dst)
            del src_dir.entries[src_name]
            dst_dir.entries[dst_name] = node
            src_dir.version += 1
            dst_dir.version += 1

    def replace(self, src: str, dst: str) -> None:
        """Atomically rename over ``dst`` (on POSIX the same as :meth:`rename`)."""
        self.rename(src, dst)

    def unlink(self, path: str, missing_ok: bool = True) -> None:
        """Remove a file (open files keep its bytes)."""
        with self._mutex:
            try:
                parent, name = self._parent(path)
                node = parent.entries.get(name)
                if node is None:
                    raise _error(errno.ENOENT, path)
            except FileNotFoundError:
                if not missing_ok:
                    raise
                return
            if isinstance(node, _Dir):
                raise _error(errno.EISDIR, path)  # Linux's unlink(2) of a directory
            del parent.entries[name]
            parent.version += 1

    def rmtree(self, path: str) -> None:
        """Remove a directory tree (missing, or not a directory, is fine)."""
        with self._mutex:
            if not self.isdir(path):
                return
            parent, name = self._parent(path)
            del parent.entries[name]
            parent.version += 1

    def fsync_dir(self, path: str) -> None:
        """Nothing to make durable; fails as the OS would if ``path`` is no directory."""
        with self._mutex:
            if not isinstance(self._lookup(path), _Dir):
                raise _error(errno.ENOTDIR, path)

    def __repr__(self) -> str:
        return f"<MemoryFileSystem at {id(self):#x}>"
