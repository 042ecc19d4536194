"""The Log on the in-memory file seam: ``strom.open(":memory:")`` and ``fs=MemoryFileSystem()``."""

from __future__ import annotations

import builtins
import os
import threading

import pytest

import strom
from strom import (InvalidConfigError, ManualClock, OffsetOutOfRangeError, TopicExistsError,
                   UnknownTopicOrPartitionError)
from strom.storage import MemoryFileSystem
from strom.storage.log import MEMORY_PATH
from strom.storage.segment import segment_name

T0 = 1_700_000_000_000


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
def mfs():
    return MemoryFileSystem()


def values(p, offset=0):
    """Every value from ``offset`` to the end (a read stops at a segment's end)."""
    p.refresh()
    out = []
    while offset < p.log_end_offset:
        recs = p.read_records(offset)
        out.extend(r[3] for r in recs)
        offset = recs[-1][0] + 1
    return out


# -- ":memory:" ----------------------------------------------------------------------------


def test_memory_log_basics(clock):
    with strom.open(":memory:", clock=clock) as log:
        assert log.path == MEMORY_PATH == "/:memory:"
        assert isinstance(log.fs, MemoryFileSystem)
        assert "/:memory:" in repr(log)
        assert log.topics() == {}
        info = log.create_topic("orders", partitions=3, config={"retention.ms": 60_000})
        assert info.partitions == 3 and info.config == {"retention.ms": 60_000}
        with pytest.raises(TopicExistsError):
            log.create_topic("orders")
        p = log.partition("orders", 1)
        assert p.append([b"a", b"b"], keys=[b"k", None]) == 0
        assert p.append([b"c"], acks=1, compression="zstd") == 2
        recs = p.read_records(0)
        assert [(r[0], r[1], r[2], r[3]) for r in recs] == [
            (0, T0, b"k", b"a"), (1, T0, None, b"b"), (2, T0, None, b"c")]
        assert p.offset_for_timestamp(T0) == (0, T0)
        assert p.verify() == []
        desc = log.describe_topic("orders")
        assert [x.log_end_offset for x in desc.partitions] == [0, 3, 0]
        log.alter_topic("orders", {"retention.ms": 1000})
        assert log.topics()["orders"].config == {"retention.ms": 1000}
        log.delete_topic("orders")
        assert log.topics() == {}
        with pytest.raises(UnknownTopicOrPartitionError):
            log.partition("orders", 0)
    assert log.closed


def test_each_memory_log_is_private():
    a, b = strom.open(":memory:"), strom.open(":memory:")
    try:
        assert a.fs is not b.fs
        a.create_topic("t")
        a.partition("t", 0).append([b"x"])
        assert b.topics() == {}
        b.create_topic("t", 2)
        assert len(a.partition("t", 0).read_records(0)) == 1
        assert b.partition("t", 0).log_end_offset == 0
    finally:
        a.close()
        b.close()


def test_memory_cannot_share_a_given_file_system(mfs):
    with pytest.raises(InvalidConfigError):
        strom.open(":memory:", fs=mfs)
    assert mfs.listdir("/") == []


def test_log_class_takes_memory_too():
    with strom.Log(":memory:") as log:
        assert log.path == "/:memory:" and isinstance(log.fs, MemoryFileSystem)


def test_rolls_retention_and_truncation(clock):
    with strom.open(":memory:", clock=clock) as log:
        log.create_topic("t", config={"segment.bytes": 256, "retention.bytes": 600,
                                      "index.interval.bytes": 0})
        p = log.partition("t", 0)
        for i in range(30):
            assert p.append([b"%03d" % i + b"." * 40]) == i
        pdir = os.path.join(log.path, "t", "0")
        logs = sorted(n for n in log.fs.listdir(pdir) if n.endswith(".log"))
        assert logs == [segment_name(s.base_offset) for s in p.segments]
        assert len(p.segments) > 2
        assert p.log_start_offset > 0  # rolls apply retention.bytes
        assert sum(s.size for s in p.segments[:-1]) <= 600 + 256
        start = p.log_start_offset
        assert values(p, start)[0] == b"%03d" % start + b"." * 40
        with pytest.raises(OffsetOutOfRangeError):
            p.read(start - 1)
        # retention.ms through enforce_retention, with the clock moved on
        log.alter_topic("t", {"retention.bytes": -1, "retention.ms": 1000})
        clock.advance(5000)
        sealed = len(p.segments) - 1
        assert log.enforce_retention() == sealed > 0
        assert p.log_start_offset == p.segments[-1].base_offset
        assert values(p, p.log_start_offset)[-1] == b"029" + b"." * 40
        # truncation
        end = p.log_end_offset
        p.append([b"x"], acks=1)
        p.append([b"y"], acks=1)
        assert p.truncate_to(end + 1) == end + 1
        assert values(p, end) == [b"x"]
        assert p.verify() == []


# -- one MemoryFileSystem, several Logs --------------------------------------------------------


def test_reopen_sees_the_data(mfs, clock):
    with strom.open("/data", fs=mfs, clock=clock) as log:
        log.create_topic("t", 2, config={"segment.bytes": 256})
        for i in range(10):
            log.partition("t", i % 2).append([b"v%d" % i])
    with strom.open("/data", fs=mfs, clock=clock) as log:
        assert log.path == "/data"
        assert log.topics()["t"].partitions == 2
        p = log.partition("t", 0)
        r = p.last_recovery
        assert (r.bytes_scanned, r.bytes_truncated, r.segments_deleted) == (0, 0, 0)
        assert values(p) == [b"v0", b"v2", b"v4", b"v6", b"v8"]
        assert p.append([b"more"]) == 5


def test_relative_paths_start_at_the_trees_root(mfs):
    with strom.open("data", fs=mfs) as log:
        assert log.path == "/data"
        log.create_topic("t")
    assert sorted(mfs.listdir("/data")) == ["t", "~strom.json", "~strom.lock"]


def test_unclosed_log_recovers_like_after_a_kill(mfs, clock):
    """Dropping a Log without close() leaves what a kill -9 leaves: recovery rescans the tail."""
    log = strom.open("/data", fs=mfs, clock=clock)
    log.create_topic("t")
    p = log.partition("t", 0)
    p.append([b"a"], acks=1)
    p.append([b"b"], acks=1)
    seg = p.segments[-1].log_path
    f = mfs.open(seg, write=True)
    f.pwritev([b"\x07" * 30], f.size())  # a torn batch after the valid ones
    f.close()
    del log, p  # never closed
    with strom.open("/data", fs=mfs, clock=clock) as again:
        q = again.partition("t", 0)
        assert q.last_recovery.bytes_truncated == 30
        assert values(q) == [b"a", b"b"]
        assert q.append([b"c"]) == 2


def test_two_logs_on_one_tree_see_each_other(mfs, clock):
    a = strom.open("/data", fs=mfs, clock=clock)
    b = strom.open("/data", fs=mfs, clock=clock)
    try:
        a.create_topic("t", config={"segment.bytes": 256})
        assert "t" in b.topics()
        pa, pb = a.partition("t", 0), b.partition("t", 0)
        assert pa.append([b"a0", b"a1"]) == 0
        assert values(pb) == [b"a0", b"a1"]
        assert pb.append([b"b2"]) == 2  # offsets come from the file, not from b's memory
        assert pa.append([b"a3"]) == 3
        assert values(pa) == values(pb) == [b"a0", b"a1", b"b2", b"a3"]
        for i in range(10):  # rolls by both
            (pa if i % 2 else pb).append([b"x" * 60])
        assert values(pa, 4) == values(pb, 4) == [b"x" * 60] * 10
        assert pb.truncate_to(5) == 5
        assert pa.log_end_offset >= 5 and values(pa, 4) == [b"x" * 60]
        with pytest.raises(TopicExistsError):
            b.create_topic("t")
        b.alter_topic("t", {"retention.ms": 1234})
        assert a.topics()["t"].config["retention.ms"] == 1234
        b.delete_topic("t")
        assert a.topics() == {}
    finally:
        a.close()
        b.close()


def test_two_logs_on_one_tree_exclude_each_other(mfs):
    """A writer waits for the partition lock another Log's writer holds, as with flock."""
    with strom.open("/data", fs=mfs) as a:
        a.create_topic("t")
        holder = mfs.lock(os.path.join(a.path, "t", "0", "lock"))
        with strom.open("/data", fs=mfs) as b:
            holder.acquire()
            done = threading.Event()
            t = threading.Thread(target=lambda: (b.partition("t", 0).append([b"w"]), done.set()))
            t.start()
            assert not done.wait(0.2)  # blocked on the lock
            holder.release()
            assert done.wait(5)
            t.join()
            assert values(a.partition("t", 0)) == [b"w"]
        holder.close()


def test_concurrent_appends_from_two_logs(mfs):
    a, b = strom.open("/data", fs=mfs), strom.open("/data", fs=mfs)
    try:
        a.create_topic("t", config={"segment.bytes": 1024})
        b.topics()

        def write(log, tag):
            p = log.partition("t", 0)
            for i in range(100):
                p.append([b"%s%d" % (tag, i)], acks=1)

        threads = [threading.Thread(target=write, args=(lg, tag))
                   for lg, tag in ((a, b"a"), (b, b"b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        p = a.partition("t", 0)
        vals = values(p)
        assert p.log_end_offset == len(vals) == 200
        assert [v for v in vals if v.startswith(b"a")] == [b"a%d" % i for i in range(100)]
        assert [v for v in vals if v.startswith(b"b")] == [b"b%d" % i for i in range(100)]
        assert p.verify() == []
    finally:
        a.close()
        b.close()


# -- nothing reaches the disk ------------------------------------------------------------------


_WRITERS = ("open", "mkdir", "makedirs", "rename", "replace", "unlink", "remove", "rmdir",
            "ftruncate", "truncate", "pwrite", "pwritev", "write", "fsync", "fdatasync")


def test_memory_log_never_touches_the_disk(tmp_path, monkeypatch, clock):
    monkeypatch.chdir(tmp_path)
    touched = []

    def refuse(name):
        def call(*args, **kwargs):
            touched.append((name, args))
            raise AssertionError(f"os.{name}{args} called by an in-memory log")
        return call

    with monkeypatch.context() as m:
        for name in _WRITERS:
            if hasattr(os, name):
                m.setattr(os, name, refuse(name))
        m.setattr(builtins, "open", refuse("builtins.open"))
        for log in (strom.open(":memory:", clock=clock), strom.open("data", fs=MemoryFileSystem())):
            log.create_topic("t", 2, config={"segment.bytes": 256, "retention.bytes": 512})
            p = log.partition("t", 1)
            for i in range(40):
                p.append([b"v" * 50], acks="all")
            p.flush()
            p.truncate_to(38)
            log.enforce_retention()
            log.delete_topic("t")
            log.close()
    assert touched == []
    assert os.listdir(tmp_path) == []
