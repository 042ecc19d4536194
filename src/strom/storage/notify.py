"""Waking readers when records are appended: in this process, and by other processes.

Theory of operation
-------------------
An :class:`AppendSignal` is a sequence number and a condition.  Every append
bumps the number (and notifies only when someone waits: an append with no
reader waiting costs one integer store).  A reader takes the number *before*
it looks for data (:meth:`AppendSignal.seq`), and waits only while the number
is unchanged, so an append that lands between its look and its wait is never
missed.

Appends by other processes reach the signal through a :class:`TailWatcher`:
one thread per Log that blocks on an inotify descriptor (Linux) watching the
partition directories readers care about.  A write to a segment file there
wakes the thread, which drains the events and bumps the signal.  No sleep
loop: the kernel wakes the thread when the other process's ``pwritev``
returns.  Where inotify is missing (other systems, or the per-user instance
limit reached) :meth:`TailWatcher.poll_interval` tells waiters to look again
every few milliseconds instead: the portable fallback.

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
from typing import Callable

__all__ = ["AppendSignal", "TailWatcher", "Inotify", "FALLBACK_POLL_S"]

log_ = logging.getLogger("strom.notify")

#: How often a waiter looks for appends by other processes when inotify is unavailable.
FALLBACK_POLL_S = 0.005

# inotify(7) constants.
IN_MODIFY = 0x00000002
IN_CREATE = 0x00000100
IN_MOVED_TO = 0x00000080
IN_DELETE = 0x00000200
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

    def add(self, path: str) -> int:
        """Watch the files of directory ``path``; returns the watch descriptor."""
        wd = self._libc.add_watch(self.fd, os.fsencode(path), _MASK)
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


class TailWatcher:
    """A thread that turns file changes by any process into ``signal.fire()``.

    ``watch(path)`` and ``unwatch(path)`` count references per directory;
    the thread starts with the first watch.  ``poll_interval`` is None while
    inotify works, else FALLBACK_POLL_S: waiters then look again that often.
    """

    def __init__(self, signal: AppendSignal, factory: Callable[[], Inotify] = Inotify) -> None:
        self.signal = signal
        self._factory = factory
        self._lock = threading.Lock()
        self._inotify: Inotify | None = None
        self._wds: dict[str, list[int]] = {}  # path -> [wd, references]
        self._thread: threading.Thread | None = None
        self._stop_r = self._stop_w = -1
        self._closed = False
        self.poll_interval: float | None = None

    def _start(self) -> bool:
        """Open inotify and start the thread (lock held); False means fall back to polling."""
        if self._inotify is not None:
            return True
        if self.poll_interval is not None or self._closed:
            return False
        try:
            self._inotify = self._factory()
        except OSError as exc:
            log_.info("no inotify (%s); readers look for other processes' appends every %.0f ms",
                      exc, FALLBACK_POLL_S * 1000)
            self.poll_interval = FALLBACK_POLL_S
            return False
        self._stop_r, self._stop_w = os.pipe()
        os.set_blocking(self._stop_r, False)
        self._thread = threading.Thread(target=self._run, args=(self._inotify, self._stop_r),
                                        name="strom-tail-watcher", daemon=True)
        self._thread.start()
        return True

    def watch(self, path: str) -> None:
        """Wake waiters when files in directory ``path`` change (counted)."""
        with self._lock:
            entry = self._wds.get(path)
            if entry is not None:
                entry[1] += 1
                return
            if not self._start():
                return
            assert self._inotify is not None
            try:
                wd = self._inotify.add(path)
            except OSError as exc:
                if exc.errno in (errno_.ENOENT, errno_.ENOTDIR):
                    return  # gone already: nothing to wait for there
                log_.info("cannot watch %s (%s); falling back to polling", path, exc)
                self.poll_interval = FALLBACK_POLL_S
                return
            self._wds[path] = [wd, 1]

    def unwatch(self, path: str) -> None:
        """Drop one reference to ``path``; the watch ends with the last."""
        with self._lock:
            entry = self._wds.get(path)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del self._wds[path]
                if self._inotify is not None:
                    self._inotify.remove(entry[0])

    def _run(self, inotify: Inotify, stop_r: int) -> None:
        fire = self.signal.fire
        fds = [inotify.fd, stop_r]
        while True:
            try:
                ready, _, _ = select.select(fds, [], [])
            except (OSError, ValueError):  # closed under us
                return
            if stop_r in ready:
                return
            try:
                inotify.drain()
            except OSError:
                return
            fire()

    def close(self) -> None:
        """Stop the thread and release the descriptors (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread, inotify = self._thread, self._inotify
            self._thread = self._inotify = None
            self._wds.clear()
        if thread is not None:
            os.write(self._stop_w, b"x")
            thread.join()
            os.close(self._stop_r)
            os.close(self._stop_w)
        if inotify is not None:
            inotify.close()
