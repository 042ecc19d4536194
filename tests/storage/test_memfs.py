"""The in-memory file seam (src/strom/storage/memfs.py) against the OS one.

A differential hypothesis test runs one sequence of operations on the OS
file system in a temp dir and on a MemoryFileSystem, and requires the same
results and the same exception types and errnos.  Unit tests cover what a
sequence of path operations does not: open files that outlive their name,
stamps, closed files, and lock exclusion.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from strom.storage import MemoryFileSystem
from strom.storage.fs import OS_FS


@pytest.fixture
def mfs():
    return MemoryFileSystem()


# -- differential: the same operations on both file systems ------------------------------

_path = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map("/".join)
_data = st.binary(max_size=12)
_ops = st.one_of(
    st.tuples(st.just("write"), _path, _data, st.integers(0, 20), st.booleans(), st.booleans()),
    st.tuples(st.just("read"), _path, st.integers(0, 40), st.integers(0, 25)),
    st.tuples(st.just("truncate"), _path, st.integers(0, 30)),
    st.tuples(st.just("size"), _path),
    st.tuples(st.just("rename"), _path, _path),
    st.tuples(st.just("replace"), _path, _path),
    st.tuples(st.just("unlink"), _path, st.booleans()),
    st.tuples(st.just("listdir"), _path),
    st.tuples(st.just("mkdir"), _path),
    st.tuples(st.just("makedirs"), _path),
    st.tuples(st.just("rmtree"), _path),
    st.tuples(st.just("exists"), _path),
    st.tuples(st.just("isdir"), _path),
    st.tuples(st.just("fsync_dir"), _path),
    st.tuples(st.just("write_atomic"), _path, _data),
    st.tuples(st.just("keep"), _path),       # open read-only and keep the file
    st.tuples(st.just("read_kept"), st.integers(0, 5)),
)


class _Side:
    """One file system under test, with its root and the files kept open."""

    def __init__(self, fs, root: str) -> None:
        self.fs = fs
        self.root = root
        self.kept: list = []

    def p(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def run(self, op: tuple):
        fs, p = self.fs, self.p
        kind = op[0]
        if kind == "write":
            _, path, data, pos, create, exclusive = op
            f = fs.open(p(path), write=True, create=create, exclusive=exclusive)
            try:
                return f.pwritev([data[:5], memoryview(data[5:])], pos)
            finally:
                f.close()
        if kind == "read":
            _, path, n, pos = op
            f = fs.open(p(path))
            try:
                return f.pread(n, pos), f.size()
            finally:
                f.close()
        if kind == "truncate":
            f = fs.open(p(op[1]), write=True)
            try:
                f.truncate(op[2])
                f.fdatasync()
                return f.size()
            finally:
                f.close()
        if kind == "size":
            if OS_FS.isdir(self.os_twin(op[1])):
                return "dir"  # a directory's st_size is the OS's business
            return fs.file_size(p(op[1]))
        if kind in ("rename", "replace"):
            return getattr(fs, kind)(p(op[1]), p(op[2]))
        if kind == "unlink":
            return fs.unlink(p(op[1]), missing_ok=op[2])
        if kind == "listdir":
            return sorted(fs.listdir(p(op[1])))
        if kind == "write_atomic":
            return fs.write_atomic(p(op[1]), op[2])
        if kind == "keep":
            if OS_FS.isdir(self.os_twin(op[1])):
                return "dir"  # documented difference: Linux opens a directory read-only
            self.kept.append(fs.open(p(op[1])))
            return None
        if kind == "read_kept":
            if not self.kept:
                return None
            f = self.kept[op[1] % len(self.kept)]
            return f.pread(64, 0), f.size()
        return getattr(fs, kind)(p(op[1]))  # mkdir, makedirs, rmtree, exists, isdir, fsync_dir

    os_twin = None  # set to map a relative path to the OS side's path

    def close(self) -> None:
        for f in self.kept:
            f.close()


def _outcome(side: _Side, op: tuple):
    try:
        return "ok", side.run(op)
    except OSError as exc:
        return type(exc), exc.errno


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_ops, max_size=30))
@example(ops=[("mkdir", "a"), ("write", "a/a", b"", 0, True, False), ("rename", "a/a", "a")])
def test_same_results_as_the_os(ops):
    tmp = tempfile.mkdtemp(prefix="strom-memfs-")
    os_side = _Side(OS_FS, tmp)
    mem_side = _Side(MemoryFileSystem(), "/root")
    mem_side.fs.makedirs("/root")
    os_side.os_twin = mem_side.os_twin = os_side.p
    try:
        for i, op in enumerate(ops):
            want = _outcome(os_side, op)
            got = _outcome(mem_side, op)
            assert got == want, f"step {i}: {op}"
        tree_os = sorted((d[len(tmp):], sorted(fs_)) for d, _, fs_ in os.walk(tmp))
        tree_mem = _walk(mem_side.fs, "/root")
        assert tree_mem == tree_os
    finally:
        os_side.close()
        mem_side.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _walk(fs: MemoryFileSystem, root: str, rel: str = "") -> list:
    here = posixpath.join(root, rel.lstrip("/")) if rel else root
    names = fs.listdir(here)
    files = sorted(n for n in names if not fs.isdir(posixpath.join(here, n)))
    out = [(rel, files)]
    for n in sorted(names):
        if fs.isdir(posixpath.join(here, n)):
            out.extend(_walk(fs, root, f"{rel}/{n}"))
    return sorted(out)


# -- errors, one by one ------------------------------------------------------------------


@pytest.mark.parametrize("call, exc_type, code", [
    (lambda fs: fs.open("/missing"), FileNotFoundError, errno.ENOENT),
    (lambda fs: fs.open("/f/x", write=True, create=True), NotADirectoryError, errno.ENOTDIR),
    (lambda fs: fs.open("/d", write=True), IsADirectoryError, errno.EISDIR),
    (lambda fs: fs.open("/f", write=True, create=True, exclusive=True), FileExistsError,
     errno.EEXIST),
    (lambda fs: fs.mkdir("/d"), FileExistsError, errno.EEXIST),
    (lambda fs: fs.mkdir("/x/y"), FileNotFoundError, errno.ENOENT),
    (lambda fs: fs.listdir("/f"), NotADirectoryError, errno.ENOTDIR),
    (lambda fs: fs.unlink("/d"), IsADirectoryError, errno.EISDIR),
    (lambda fs: fs.unlink("/missing", missing_ok=False), FileNotFoundError, errno.ENOENT),
    (lambda fs: fs.rename("/f", "/d"), IsADirectoryError, errno.EISDIR),
    (lambda fs: fs.rename("/d", "/f"), NotADirectoryError, errno.ENOTDIR),
    (lambda fs: fs.rename("/d", "/e"), OSError, errno.ENOTEMPTY),
    (lambda fs: fs.rename("/d", "/d/sub"), OSError, errno.EINVAL),
    (lambda fs: fs.rename("/missing", "/z"), FileNotFoundError, errno.ENOENT),
    (lambda fs: fs.makedirs("/f"), FileExistsError, errno.EEXIST),
    (lambda fs: fs.fsync_dir("/f"), NotADirectoryError, errno.ENOTDIR),
    (lambda fs: fs.file_size("/missing"), FileNotFoundError, errno.ENOENT),
])
def test_errors_match_the_os(tmp_path, call, exc_type, code):
    def build(fs, root):
        fs.makedirs(posixpath.join(root, "d"))
        fs.makedirs(posixpath.join(root, "e"))
        fs.open(posixpath.join(root, "e", "x"), write=True, create=True).close()
        fs.open(posixpath.join(root, "f"), write=True, create=True).close()

    class Rooted:  # the OS file system with "/" meaning tmp_path
        def __getattr__(self, name):
            method = getattr(OS_FS, name)
            return lambda *a, **k: method(*[str(tmp_path) + x for x in a], **k)

    mfs = MemoryFileSystem()
    build(mfs, "/")
    build(OS_FS, str(tmp_path))
    for fs in (Rooted(), mfs):
        with pytest.raises(exc_type) as info:
            call(fs)
        assert info.value.errno == code
    with pytest.raises(OSError) as info:
        mfs.rename("/f", "/d")
    assert (info.value.filename, info.value.filename2) == ("/f", "/d")


# -- files --------------------------------------------------------------------------------


def test_pwritev_past_the_end_fills_with_zeros(mfs):
    f = mfs.open("/f", write=True, create=True)
    assert f.pwritev([b"ab", bytearray(b"c"), memoryview(b"")], 4) == 3
    assert f.pread(100, 0) == b"\0\0\0\0abc"
    assert f.size() == 7
    assert f.pwritev([b"XY"], 1) == 2
    assert f.pread(100, 0) == b"\0XY\0abc"
    f.truncate(2)
    assert f.pread(100, 0) == b"\0X"
    f.truncate(4)
    assert f.pread(100, 0) == b"\0X\0\0"
    assert type(f.pread(1, 0)) is bytes
    assert f.pread(10, 50) == b""


def test_open_file_survives_unlink_and_replace(mfs):
    mfs.makedirs("/d")
    w = mfs.open("/d/f", write=True, create=True)
    w.pwritev([b"old"], 0)
    r = mfs.open("/d/f")
    mfs.unlink("/d/f")
    assert not mfs.exists("/d/f")
    assert r.pread(10, 0) == b"old"
    w.pwritev([b"!"], 3)  # the unlinked inode is still writable through its descriptor
    assert r.pread(10, 0) == b"old!"
    mfs.write_atomic("/d/f", b"new")
    assert r.pread(10, 0) == b"old!"
    assert mfs.open("/d/f").pread(10, 0) == b"new"
    mfs.rmtree("/d")
    assert r.pread(10, 0) == b"old!" and r.size() == 4


def test_read_only_and_closed_files_fail_like_descriptors(mfs):
    mfs.open("/f", write=True, create=True).close()
    r = mfs.open("/f")
    with pytest.raises(OSError) as info:
        r.pwritev([b"x"], 0)
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError) as info:
        r.truncate(0)
    assert info.value.errno == errno.EINVAL
    r.close()
    r.close()
    for call in (lambda: r.pread(1, 0), r.size, r.fdatasync):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF


def test_stamp_changes_on_every_write_and_replace(mfs):
    mfs.write_atomic("/m", b"one")
    seen = {mfs.stamp("/m")}
    f = mfs.open("/m", write=True)
    f.pwritev([b"x"], 0)
    seen.add(mfs.stamp("/m"))
    f.truncate(1)
    seen.add(mfs.stamp("/m"))
    mfs.write_atomic("/m", b"one")  # same bytes, new inode
    seen.add(mfs.stamp("/m"))
    assert len(seen) == 4
    before = mfs.stamp("/m")
    mfs.rename("/m", "/n")
    assert mfs.stamp("/n") == before  # a rename moves the inode, as on disk
    assert mfs.file_size("/n") == 3


def test_paths_are_normalised_and_relative_paths_start_at_the_root(mfs):
    mfs.makedirs("a/b")
    assert mfs.isdir("/a/b") and mfs.isdir("/a//b/") and mfs.isdir("/a/x/../b")
    assert mfs.abspath("a/./b/") == "/a/b"
    assert mfs.listdir("/") == ["a"]
    assert not mfs.islink("/a")
    assert mfs.file_size("/a") == 0


def test_trees_are_private(mfs):
    mfs.makedirs("/x")
    assert not MemoryFileSystem().exists("/x")


# -- locks --------------------------------------------------------------------------------


def test_lock_creates_its_file_and_holds_the_hint(mfs):
    lk = mfs.lock("/lock")
    assert mfs.exists("/lock") and mfs.file_size("/lock") == 0
    assert lk.read_hint(8) == b""
    with lk:
        lk.write_hint(b"12345678")
    other = mfs.lock("/lock")
    assert other.read_hint(4) == b"1234"
    assert mfs.open("/lock").pread(8, 0) == b"12345678"
    lk.close()
    other.close()


def test_two_lock_objects_exclude_each_other(mfs):
    a, b = mfs.lock("/lock"), mfs.lock("/lock")
    assert a.acquire(blocking=False)
    assert a.acquire(blocking=False)  # flock: the holder may take it again
    assert not b.acquire(blocking=False)
    b.release()  # releasing a lock one does not hold does nothing
    assert not b.acquire(blocking=False)
    a.release()
    assert b.acquire(blocking=False)
    assert not a.acquire(blocking=False)
    b.close()  # closing releases
    assert a.acquire(blocking=False)
    a.close()


def test_blocking_acquire_waits_for_release(mfs):
    a, b = mfs.lock("/lock"), mfs.lock("/lock")
    a.acquire()
    got = threading.Event()

    def take():
        b.acquire()
        got.set()

    t = threading.Thread(target=take)
    t.start()
    assert not got.wait(0.2)
    a.release()
    assert got.wait(5)
    t.join()
    assert not a.acquire(blocking=False)
    b.release()
    a.close()
    b.close()


def test_lock_belongs_to_the_inode(mfs):
    """Like flock: a lock on a file since unlinked and re-created excludes nobody."""
    old = mfs.lock("/lock")
    assert old.acquire()
    mfs.unlink("/lock")
    new = mfs.lock("/lock")
    assert new.acquire(blocking=False)
    old.close()
    new.close()


def test_closed_lock_fails_like_a_closed_descriptor(mfs):
    lk = mfs.lock("/lock")
    lk.close()
    lk.close()
    with pytest.raises(OSError) as info:
        lk.acquire()
    assert info.value.errno == errno.EBADF


def test_lock_needs_its_directory(mfs):
    with pytest.raises(FileNotFoundError):
        mfs.lock("/missing/lock")


def test_many_threads_count_under_the_lock(mfs):
    """Read-modify-write of a file under the lock, from threads with a lock object each."""
    f = mfs.open("/n", write=True, create=True)
    f.pwritev([b"0" * 8], 0)

    def work():
        lk, g = mfs.lock("/lock"), mfs.open("/n", write=True)
        for _ in range(200):
            with lk:
                n = int(g.pread(8, 0))
                time.sleep(0)  # invite a switch inside the critical section
                g.pwritev([b"%08d" % (n + 1)], 0)
        lk.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(f.pread(8, 0)) == 800
