"""Waking readers when records are appended: in this process, and by other processes.

Theory of operation
-------------------
An :class:`AppendSignal` is a sequence number and a condition.  Every append
bumps the number (and notifies only when someone waits: an append with no
reader waiting costs one integer store).  A reader takes the number *before*
it looks for data (:meth:`AppendSignal.seq`), and waits only while the number
is unchanged, so an append that lands between its look and its wait is never
missed.

Appends by other processes are seen through a :class:`TailWaiter`, one per
reader.  On Linux it is an :class:`InotifyWaiter`: its own inotify
descriptor watching the partition directories the reader reads, plus a
wake-up pipe, waited on with ``select``.  A write to a segment there, by any
process (this one too), makes the descriptor readable, so the kernel wakes
the reader directly, with no thread in between and no sleep loop.  Where
inotify is missing (other systems, or the per-user instance limit reached)
a :class:`PollingWaiter` looks again every few milliseconds instead: the
portable fallback.

A Log in memory lives in one process; its signal belongs to its
MemoryFileSystem, so Log objects sharing one tree wake one another's readers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_
import logging
import os
import select
import threading
import weakref

__all__ = ["AppendSignal", "TailWaiter", "InotifyWaiter", "PollingWaiter", "Inotify",
           "os_tail_waiter", "FALLBACK_POLL_S", "IN_CLOSE_WRITE", "IN_DELETE",
           "IN_MOVED_TO"]

log_ = logging.getLogger("strom.notify")

#: How often a waiter looks for appends by other processes when inotify is unavailable.
FALLBACK_POLL_S = 0.005

# inotify(7) constants.
IN_MODIFY = 0x00000002
IN_CREATE = 0x00000100
IN_MOVED_TO = 0x00000080
IN_DELETE = 0x00000200
IN_CLOSE_WRITE = 0x00000008
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_MASK = IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE


class AppendSignal:
    """A counter bumped by every append, with a condition to wait for the next bump.

    ``seq`` is read before looking for data; ``wait(seen, timeout)`` returns
    at once if the counter moved since, else when it moves or the timeout
    passes.  Thread-safe.
    """

    __slots__ = ("seq", "_cond", "_waiters")

    def __init__(self) -> None:
        self.seq = 0
        self._cond = threading.Condition(threading.Lock())
        self._waiters = 0

    def fire(self) -> None:
        """Record an append and wake every waiter (cheap when nobody waits)."""
        # The bump comes before the read of _waiters, and a waiter registers
        # before it re-reads seq under the lock: one of the two always sees
        # the other, so no wake-up is lost.
        self.seq += 1
        if self._waiters:
            with self._cond:
                self._cond.notify_all()

    def wait(self, seen: int, timeout: float | None) -> bool:
        """Wait until ``seq`` differs from ``seen`` or ``timeout`` seconds pass; True if it moved."""
        with self._cond:
            if self.seq != seen:
                return True
            self._waiters += 1
            try:
                self._cond.wait(timeout)
            finally:
                self._waiters -= 1
            return self.seq != seen

    def wake_all(self) -> None:
        """Wake every waiter without recording an append (close(), wakeup())."""
        self.fire()


class _LibC:
    """The three inotify calls, through ctypes (Linux only)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.rm_watch = libc.inotify_rm_watch
        self.rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


_libc: _LibC | None = None
_libc_lock = threading.Lock()


def _load_libc() -> _LibC | None:
    global _libc
    with _libc_lock:
        if _libc is None:
            try:
                _libc = _LibC()
            except (OSError, AttributeError):  # not Linux, or a libc without inotify
                return None
        return _libc


class Inotify:
    """An inotify descriptor: watch directories, learn that something in them changed.

    Raises OSError when the system has no inotify or its limits are reached.
    """

    def __init__(self) -> None:
        libc = _load_libc()
        if libc is None:
            raise OSError(errno_.ENOSYS, "inotify is not available")
        fd = libc.init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self._libc = libc
        self.fd = fd

    def add(self, path: str, mask: int = _MASK) -> int:
        """Watch the files of directory ``path`` for ``mask``'s events; returns the watch descriptor."""
        wd = self._libc.add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch({path!r}): {os.strerror(err)}")
        return wd

    def remove(self, wd: int) -> None:
        """Stop a watch (already gone with its directory: ignored)."""
        self._libc.rm_watch(self.fd, wd)

    def drain(self) -> int:
        """Read and discard every pending event; returns the bytes read."""
        total = 0
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return total
            if not chunk:
                return total
            total += len(chunk)

    def close(self) -> None:
        """Release the descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class TailWaiter:
    """What one reader waits on: appends in this process (the Log's signal) only.

    ``watch``/``unwatch`` name the partitions the reader cares about;
    ``prepare()`` is called before looking for data and its token given to
    ``wait()``, so an append in between is never missed.  ``wake()`` ends a
    wait from another thread.  ``waiting`` counts threads inside ``wait()``.
    This base class serves a Log in memory (one process); the subclasses add
    other processes' appends.
    """

    poll_interval: float | None = None

    def __init__(self, signal: AppendSignal) -> None:
        self.signal = signal
        self.waiting = 0

    def watch(self, path: str, mask: int | None = None) -> None:
        """Also wake for changes to the files of directory ``path`` (counted).

        ``mask``: the inotify events that count (default: writes, creates,
        renames and deletes), where the waiter uses inotify.
        """

    def unwatch(self, path: str) -> None:
        """Drop one ``watch`` of ``path``."""

    def prepare(self) -> int:
        """A token to pass to :meth:`wait`; take it before looking for data."""
        return self.signal.seq

    def wait(self, token: int, timeout: float | None) -> None:
        """Return when something may have been appended since ``prepare``, or after ``timeout`` s."""
        self.waiting += 1
        try:
            if self.poll_interval is not None and (timeout is None or timeout > self.poll_interval):
                timeout = self.poll_interval
            self.signal.wait(token, timeout)
        finally:
            self.waiting -= 1

    def wake(self) -> None:
        """End a ``wait`` now (any thread)."""
        self.signal.wake_all()

    def close(self) -> None:
        """Release what the waiter holds (idempotent)."""


class PollingWaiter(TailWaiter):
    """The portable fallback: in-process appends wake at once, others are looked for every few ms."""

    poll_interval = FALLBACK_POLL_S


class InotifyWaiter(TailWaiter):
    """Waits in ``select`` on its own inotify descriptor (Linux) and a wake-up pipe.

    Any process's write to a segment of a watched partition, this one's
    included, makes the descriptor readable: the waiting thread wakes
    straight from the kernel, with no thread in between.
    """

    def __init__(self, signal: AppendSignal, inotify: Inotify) -> None:
        super().__init__(signal)
        self._inotify = inotify
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wds: dict[str, list[int]] = {}  # path -> [wd, references]
        self._lock = threading.Lock()
        self._closed = False
        # A reader dropped without close() must not leak three descriptors.
        self._finalizer = weakref.finalize(self, _close_all, inotify, self._wake_r, self._wake_w)

    def watch(self, path: str, mask: int | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            entry = self._wds.get(path)
            if entry is not None:
                entry[1] += 1
                return
            try:
                wd = self._inotify.add(path, _MASK if mask is None else mask)
            except OSError as exc:
                if exc.errno in (errno_.ENOENT, errno_.ENOTDIR):
                    return  # gone already: nothing to wait for there
                log_.info("cannot watch %s (%s); looking every %.0f ms instead", path, exc,
                          FALLBACK_POLL_S * 1000)
                self.poll_interval = FALLBACK_POLL_S
                return
            self._wds[path] = [wd, 1]

    def unwatch(self, path: str) -> None:
        with self._lock:
            entry = self._wds.get(path)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del self._wds[path]
                if not self._closed:
                    self._inotify.remove(entry[0])

    def prepare(self) -> int:
        with self._lock:
            if not self._closed:
                self._inotify.drain()  # events before this point are seen by the look that follows
        return self.signal.seq

    def wait(self, token: int, timeout: float | None) -> None:
        if self.signal.seq != token:
            return  # appended in this process meanwhile
        if self.poll_interval is not None and (timeout is None or timeout > self.poll_interval):
            timeout = self.poll_interval
        with self._lock:
            if self._closed:
                return
            self.waiting += 1
            fds = [self._inotify.fd, self._wake_r]
        try:
            select.select(fds, [], [], timeout)
        except (OSError, ValueError):
            pass  # closed by another thread: the caller looks again and stops
        finally:
            with self._lock:
                self.waiting -= 1
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except (BlockingIOError, OSError):
                    pass
                if self._closed and not self.waiting:
                    self._release()

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake is pending) or closed
        self.signal.wake_all()

    def _release(self) -> None:
        """Close the descriptors (lock held, nobody waiting)."""
        self._finalizer()  # closes once

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wds.clear()
            if self.waiting:
                os.write(self._wake_w, b"x")  # the waiter releases on its way out
            else:
                self._release()


def _close_all(inotify: Inotify, *fds: int) -> None:
    inotify.close()
    for fd in fds:
        os.close(fd)


def os_tail_waiter(signal: AppendSignal) -> TailWaiter:
    """An InotifyWaiter where inotify works, else the polling fallback."""
    try:
        return InotifyWaiter(signal, Inotify())
    except OSError as exc:
        log_.info("no inotify (%s); readers look for other processes' appends every %.0f ms",
                  exc, FALLBACK_POLL_S * 1000)
        return PollingWaiter(signal)
