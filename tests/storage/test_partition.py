"""A partition: appends, reads, rolls, indexes, retention, recovery (src/strom/storage/partition.py)."""

from __future__ import annotations

import collections
import os
import re
import shutil
import struct

import pytest
import xxhash

import strom
import strom.storage.partition as partition_mod
from strom import (CorruptRecordError, InvalidRecordError, LogClosedError, ManualClock,
                   OffsetOutOfRangeError, PartitionFailedError, RecordTooLargeError,
                   RecoveryResult, StromError)
from strom.codec.batch import COMPRESSION_ZSTD, HEADER_SIZE, encode_batch
from strom.storage.fs import File, FileSystem
from strom.storage.index import OFFSET_ENTRY, TIME_ENTRY, TRAILER, OffsetIndex, TimeIndex
from strom.storage.segment import Segment, segment_name

T0 = 1_700_000_000_000
SEGMENT_NAME = re.compile(r"^\d{20}\.(log|index|timeindex)$")


# -- fixtures and helpers -------------------------------------------------------------------------


class Env:
    """A data directory with one topic "t", reopened at will."""

    def __init__(self, path: str, clock: ManualClock, fs: FileSystem | None = None) -> None:
        self.path = path
        self.clock = clock
        self.fs = fs
        self.logs: list[strom.Log] = []
        self.log = self._open()

    def _open(self, **kw) -> strom.Log:
        log = strom.open(self.path, clock=self.clock, fs=self.fs, **kw)
        self.logs.append(log)
        return log

    def topic(self, config=None, partitions=1) -> strom.Partition:
        self.log.create_topic("t", partitions, config=config or {})
        return self.p

    @property
    def p(self) -> strom.Partition:
        return self.log.partition("t", 0)

    @property
    def pdir(self) -> str:
        return os.path.join(self.path, "t", "0")

    def seg_path(self, base: int, suffix: str = ".log") -> str:
        return os.path.join(self.pdir, segment_name(base, suffix))

    def reopen(self, **kw) -> strom.Partition:
        self.log.close()
        self.log = self._open(**kw)
        return self.p

    def crash_copy(self, dst: str) -> Env:
        """The directory as a kill -9 would leave it now (the page cache survives); opened."""
        shutil.copytree(self.path, dst)
        return Env(dst, self.clock)

    def close(self) -> None:
        for log in self.logs:
            log.close()


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
def env(tmp_path, clock):
    e = Env(str(tmp_path / "data"), clock)
    yield e
    e.close()


def read_all(p: strom.Partition, offset: int, max_bytes: int = 1 << 20) -> list[tuple]:
    """Every record from ``offset`` to the end, paging with ``max_bytes`` reads."""
    out: list[tuple] = []
    end = p.log_end_offset
    while offset < end:
        batches = p.read(offset, max_bytes)
        assert batches, f"no batch at {offset} below the end {end}"
        assert batches[0].base_offset <= offset <= batches[0].last_offset
        for a, b in zip(batches, batches[1:]):
            assert b.base_offset == a.next_offset
        for b in batches:
            out.extend(b.records(offset))
        offset = batches[-1].next_offset
    assert p.read(offset, max_bytes) == []
    return out


def norm(rec: tuple) -> tuple:
    """A record with its headers as a list of (name, value) tuples (or None)."""
    off, ts, key, value, headers = rec
    return off, ts, key, value, [tuple(h) for h in headers] if headers else None


def all_batches(p: strom.Partition) -> list:
    out = []
    offset = p.log_start_offset
    while offset < p.log_end_offset:
        batches = p.read(offset, 1 << 20)
        out.extend(batches)
        offset = batches[-1].next_offset
    return out


def fill(p: strom.Partition, batches: int, per_batch: int = 3, size: int = 100, *,
         ts_step: int = 10, acks="all") -> list[tuple]:
    """Append ``batches`` batches with distinct values and increasing timestamps; returns the model."""
    model = []
    for _ in range(batches):
        base = p.log_end_offset
        values = [b"%08d" % (base + i) + b"v" * (size - 8) for i in range(per_batch)]
        keys = [b"k%d" % (base + i) for i in range(per_batch)]
        ts = [T0 + ts_step * (base + i) for i in range(per_batch)]
        assert p.append(values, keys=keys, timestamps=ts, acks=acks) == base
        model.extend((base + i, ts[i], keys[i], values[i], None) for i in range(per_batch))
    return model


def segment_batches(path: str) -> list[tuple[int, int, int]]:
    """(position, base_offset, size) of every batch in a .log file, from the raw headers."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos + HEADER_SIZE <= len(data):
        size = struct.unpack_from("<I", data, pos + 8)[0]
        base = struct.unpack_from("<q", data, pos + 16)[0]
        out.append((pos, base, size))
        pos += size
    return out


def expected_index(batches: list[tuple[int, int, int]], interval: int) -> list[tuple[int, int]]:
    """Kafka's rule: the first batch, then one whenever ``interval`` bytes passed since the last."""
    out, since = [], interval
    for pos, base, size in batches:
        if since >= interval:
            out.append((base, pos))
            since = 0
        since += size
    return out


def assert_index_valid(env: Env, base: int, model: list[tuple]) -> None:
    """Both index files of segment ``base`` exist and every entry tells the truth."""
    log_path = env.seg_path(base)
    batches = segment_batches(log_path)
    starts = {pos: b for pos, b, _ in batches}
    blob = open(env.seg_path(base, ".index"), "rb").read()
    idx = OffsetIndex.from_bytes(base, blob, os.path.getsize(log_path))
    assert len(idx) >= 1
    for off, pos in zip(idx.offsets, idx.positions):
        assert starts.get(pos) == off, (off, pos)
    # a time entry (ts, o): ts is the largest timestamp up to and including o's batch
    bases = [b for _, b, _ in batches]
    data = open(log_path, "rb").read()
    ends = [b + struct.unpack_from("<I", data, pos + 24)[0] + 1 for pos, b, _ in batches]
    by_offset = {r[0]: r[1] for r in model}
    tidx = TimeIndex.from_bytes(base, open(env.seg_path(base, ".timeindex"), "rb").read())
    assert len(tidx) >= 1
    for ts, off in zip(tidx.timestamps, tidx.offsets):
        k = max(i for i, b in enumerate(bases) if b <= off)
        assert ts == max(by_offset[o] for o in range(base, ends[k])), (ts, off)


# -- append and read ------------------------------------------------------------------------------


def test_round_trip_with_headers_and_tombstones(env):
    p = env.topic()
    values = [b"v0", None, b"", bytearray(b"ba"), memoryview(b"mv"), b"\x00" * 300]
    keys = [None, b"k1", b"", None, b"k4", bytearray(b"k5")]
    ts = [T0, T0 - 5, T0 + 7, T0, 0, 2**62]
    headers = [[("a", b"1"), ("b", None)], None, [], [("", b"")], [("ü", b"\xff")], None]
    assert p.append(values, keys=keys, timestamps=ts, headers=headers, acks=1) == 0
    assert p.log_end_offset == 6
    got = [norm(r) for r in p.read_records(0)]
    assert got == [
        (0, T0, None, b"v0", [("a", b"1"), ("b", None)]),
        (1, T0 - 5, b"k1", None, None),
        (2, T0 + 7, b"", b"", None),
        (3, T0, None, b"ba", [("", b"")]),
        (4, 0, b"k4", b"mv", [("ü", b"\xff")]),
        (5, 2**62, b"k5", b"\x00" * 300, None),
    ]
    for rec in got:
        assert rec[3] is None or type(rec[3]) is bytes
    assert got == [norm(r) for r in env.reopen().read_records(0)]


def test_all_none_keys_and_values(env):
    p = env.topic()
    p.append([None, None], keys=[None, None], acks=1)
    assert [r[2:4] for r in p.read_records(0)] == [(None, None), (None, None)]


def test_default_timestamp_is_the_clock(env, clock):
    p = env.topic()
    p.append([b"a", b"b"], acks=1)
    clock.advance(123)
    p.append([b"c"], timestamps=None, acks=1)
    p.append([b"d", b"e"], timestamps=T0 + 5, acks=1)
    assert [r[1] for r in p.read_records(0)] == [T0, T0, T0 + 123, T0 + 5, T0 + 5]


def test_log_append_time(env, clock):
    p = env.topic({"message.timestamp.type": "LogAppendTime"})
    clock.advance(50)
    p.append([b"a", b"b"], timestamps=[1, 2], acks=1)
    (batch,) = p.read(0)
    assert batch.log_append_time
    assert [r[1] for r in batch.records()] == [T0 + 50, T0 + 50]


def test_base_offsets_returned(env):
    p = env.topic()
    expected = 0
    for n in [1, 5, 2, 10, 1]:
        assert p.append([b"x"] * n, acks=1) == expected
        expected += n
        assert p.log_end_offset == expected
    assert p.log_start_offset == 0
    assert [r[0] for r in p.read_records(0)] == list(range(expected))


@pytest.mark.parametrize("acks", [0, 1, "all", -1])
def test_valid_acks(env, acks):
    p = env.topic()
    assert p.append([b"x"], acks=acks) == 0
    assert p.read_records(0)[0][3] == b"x"


def test_compression(env):
    p = env.topic()
    values = [b"abc" * 200] * 10
    p.append(values, acks=1, compression="zstd")
    p.append([b"plain"], acks=1, compression=None)
    p.append([b"none"], acks=1, compression="none")
    batches = p.read(0)
    assert batches[0].compression == COMPRESSION_ZSTD
    assert batches[0].size < 600
    assert batches[1].compression == 0 and batches[2].compression == 0
    assert [r[3] for r in p.read_records(0)] == values + [b"plain", b"none"]


def test_topic_compression_type_wins(env):
    env.log.create_topic("z", config={"compression.type": "zstd"})
    env.log.create_topic("u", config={"compression.type": "uncompressed"})
    z, u = env.log.partition("z", 0), env.log.partition("u", 0)
    z.append([b"abc" * 200], acks=1)
    u.append([b"abc" * 200], acks=1, compression="zstd")
    assert z.read(0)[0].compression == COMPRESSION_ZSTD
    assert u.read(0)[0].compression == 0
    assert z.read_records(0)[0][3] == u.read_records(0)[0][3] == b"abc" * 200


def test_read_at_end_and_out_of_range(env):
    p = env.topic()
    assert p.read(0) == [] and p.read_records(0) == []
    p.append([b"a", b"b", b"c"], acks=1)
    assert p.read(3) == []
    for bad in (4, 100, -1):
        with pytest.raises(OffsetOutOfRangeError) as info:
            p.read(bad)
        assert info.value.offset == bad
        assert (info.value.log_start_offset, info.value.log_end_offset) == (0, 3)
        with pytest.raises(OffsetOutOfRangeError):
            p.read_records(bad)


def test_read_first_batch_may_start_before_offset(env):
    p = env.topic()
    p.append([b"a", b"b", b"c"], acks=1)
    p.append([b"d"], acks=1)
    batches = p.read(1)
    assert batches[0].base_offset == 0
    assert [r[0] for r in p.read_records(1)] == [1, 2, 3]
    assert [r[3] for r in p.read_records(1, max_records=2)] == [b"b", b"c"]
    assert p.read_records(2, max_records=0) == []


def test_read_max_bytes_pages(env):
    p = env.topic()
    model = fill(p, 10, per_batch=2, size=100)
    batch_size = p.read(0)[0].size
    assert len(p.read(0, batch_size)) == 1
    assert len(p.read(0, 3 * batch_size)) == 3
    assert len(p.read(0, 1 << 20)) == 10
    assert read_all(p, 0, batch_size) == model
    assert read_all(p, 7, batch_size + 1) == model[7:]


@pytest.mark.parametrize("max_bytes", [0, 1, 10, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 1])
def test_read_smaller_than_a_header(env, max_bytes):
    # "at least one batch is returned when any record at or after offset exists, even if it
    # is larger than max_bytes" -- also when max_bytes is smaller than a batch header
    p = env.topic({"index.interval.bytes": 100})
    model = fill(p, 6, per_batch=2, size=100)
    for offset in range(0, 12):
        assert read_all(p, offset, max_bytes) == model[offset:]


@pytest.mark.parametrize("bad", ["1", 1.0, None, b"0"])
def test_read_offset_type(env, bad):
    p = env.topic()
    p.append([b"a"], acks=1)
    with pytest.raises(InvalidRecordError):
        p.read(bad)


@pytest.mark.parametrize("call", [
    lambda p, bad: p.truncate_to(bad),
    lambda p, bad: p.offset_for_timestamp(bad),
    lambda p, bad: p.read_records(bad),
], ids=["truncate_to", "offset_for_timestamp", "read_records"])
@pytest.mark.parametrize("bad", ["1", 1.5, None])
def test_offset_argument_types(env, call, bad):
    # argument misuse raises from strom's one root (and TypeError), never half-done work
    p = env.topic()
    p.append([b"a", b"b"], acks=1)
    with pytest.raises(InvalidRecordError):
        call(p, bad)
    assert p.log_end_offset == 2


# -- bad input ------------------------------------------------------------------------------------

BAD_APPENDS = [
    ("str value", dict(values=["text"])),
    ("int value", dict(values=[1])),
    ("mixed values", dict(values=[b"ok", 2])),
    ("single bytes", dict(values=b"abc")),
    ("single str", dict(values="abc")),
    ("empty", dict(values=[])),
    ("str key", dict(values=[b"v"], keys=["k"])),
    ("keys too short", dict(values=[b"v", b"w"], keys=[b"k"])),
    ("keys too long", dict(values=[b"v"], keys=[b"k", b"l"])),
    ("keys single bytes", dict(values=[b"v"], keys=b"k")),
    ("headers too short", dict(values=[b"v", b"w"], headers=[None])),
    ("header not a pair", dict(values=[b"v"], headers=[[("a", b"1", b"2")]])),
    ("header name bytes", dict(values=[b"v"], headers=[[(b"a", b"1")]])),
    ("header value str", dict(values=[b"v"], headers=[[("a", "1")]])),
    ("header value int", dict(values=[b"v"], headers=[[("a", 1)]])),
    ("timestamp str", dict(values=[b"v"], timestamps="now")),
    ("timestamp float", dict(values=[b"v"], timestamps=1.5)),
    ("timestamps wrong length", dict(values=[b"v", b"w"], timestamps=[1])),
    ("timestamps float", dict(values=[b"v"], timestamps=[1.0])),
    ("timestamp bool", dict(values=[b"v"], timestamps=True)),
    ("timestamp too big", dict(values=[b"v"], timestamps=2**63)),
    ("bad compression", dict(values=[b"v"], compression="gzip")),
]


@pytest.mark.parametrize("kwargs", [k for _, k in BAD_APPENDS], ids=[n for n, _ in BAD_APPENDS])
def test_bad_input_rejected(env, kwargs):
    p = env.topic()
    p.append([b"before"], acks=1)
    size = os.path.getsize(env.seg_path(0))
    with pytest.raises(InvalidRecordError) as info:
        p.append(acks=1, **kwargs)
    assert isinstance(info.value, StromError) and isinstance(info.value, TypeError)
    assert p.log_end_offset == 1
    assert os.path.getsize(env.seg_path(0)) == size
    assert p.append([b"after"], acks=1) == 1
    assert [r[3] for r in p.read_records(0)] == [b"before", b"after"]


@pytest.mark.parametrize("acks", [2, -2, "1", "ALL", "0", True, False, None])
def test_bad_acks(env, acks):
    p = env.topic()
    with pytest.raises(InvalidRecordError):
        p.append([b"v"], acks=acks)
    assert p.log_end_offset == 0
    assert os.path.getsize(env.seg_path(0)) == 0


# -- batches larger than max.message.bytes --------------------------------------------------------


def test_split_into_batches_under_max_message_bytes(env):
    p = env.topic({"max.message.bytes": 1000})
    n = 37
    values = [b"%03d" % i + b"x" * 97 for i in range(n)]
    keys = [None if i % 3 else b"k%d" % i for i in range(n)]
    ts = [T0 + (i * 7919) % 1000 for i in range(n)]
    headers = [[("i", b"%d" % i)] if i % 4 == 0 else None for i in range(n)]
    assert p.append([b"first"], acks=1) == 0
    assert p.append(values, keys=keys, timestamps=ts, headers=headers, acks=1) == 1
    assert p.log_end_offset == n + 1
    batches = all_batches(p)[1:]
    assert len(batches) > 3
    assert all(b.size <= 1000 for b in batches)
    assert sum(b.record_count for b in batches) == n
    got = [norm(r) for r in p.read_records(1)]
    assert got == [(i + 1, ts[i], keys[i], values[i], [("i", b"%d" % i)] if i % 4 == 0 else None)
                   for i in range(n)]
    assert p.append([b"last"], acks=1) == n + 1


def test_split_with_one_timestamp(env):
    p = env.topic({"max.message.bytes": 500})
    p.append([b"y" * 100] * 20, timestamps=T0 + 1, acks=1)
    assert len(all_batches(p)) > 1
    assert {r[1] for r in p.read_records(0)} == {T0 + 1}


def test_record_too_large(env):
    p = env.topic({"max.message.bytes": 1000})
    p.append([b"ok"], acks=1)
    size = os.path.getsize(env.seg_path(0))
    with pytest.raises(RecordTooLargeError) as info:
        p.append([b"x" * 1000], acks=1)
    assert isinstance(info.value, StromError) and isinstance(info.value, ValueError)
    with pytest.raises(RecordTooLargeError):  # one large record sinks the whole append
        p.append([b"small"] * 5 + [b"x" * 2000] + [b"small"], acks=1)
    assert p.log_end_offset == 1
    assert os.path.getsize(env.seg_path(0)) == size


def test_record_at_max_message_bytes(env):
    limit = 1000
    p = env.topic({"max.message.bytes": limit})
    lo, hi = 1, limit
    while lo < hi:  # the largest single value that fits
        mid = (lo + hi + 1) // 2
        if len(encode_batch(0, [b"x" * mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    assert len(encode_batch(0, [b"x" * lo])) <= limit < len(encode_batch(0, [b"x" * (lo + 1)]))
    assert p.append([b"x" * lo], acks=1) == 0
    with pytest.raises(RecordTooLargeError):
        p.append([b"x" * (lo + 1)], acks=1)
    assert p.read(0)[0].size <= limit


# -- rolls ----------------------------------------------------------------------------------------


def test_roll_by_segment_bytes(env):
    limit = 1024
    p = env.topic({"segment.bytes": limit})
    model = fill(p, 30, per_batch=2, size=90)
    segs = p.segments
    assert len(segs) > 5
    batches = all_batches(p)
    first_of = {b.base_offset: b for b in batches}
    for seg, nxt in zip(segs, segs[1:]):
        assert 0 < seg.size <= limit
        # rolled only because the next batch would not fit
        assert seg.size + first_of[nxt.base_offset].size > limit
        assert nxt.base_offset in first_of
    assert [s.base_offset for s in segs][0] == 0
    assert read_all(p, 0) == model
    assert p.info().segments == len(segs)
    assert p.info().size_bytes == sum(os.path.getsize(env.seg_path(s.base_offset)) for s in segs)


def test_batch_larger_than_segment_bytes(env):
    p = env.topic({"segment.bytes": 256})
    p.append([b"a"], acks=1)
    p.append([b"x" * 1000], acks=1)
    p.append([b"b"], acks=1)
    assert [s.base_offset for s in p.segments] == [0, 1, 2]
    assert p.segments[1].size > 1000
    assert [r[3] for r in read_all(p, 0)] == [b"a", b"x" * 1000, b"b"]


def test_roll_by_segment_ms(env, clock):
    p = env.topic({"segment.ms": 1000})
    p.append([b"a"], timestamps=T0, acks=1)
    p.append([b"b"], timestamps=T0 + 1000, acks=1)   # exactly segment.ms newer: same segment
    assert [s.base_offset for s in p.segments] == [0]
    p.append([b"c"], timestamps=T0 + 1001, acks=1)
    assert [s.base_offset for s in p.segments] == [0, 2]
    p.append([b"d"], timestamps=T0 + 500, acks=1)    # older than the segment's first record
    assert [s.base_offset for s in p.segments] == [0, 2]
    clock.set(T0 + 1001 + 1001)
    p.append([b"e"], acks=1)                          # the clock's time
    assert [s.base_offset for s in p.segments] == [0, 2, 4]
    assert [r[3] for r in read_all(p, 0)] == [b"a", b"b", b"c", b"d", b"e"]


def test_explicit_roll(env):
    p = env.topic()
    assert p.roll() == 0  # an empty active segment is not rolled
    p.append([b"a", b"b"], acks=1)
    assert p.roll() == 2
    assert p.roll() == 2
    assert [s.base_offset for s in p.segments] == [0, 2]
    assert os.path.getsize(env.seg_path(2)) == 0
    assert p.append([b"c"], acks=1) == 2
    assert [r[3] for r in read_all(p, 0)] == [b"a", b"b", b"c"]


def test_segment_file_names(env):
    p = env.topic({"segment.bytes": 512})
    fill(p, 20, per_batch=3, size=60)
    bases = [s.base_offset for s in p.segments]
    names = sorted(os.listdir(env.pdir))
    for name in names:
        assert SEGMENT_NAME.match(name) or name in ("lock", "recovery-point"), name
    logs = [n for n in names if n.endswith(".log")]
    assert logs == [f"{b:020d}.log" for b in bases]
    assert all(len(n) == 24 for n in logs)
    # sealed segments have their index files on disk
    for b in bases[:-1]:
        assert f"{b:020d}.index" in names and f"{b:020d}.timeindex" in names
    assert segment_name(42) == "00000000000000000042.log"
    assert segment_name(2**63 - 1, ".index") == "09223372036854775807.index"


def test_index_files_follow_index_interval(env):
    interval = 300
    p = env.topic({"segment.bytes": 4096, "index.interval.bytes": interval})
    fill(p, 40, per_batch=1, size=90)
    for seg in p.segments[:-1]:
        batches = segment_batches(env.seg_path(seg.base_offset))
        blob = open(env.seg_path(seg.base_offset, ".index"), "rb").read()
        idx = OffsetIndex.from_bytes(seg.base_offset, blob, seg.size)  # checks the trailer
        entries = list(zip(idx.offsets, idx.positions))
        assert entries == expected_index(batches, interval)
        assert len(entries) > 2


def test_index_files_valid_after_close(env):
    p = env.topic({"segment.bytes": 2000, "index.interval.bytes": 300})
    model = []
    for i in range(40):
        ts = [T0 + (i * 7919) % 1000, T0 + (i * 104729) % 1000]  # out of order on purpose
        base = p.append([b"v" * 60] * 2, timestamps=ts, acks=1)
        model += [(base, ts[0], None, b"v" * 60, None), (base + 1, ts[1], None, b"v" * 60, None)]
    bases = [s.base_offset for s in p.segments]
    assert len(bases) > 3
    env.log.close()
    for b in bases:
        assert_index_valid(env, b, model)


def test_offset_index_used_for_reads(env, monkeypatch):
    p = env.topic({"segment.bytes": 4096, "index.interval.bytes": 256})
    model = fill(p, 60, per_batch=2, size=100)
    assert len(p.segments) >= 3
    p = env.reopen()
    positions = []
    real = Segment.read_batches

    def spy(self, position, max_bytes):
        positions.append((self.base_offset, position))
        return real(self, position, max_bytes)

    monkeypatch.setattr(Segment, "read_batches", spy)
    mid = p.segments[1]
    batches = segment_batches(env.seg_path(mid.base_offset))
    pos, base, size = batches[-2]  # a batch far from the segment's start
    assert pos > 2000
    offset = base + 1
    assert norm(p.read_records(offset)[0]) == model[offset]
    seg_base, first_pos = positions[0]
    assert seg_base == mid.base_offset
    # the read started at the index entry at or below the offset, within index.interval.bytes
    assert 0 < first_pos <= pos
    assert pos - first_pos <= 256 + size
    assert first_pos in {p_ for p_, _, _ in batches}
    monkeypatch.undo()
    for o in range(0, p.log_end_offset, 7):
        assert read_all(p, o, 300) == model[o:]


# -- time lookups ---------------------------------------------------------------------------------


def expected_time_lookup(model: list[tuple], target: int):
    for rec in model:
        if rec[1] >= target:
            return rec[0], rec[1]
    return None


def time_targets(model: list[tuple]) -> list[int]:
    ts = sorted({r[1] for r in model})
    return sorted({t + d for t in ts for d in (-1, 0, 1)} | {-(2**62), 0, ts[-1] + 10**6})


def test_time_lookup_across_segments(env):
    p = env.topic({"segment.bytes": 600, "index.interval.bytes": 200})
    model = fill(p, 30, per_batch=3, size=40, ts_step=10)
    assert len(p.segments) > 3
    for target in time_targets(model):
        assert p.offset_for_timestamp(target) == expected_time_lookup(model, target), target


def test_time_lookup_out_of_order_timestamps(env):
    # the first record (by offset) with a timestamp >= the target, as Kafka's ListOffsets
    p = env.topic({"segment.bytes": 600, "index.interval.bytes": 150})
    tss = [500, 100, 900, 300, 300, 800, 50, 1000, 200, 600, 700, 400, 1000, 10, 950]
    model = []
    for i, ts in enumerate(tss):
        batch_ts = [T0 + ts, T0 + ts // 2, T0 + ts + 3]
        base = p.append([b"v" * 60] * 3, timestamps=batch_ts, acks=1)
        model.extend((base + j, batch_ts[j], None, b"v" * 60, None) for j in range(3))
    assert len(p.segments) > 3
    for target in time_targets(model):
        assert p.offset_for_timestamp(target) == expected_time_lookup(model, target), target


def test_time_lookup_empty(env):
    p = env.topic()
    assert p.offset_for_timestamp(0) is None


def test_time_lookup_after_reopen(env):
    # The active segment's largest timestamp must survive a clean reopen, even when it is
    # not at an index point (index.interval.bytes keeps the time index sparse).
    p = env.topic({"index.interval.bytes": 4096})
    p.append([b"a"], timestamps=T0, acks=1)
    p.append([b"b"], timestamps=T0 + 50_000, acks=1)
    assert p.offset_for_timestamp(T0 + 40_000) == (1, T0 + 50_000)
    p = env.reopen()
    assert p.offset_for_timestamp(T0 + 40_000) == (1, T0 + 50_000)
    p.roll()
    assert p.offset_for_timestamp(T0 + 40_000) == (1, T0 + 50_000)
    p = env.reopen()
    assert p.offset_for_timestamp(T0 + 40_000) == (1, T0 + 50_000)


def test_time_lookup_after_reopen_many_segments(env):
    p = env.topic({"segment.bytes": 600, "index.interval.bytes": 1000})
    model = []
    for k in range(3):
        model += fill(p, 10, per_batch=3, size=40, ts_step=10)
        p = env.reopen()
    for target in time_targets(model):
        assert p.offset_for_timestamp(target) == expected_time_lookup(model, target), target


# -- retention ------------------------------------------------------------------------------------


def log_files(env: Env) -> list[str]:
    return sorted(n for n in os.listdir(env.pdir) if n.endswith(".log"))


def test_retention_by_time(env, clock):
    p = env.topic({"retention.ms": 1000, "segment.bytes": 100_000})
    for k in range(4):
        fill(p, 2, per_batch=2, size=50, ts_step=0)  # every record stamped T0
        p.roll()
    clock.advance(1600)
    assert len(p.segments) == 5
    assert p.delete_old_segments(T0 + 1000) == 0    # exactly retention.ms old is kept
    assert p.delete_old_segments(T0 + 1001) == 4    # every sealed one; never the active
    assert p.log_start_offset == 16 == p.log_end_offset
    assert log_files(env) == ["00000000000000000016.log"]
    gone = {segment_name(b, sfx) for b in (0, 4, 8, 12) for sfx in (".log", ".index", ".timeindex")}
    assert not gone & set(os.listdir(env.pdir))
    with pytest.raises(OffsetOutOfRangeError):
        p.read(0)
    with pytest.raises(OffsetOutOfRangeError):
        p.read(15)
    assert p.read(16) == []
    assert p.append([b"new"], acks=1) == 16
    assert p.offset_for_timestamp(0) == (16, T0 + 1600)


def test_retention_by_time_uses_largest_timestamp(env, clock):
    p = env.topic({"retention.ms": 1000})
    p.append([b"a", b"b"], timestamps=[T0 - 5000, T0], acks=1)  # old first record, new last one
    p.roll()
    p.append([b"c"], timestamps=T0 - 9000, acks=1)
    p.roll()
    p.append([b"d"], acks=1)
    assert p.delete_old_segments(T0 + 500) == 0
    assert p.log_start_offset == 0
    assert p.delete_old_segments(T0 + 1001) == 2
    assert p.log_start_offset == 3
    assert [r[3] for r in p.read_records(3)] == [b"d"]


def test_retention_stops_at_the_first_young_segment(env, clock):
    p = env.topic({"retention.ms": 1000})
    for ts in (T0, T0 + 5000, T0):  # a young segment shields the old one after it
        p.append([b"x"], timestamps=ts, acks=1)
        p.roll()
    assert p.delete_old_segments(T0 + 2000) == 1
    assert p.log_start_offset == 1


def test_retention_by_size(env):
    p = env.topic({"segment.bytes": 100_000})
    for _ in range(5):
        fill(p, 2, per_batch=2, size=50, acks=1)
        p.roll()
    fill(p, 1, per_batch=1, size=50, acks=1)
    sizes = [os.path.getsize(env.seg_path(s.base_offset)) for s in p.segments]
    total = sum(sizes)
    bases = [s.base_offset for s in p.segments]
    # keep at least retention.bytes: delete a segment only if what stays is still >= the limit
    env.log.alter_topic("t", {"retention.bytes": total - sizes[0] - sizes[1]})
    assert p.delete_old_segments() == 2
    assert p.log_start_offset == bases[2]
    env.log.alter_topic("t", {"retention.bytes": total - sizes[0] - sizes[1] - sizes[2] + 1})
    assert p.delete_old_segments() == 0
    env.log.alter_topic("t", {"retention.bytes": 0})
    assert p.delete_old_segments() == 3  # every sealed segment, never the active one
    assert p.log_start_offset == bases[-1]
    assert log_files(env) == [segment_name(bases[-1])]
    with pytest.raises(OffsetOutOfRangeError):
        p.read(bases[-1] - 1)
    assert p.read_records(bases[-1])[0][0] == bases[-1]


def test_retention_unlimited(env, clock):
    p = env.topic({"retention.ms": -1, "retention.bytes": -1})
    p.append([b"x"], timestamps=0, acks=1)
    p.roll()
    assert p.delete_old_segments(2**62) == 0


def test_retention_runs_at_roll(env, clock):
    p = env.topic({"retention.ms": 1000, "segment.bytes": 300})
    p.append([b"x" * 100], acks=1)
    p.append([b"x" * 100], acks=1)
    clock.advance(5000)
    p.append([b"x" * 200], acks=1)  # rolls; the roll applies retention with the clock's time
    assert p.log_start_offset == 2
    assert log_files(env) == [segment_name(2)]


def test_retention_survives_reopen(env, clock):
    p = env.topic({"retention.ms": 1000})
    p.append([b"x"], acks=1)
    p.roll()
    p.append([b"y"], acks=1)
    clock.advance(2000)
    assert p.delete_old_segments() == 1
    p = env.reopen()
    assert (p.log_start_offset, p.log_end_offset) == (1, 2)
    with pytest.raises(OffsetOutOfRangeError):
        p.read(0)


# -- index damage and rebuild ---------------------------------------------------------------------
#
# Index files end with a checksum of their entries (index.TRAILER).  Two kinds of damage:
# bytes changed on disk ("raw": the checksum no longer matches, as after a bit flip or a
# torn write) and files that are well-formed with a matching checksum but whose entries
# lie ("sealed": a stale file, or one written by a bug).  Both must cost a rebuild at most,
# never wrong data: offset entries are checked on use (docs/storage.md, "Indexes are caches").


def _entries(blob: bytes) -> list[list[int]]:
    return [list(e) for e in OFFSET_ENTRY.iter_unpack(blob[:-TRAILER.size])]


def _seal(entries: bytes) -> bytes:
    return entries + TRAILER.pack(xxhash.xxh3_64_intdigest(entries))


def _pack(entries, *, seal: bool) -> bytes:
    raw = b"".join(OFFSET_ENTRY.pack(*e) for e in entries)
    return _seal(raw) if seal else raw + b"\0" * TRAILER.size


def _middle_to_later_batch(seal):
    def damage(blob, batches):
        """The middle entry moved onto a later batch; the last entry stays right."""
        entries = _entries(blob)
        assert len(entries) >= 3
        i = len(entries) // 2
        later = [pos for pos, _, _ in batches if entries[i][1] < pos < entries[i + 1][1]]
        assert later, "need a batch between two index entries"
        entries[i][1] = later[-1]
        return _pack(entries, seal=seal)
    return damage


def _middle_into_a_batch(seal):
    def damage(blob, batches):
        entries = _entries(blob)
        entries[len(entries) // 2][1] += 1
        return _pack(entries, seal=seal)
    return damage


def _shifted(seal):
    return lambda blob, batches: _pack([[rel, pos + 7] for rel, pos in _entries(blob)], seal=seal)


def _past_the_segment(seal):
    def damage(blob, batches):
        entries = _entries(blob)
        return _pack(entries + [[entries[-1][0] + 1000, 10**6]], seal=seal)
    return damage


def _reversed(seal):
    return lambda blob, batches: _pack(list(reversed(_entries(blob))), seal=seal)


def _flip_last_byte_of_entries(blob, batches):
    b = bytearray(blob)
    b[-TRAILER.size - 1] ^= 0x10
    return bytes(b)


def _time_entries_sealed_out_of_order(blob, batches):
    return _seal(TIME_ENTRY.pack(T0 + 10**6, 0) + TIME_ENTRY.pack(T0, 1))


def _time_entries_too_old_raw(blob, batches):
    """Every timestamp a day older, the trailer left as it was (a stray write)."""
    body = b"".join(TIME_ENTRY.pack(ts - 86_400_000, rel)
                    for ts, rel in TIME_ENTRY.iter_unpack(blob[:-TRAILER.size]))
    return body + blob[-TRAILER.size:]


INDEX_DAMAGE = {
    "index missing": (".index", None),
    "timeindex missing": (".timeindex", None),
    "index garbage": (".index", lambda blob, batches: b"\xde\xad\xbe\xef" * 3 + b"\x01"),
    "timeindex garbage": (".timeindex", lambda blob, batches: b"\x00" * 13),
    "index empty": (".index", lambda blob, batches: b""),
    "timeindex empty": (".timeindex", lambda blob, batches: b""),
    "index cut short": (".index", lambda blob, batches: blob[:-3]),
    "index flipped bit": (".index", _flip_last_byte_of_entries),
    "timeindex flipped bit": (".timeindex", _flip_last_byte_of_entries),
    "timeindex too old, raw": (".timeindex", _time_entries_too_old_raw),
    "index shifted, raw": (".index", _shifted(False)),
    "index middle entry on a later batch, raw": (".index", _middle_to_later_batch(False)),
    "index shifted, sealed": (".index", _shifted(True)),
    "index past the segment, sealed": (".index", _past_the_segment(True)),
    "index out of order, sealed": (".index", _reversed(True)),
    "index middle entry into a batch, sealed": (".index", _middle_into_a_batch(True)),
    "index middle entry on a later batch, sealed": (".index", _middle_to_later_batch(True)),
    "index of another segment": (".index", "other"),
    "timeindex out of order, sealed": (".timeindex", _time_entries_sealed_out_of_order),
}
DAMAGE_INTERVAL = 600  # index.interval.bytes: about three 206-byte batches between entries


def _build_for_index_damage(env, damage_name):
    p = env.topic({"segment.bytes": 3000, "index.interval.bytes": DAMAGE_INTERVAL})
    model = fill(p, 60, per_batch=2, size=60, ts_step=10)
    assert len(p.segments) >= 4
    target = p.segments[1].base_offset
    other = p.segments[2].base_offset
    p.roll()  # the active segment is empty: its time index is not at stake here
    env.log.close()
    suffix, damage = INDEX_DAMAGE[damage_name]
    path = env.seg_path(target, suffix)
    batches = segment_batches(env.seg_path(target))
    index = OffsetIndex.from_bytes(target, open(env.seg_path(target, ".index"), "rb").read(),
                                   os.path.getsize(env.seg_path(target)))
    entries = list(zip(index.offsets, index.positions))
    assert entries == expected_index(batches, DAMAGE_INTERVAL) and len(entries) >= 3
    if damage is None:
        os.unlink(path)
    elif damage == "other":
        shutil.copyfile(env.seg_path(other, suffix), path)
    else:
        blob = open(path, "rb").read()
        with open(path, "wb") as f:
            f.write(damage(blob, batches))
    env.log = env._open()
    return env.p, model, target, batches, entries


@pytest.mark.parametrize("damage", list(INDEX_DAMAGE))
def test_damaged_index_reads(env, damage):
    p, model, target, batches, entries = _build_for_index_damage(env, damage)
    assert p.last_recovery.bytes_truncated == 0
    for o in range(target, p.log_end_offset, 3):
        assert read_all(p, o, 200) == model[o:], o
    for o in range(0, p.log_end_offset, 5):
        assert read_all(p, o) == model[o:], o
    assert p.verify() == []


@pytest.mark.parametrize("damage", list(INDEX_DAMAGE))
def test_damaged_index_time_lookup(env, damage):
    p, model, target, batches, entries = _build_for_index_damage(env, damage)
    for target_ts in time_targets(model):
        assert p.offset_for_timestamp(target_ts) == expected_time_lookup(model, target_ts), target_ts


@pytest.mark.parametrize("damage", list(INDEX_DAMAGE))
def test_damaged_index_truncate(env, damage):
    p, model, target, batches, entries = _build_for_index_damage(env, damage)
    # cut inside the batch of the middle index entry (the one the damage moved, if any)
    base = entries[len(entries) // 2][0]
    assert p.truncate_to(base + 1) == base
    assert p.log_end_offset == base
    assert read_all(p, 0) == model[:base]
    assert p.append([b"after"], acks=1) == base


@pytest.mark.parametrize("damage", list(INDEX_DAMAGE))
def test_damaged_index_retention(env, clock, damage):
    # one second after segment 0's newest record, a retention of one second deletes
    # segment 0 only (segment 1's records are newer), whatever the damaged files claim
    p, model, target, batches, entries = _build_for_index_damage(env, damage)
    env.log.alter_topic("t", {"retention.ms": 1000})
    newest_0 = max(r[1] for r in model[:target])
    assert p.delete_old_segments(newest_0 + 1001) == 1
    assert p.log_start_offset == target
    assert read_all(p, target) == model[target:]


@pytest.mark.parametrize("damage", list(INDEX_DAMAGE))
def test_damaged_index_rewritten(env, damage):
    # an index that failed its checks is rebuilt, and the rebuilt one reaches the disk
    p, model, target, batches, entries = _build_for_index_damage(env, damage)
    for o in range(target, p.segments[2].base_offset):  # every entry gets used, and checked
        assert p.read_records(o, 1, 200) == model[o:o + 1]
    env.log.close()
    assert_index_valid(env, target, model)
    index = OffsetIndex.from_bytes(target, open(env.seg_path(target, ".index"), "rb").read(),
                                   os.path.getsize(env.seg_path(target)))
    assert list(zip(index.offsets, index.positions)) == entries


def test_index_orphans_and_leftovers_removed_at_open(env):
    p = env.topic()
    p.append([b"a"], acks=1)
    env.log.close()
    junk = [segment_name(500, ".index"), segment_name(500, ".timeindex"),
            segment_name(0, ".log") + ".deleted", "recovery-point.0123456789ab.tmp",
            segment_name(0, ".index") + ".0123456789ab.tmp", segment_name(7, ".log") + ".cleaned"]
    for name in junk:
        with open(os.path.join(env.pdir, name), "wb") as f:
            f.write(b"junk")
    p = env.reopen()
    left = set(os.listdir(env.pdir))
    assert not left & set(junk)
    assert [r[3] for r in p.read_records(0)] == [b"a"]


# -- recovery -------------------------------------------------------------------------------------


def test_clean_reopen_scans_nothing(env):
    p = env.topic({"segment.bytes": 1000})
    model = fill(p, 10, per_batch=2, size=100, acks=1)
    model += fill(p, 10, per_batch=2, size=100, acks="all")
    p = env.reopen()
    assert p.last_recovery == RecoveryResult(0, 0, 0, False)
    assert read_all(p, 0) == model
    p = env.reopen()
    assert p.last_recovery == RecoveryResult(0, 0, 0, False)


def test_first_open_of_a_new_partition(env):
    p = env.topic()
    assert p.last_recovery.bytes_truncated == 0
    assert p.last_recovery.bytes_scanned == 0


def test_crash_without_close_keeps_acks_1_data(env, tmp_path):
    p = env.topic({"segment.bytes": 2000})
    model = fill(p, 30, per_batch=2, size=60, acks=1)
    crashed = env.crash_copy(str(tmp_path / "crash"))
    try:
        q = crashed.p
        r = q.last_recovery
        assert r.bytes_truncated == 0 and r.segments_deleted == 0
        assert r.bytes_scanned == os.path.getsize(crashed.seg_path(q.segments[-1].base_offset))
        assert read_all(q, 0) == model
        assert q.append([b"next"], acks=1) == len(model)
        assert q.verify() == []
    finally:
        crashed.close()


def _valid_next_batch(p) -> bytes:
    return encode_batch(p.log_end_offset, [b"torn" * 20, b"tail"], keys=[b"k", None],
                        timestamps=T0)


TORN_TAILS = {
    "half a batch": lambda p: _valid_next_batch(p)[: len(_valid_next_batch(p)) // 2],
    "header only": lambda p: _valid_next_batch(p)[:HEADER_SIZE],
    "a few bytes": lambda p: _valid_next_batch(p)[:5],
    "all but one byte": lambda p: _valid_next_batch(p)[:-1],
    "zeros": lambda p: b"\x00" * 4096,
    "garbage": lambda p: bytes(range(256)) * 3,
    "bad checksum": lambda p: bytes([_valid_next_batch(p)[0] ^ 1]) + _valid_next_batch(p)[1:],
    "batch then half": lambda p: _valid_next_batch(p)[:HEADER_SIZE] + b"\x00" * 10,
}


@pytest.mark.parametrize("tail", list(TORN_TAILS))
def test_torn_tail_truncated_at_open(env, tmp_path, tail):
    p = env.topic({"segment.bytes": 2000})
    model = fill(p, 20, per_batch=2, size=60, acks=1)
    active = p.segments[-1].base_offset
    junk = TORN_TAILS[tail](p)
    crashed = env.crash_copy(str(tmp_path / "crash"))
    crashed.log.close()
    path = crashed.seg_path(active)
    good_size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(junk)
    crashed.log = crashed._open()
    try:
        q = crashed.p
        r = q.last_recovery
        assert r.bytes_truncated == len(junk) > 0
        assert os.path.getsize(path) == good_size
        assert q.log_end_offset == len(model)
        assert read_all(q, 0) == model
        assert q.append([b"next", b"one"], acks=1) == len(model)
        assert [r[3] for r in q.read_records(len(model))] == [b"next", b"one"]
        assert q.verify() == []
        q = crashed.reopen()
        assert q.last_recovery.bytes_truncated == 0
        assert q.log_end_offset == len(model) + 2
    finally:
        crashed.close()


def test_torn_tail_in_a_crashed_copy_with_acks_1(env, tmp_path):
    # no clean close: the recovery point lags, recovery scans past it and cuts the torn batch
    p = env.topic()
    model = fill(p, 10, per_batch=2, size=60, acks=1)
    junk = _valid_next_batch(p)[:-10]
    with open(env.seg_path(0), "ab") as f:  # a writer that died mid-write
        f.write(junk)
    crashed = env.crash_copy(str(tmp_path / "crash"))
    try:
        q = crashed.p
        assert q.last_recovery.bytes_truncated == len(junk)
        assert q.last_recovery.bytes_scanned > 0
        assert read_all(q, 0) == model
        assert q.append([b"x"], acks="all") == len(model)
    finally:
        crashed.close()


def test_partial_batch_never_returned_to_live_readers(env, clock):
    p = env.topic()
    model = fill(p, 5, per_batch=2, size=60, acks=1)
    end = p.log_end_offset
    other = strom.open(env.path, clock=clock)  # a second reader, as another process would be
    try:
        q = other.partition("t", 0)
        full = _valid_next_batch(p)
        with open(env.seg_path(0), "ab") as f:  # a writer in another process is mid-write
            f.write(full[: len(full) - 20])
        for part in (p, q):
            assert part.read(end) == []
            part.refresh()
            assert part.log_end_offset == end
            assert read_all(part, 0) == model
            assert part.offset_for_timestamp(T0) == (0, T0)
            with pytest.raises(OffsetOutOfRangeError):
                part.read(end + 1)
        # the next writer cuts the torn bytes off before appending: offsets stay dense
        assert p.append([b"real"], acks=1) == end
        assert q.read_records(end) == [(end, T0, None, b"real", None)]
        assert p.verify() == [] and q.verify() == []
    finally:
        other.close()


def test_complete_batch_appended_by_another_writer_is_seen(env, clock):
    p = env.topic()
    fill(p, 3, per_batch=1, size=10, acks=1)
    other = strom.open(env.path, clock=clock)
    try:
        q = other.partition("t", 0)
        assert q.append([b"from q"], acks=1) == 3
        assert p.read_records(3) == [(3, T0, None, b"from q", None)]
        assert p.append([b"from p"], acks=1) == 4
        assert [r[3] for r in q.read_records(4)] == [b"from p"]
        assert [r[3] for r in q.read_records(3)] == [b"from q", b"from p"]
    finally:
        other.close()


def test_recovery_scan_bounded_by_checkpoint_interval(env, tmp_path, monkeypatch):
    interval = 4096
    monkeypatch.setattr(partition_mod, "CHECKPOINT_INTERVAL_BYTES", interval)
    p = env.topic({"segment.bytes": 10_000_000})
    model = fill(p, 300, per_batch=2, size=200, acks="all")
    size = os.path.getsize(env.seg_path(0))
    assert size > 20 * interval
    largest = max(b.size for b in all_batches(p))
    crashed = env.crash_copy(str(tmp_path / "crash"))
    try:
        q = crashed.p
        r = q.last_recovery
        assert r.bytes_truncated == 0
        assert 0 <= r.bytes_scanned < interval + largest
        assert read_all(q, 0) == model
    finally:
        crashed.close()


def test_recovery_scan_bounded_with_the_default_interval(env, tmp_path):
    interval = partition_mod.CHECKPOINT_INTERVAL_BYTES
    assert interval == 16 * 1024 * 1024
    p = env.topic({"segment.bytes": 1 << 30})
    value = b"x" * (1000 * 1000)
    n = 0
    while os.path.getsize(env.seg_path(0)) < interval + 3 * len(value):
        p.append([value], acks="all")
        n += 1
    crashed = env.crash_copy(str(tmp_path / "crash"))
    try:
        q = crashed.p
        r = q.last_recovery
        assert r.bytes_truncated == 0
        assert r.bytes_scanned < interval
        assert r.bytes_scanned < os.path.getsize(crashed.seg_path(0)) - interval
        assert q.log_end_offset == n
        assert q.read_records(n - 1)[0][3] == value
    finally:
        crashed.close()


def test_roll_moves_the_recovery_point(env, tmp_path):
    p = env.topic({"segment.bytes": 1000})
    model = fill(p, 20, per_batch=2, size=100, acks=1)
    assert len(p.segments) > 3
    crashed = env.crash_copy(str(tmp_path / "crash"))
    try:
        q = crashed.p
        # only the active segment, written after the last roll, is scanned
        assert q.last_recovery.bytes_scanned == os.path.getsize(
            crashed.seg_path(q.segments[-1].base_offset))
        assert read_all(q, 0) == model
    finally:
        crashed.close()


def _flip(path: str, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        b = f.read(1)
        f.seek(position)
        f.write(bytes([b[0] ^ 0x40]))


@pytest.mark.parametrize("where", ["sealed", "active"])
def test_corruption_below_recovery_point_reported_not_truncated(env, where):
    p = env.topic({"segment.bytes": 2000})
    model = fill(p, 40, per_batch=2, size=60, acks=1)
    segs = p.segments
    assert len(segs) >= 3
    seg = segs[1] if where == "sealed" else segs[-1]
    batches = segment_batches(env.seg_path(seg.base_offset))
    pos, base, size = batches[len(batches) // 2]
    sizes = {s.base_offset: os.path.getsize(env.seg_path(s.base_offset)) for s in segs}
    env.log.close()
    _flip(env.seg_path(seg.base_offset), pos + HEADER_SIZE + 5)  # inside the payload
    p = env.reopen()
    assert p.last_recovery == RecoveryResult(0, 0, 0, False)
    assert {s.base_offset: os.path.getsize(env.seg_path(s.base_offset)) for s in segs} == sizes
    assert p.log_end_offset == len(model)
    with pytest.raises(CorruptRecordError) as info:
        p.read(base)
    assert info.value.path == env.seg_path(seg.base_offset)
    assert info.value.position == pos
    with pytest.raises(CorruptRecordError):
        p.read_records(base + 1)
    # everything before the damaged batch is still readable
    got, o = [], 0
    while o < base:
        bs = p.read(o, 100)
        for b in bs:
            got.extend(b.records(o))
        o = bs[-1].next_offset
    assert got[:base] == model[:base]
    problems = p.verify()
    assert len(problems) == 1
    assert env.seg_path(seg.base_offset) in problems[0] and str(pos) in problems[0]
    # a second reopen still does not truncate
    p = env.reopen()
    assert p.last_recovery.bytes_truncated == 0
    assert p.log_end_offset == len(model)
    # repair truncates at the damaged batch and drops every later segment
    r = p.repair()
    later = [s for s in segs if s.base_offset > seg.base_offset]
    assert r.full_scan
    assert r.segments_deleted == len(later)
    assert r.bytes_truncated == sizes[seg.base_offset] - pos + sum(sizes[s.base_offset] for s in later)
    assert p.log_end_offset == base
    assert p.verify() == []
    assert read_all(p, 0) == model[:base]
    assert p.append([b"after repair"], acks=1) == base
    assert log_files(env)[-1] == segment_name(seg.base_offset)
    p = env.reopen()
    assert p.last_recovery.bytes_truncated == 0
    assert p.log_end_offset == base + 1


def test_open_with_repair(env):
    p = env.topic()
    model = fill(p, 10, per_batch=2, size=60, acks=1)
    env.log.close()
    pos, base, _ = segment_batches(env.seg_path(0))[4]
    _flip(env.seg_path(0), pos + 70)
    p = env.reopen(repair=True)
    assert p.last_recovery.full_scan
    assert p.last_recovery.bytes_truncated > 0
    assert p.log_end_offset == base
    assert read_all(p, 0) == model[:base]


def test_time_lookup_reports_corruption(env):
    p = env.topic()
    fill(p, 10, per_batch=2, size=60, acks=1)
    p.roll()
    env.log.close()
    pos, base, _ = segment_batches(env.seg_path(0))[4]
    _flip(env.seg_path(0), pos + 70)
    p = env.reopen()
    with pytest.raises(CorruptRecordError):
        p.offset_for_timestamp(T0 + 10 * base)


# -- truncation -----------------------------------------------------------------------------------


def test_truncate_to(env):
    p = env.topic()
    model = []
    for _ in range(3):
        model += fill(p, 1, per_batch=5, size=20, acks=1)
        p.roll()
    assert [s.base_offset for s in p.segments] == [0, 5, 10, 15]
    assert p.truncate_to(15) == 15            # at the end: nothing to do
    assert p.truncate_to(100) == 15           # past the end: nothing to do
    assert p.truncate_to(12) == 10            # inside a batch: the whole batch goes
    assert p.log_end_offset == 10
    assert log_files(env) == [segment_name(0), segment_name(5), segment_name(10)]
    assert os.path.getsize(env.seg_path(10)) == 0
    assert read_all(p, 0) == model[:10]
    assert p.read(10) == []
    with pytest.raises(OffsetOutOfRangeError):
        p.read(11)
    assert p.offset_for_timestamp(T0 + 10 * 11) is None
    assert p.append([b"new"], timestamps=T0, acks=1) == 10
    assert p.truncate_to(5) == 5
    assert log_files(env) == [segment_name(0), segment_name(5)]
    assert p.truncate_to(0) == 0
    assert p.log_end_offset == p.log_start_offset == 0
    assert p.read(0) == []
    assert p.append([b"again"], acks=1) == 0
    assert p.verify() == []
    p = env.reopen()
    assert p.last_recovery.bytes_truncated == 0
    assert [r[3] for r in p.read_records(0)] == [b"again"]


def test_truncate_within_the_active_segment(env):
    p = env.topic()
    model = fill(p, 6, per_batch=3, size=20, acks=1)
    assert p.truncate_to(10) == 9
    assert read_all(p, 0) == model[:9]
    assert p.append([b"x"], acks=1) == 9
    p = env.reopen()
    assert p.last_recovery.bytes_truncated == 0
    assert p.log_end_offset == 10
    assert [r[3] for r in p.read_records(8)] == [model[8][3], b"x"]


def test_truncate_then_reopen_keeps_indexes_consistent(env):
    p = env.topic({"segment.bytes": 1000, "index.interval.bytes": 100})
    model = fill(p, 30, per_batch=2, size=60, acks=1)
    mid = p.segments[2]
    cut = mid.base_offset + 3
    new_end = p.truncate_to(cut)
    assert new_end in (mid.base_offset + 2, mid.base_offset + 3, cut) and new_end <= cut
    p = env.reopen()
    assert p.verify() == []
    assert read_all(p, 0) == model[:new_end]
    model = model[:new_end] + fill(p, 10, per_batch=2, size=60, acks=1)
    p = env.reopen()
    for o in range(0, p.log_end_offset, 3):
        assert read_all(p, o, 150) == model[o:]


def test_truncate_below_start(env, clock):
    p = env.topic({"retention.ms": 1000})
    p.append([b"a", b"b"], acks=1)
    p.roll()
    p.append([b"c"], acks=1)
    clock.advance(2000)
    assert p.delete_old_segments() == 1
    with pytest.raises(OffsetOutOfRangeError):
        p.truncate_to(1)
    with pytest.raises(OffsetOutOfRangeError):
        p.truncate_to(-1)
    assert p.truncate_to(2) == 2
    assert p.log_start_offset == 2


# -- durability, flush, failures, closing ---------------------------------------------------------


class CountingFile(File):
    __slots__ = ("counter",)

    def fdatasync(self) -> None:
        self.counter[self.path] += 1
        super().fdatasync()


class CountingFS(FileSystem):
    def __init__(self) -> None:
        self.syncs: collections.Counter = collections.Counter()

    def open(self, path, *, write=False, create=False, exclusive=False):
        f = super().open(path, write=write, create=create, exclusive=exclusive)
        cf = CountingFile(f.fd, f.path)
        f.fd = -1  # the CountingFile owns the descriptor now
        cf.counter = self.syncs
        return cf


def test_acks_and_flush_fsync(tmp_path, clock):
    fs = CountingFS()
    env = Env(str(tmp_path / "data"), clock, fs=fs)
    try:
        p = env.topic()
        seg = env.seg_path(0)
        before = fs.syncs[seg]
        p.append([b"a"], acks=1)
        p.append([b"b"], acks=0)
        assert fs.syncs[seg] == before          # acks 0/1: written to the OS, not fsync'd
        p.flush()
        assert fs.syncs[seg] == before + 1      # flush makes them durable
        p.flush()
        assert fs.syncs[seg] == before + 1      # nothing new to sync
        p.append([b"c"], acks="all")
        assert fs.syncs[seg] == before + 2      # acks="all" fsyncs before returning
        p.append([b"d"], acks=-1)
        assert fs.syncs[seg] == before + 3
        assert [r[3] for r in p.read_records(0)] == [b"a", b"b", b"c", b"d"]
    finally:
        env.close()


class FailingFile(File):
    __slots__ = ()

    def fdatasync(self) -> None:
        raise OSError(5, "Input/output error")


class FailingSyncFS(FileSystem):
    def __init__(self) -> None:
        self.fail = False

    def open(self, path, *, write=False, create=False, exclusive=False):
        f = super().open(path, write=write, create=create, exclusive=exclusive)
        if not (self.fail and path.endswith(".log")):
            return f
        ff = FailingFile(f.fd, f.path)
        f.fd = -1
        return ff


def test_failed_fsync_fails_the_partition_until_reopen(tmp_path, clock):
    fs = FailingSyncFS()
    env = Env(str(tmp_path / "data"), clock, fs=fs)
    try:
        p = env.topic()
        p.append([b"a"], acks="all")
        env.log.close()
        fs.fail = True
        env.log = env._open()
        p = env.p
        p.append([b"b"], acks=1)
        with pytest.raises(PartitionFailedError) as info:
            p.append([b"c"], acks="all")
        assert info.value.errno == 5
        for call in (lambda: p.append([b"d"], acks=1), p.flush, p.roll):
            with pytest.raises(PartitionFailedError):
                call()
        fs.fail = False
        try:
            env.log.close()
        except StromError:
            pass
        env.log = env._open()
        p = env.p
        assert [r[3] for r in p.read_records(0)][:1] == [b"a"]
        assert p.append([b"e"], acks="all") == p.log_end_offset - 1
    finally:
        fs.fail = False
        env.close()


CLOSED_CALLS = {
    "append": lambda p: p.append([b"x"], acks=1),
    "read": lambda p: p.read(0),
    "read_records": lambda p: p.read_records(0),
    "offset_for_timestamp": lambda p: p.offset_for_timestamp(0),
    "roll": lambda p: p.roll(),
    "truncate_to": lambda p: p.truncate_to(0),
    "delete_old_segments": lambda p: p.delete_old_segments(),
    "flush": lambda p: p.flush(),
    "verify": lambda p: p.verify(),
    "refresh": lambda p: p.refresh(),
    "info": lambda p: p.info(),
    "repair": lambda p: p.repair(),
}


@pytest.mark.parametrize("call", list(CLOSED_CALLS))
def test_closed_partition(env, call):
    p = env.topic()
    p.append([b"a"], acks=1)
    env.log.close()
    with pytest.raises(LogClosedError):
        CLOSED_CALLS[call](p)


def test_partition_close_is_idempotent(env):
    p = env.topic()
    p.append([b"a"], acks=1)
    p.close()
    p.close()
    with pytest.raises(LogClosedError):
        p.append([b"b"])


def test_info_and_segments(env):
    p = env.topic({"segment.bytes": 500})
    fill(p, 10, per_batch=2, size=60, acks=1)
    info = p.info()
    segs = p.segments
    assert info.partition == 0
    assert (info.log_start_offset, info.log_end_offset) == (0, 20)
    assert info.segments == len(segs) > 1
    assert info.size_bytes == sum(s.size for s in segs)
    segs.clear()  # a copy
    assert p.segments
    assert "t" in repr(p)


def test_open_descriptors_stay_bounded_with_many_segments(tmp_path):
    """A reader descriptor per segment ever read would run into EMFILE on long logs."""
    import os as _os

    def open_fds() -> int:
        return len(_os.listdir("/proc/self/fd"))

    with strom.open(tmp_path / "data") as log:
        log.create_topic("t", config={"segment.bytes": 256, "retention.ms": -1})
        p = log.partition("t", 0)
        for i in range(400):
            p.append([b"record-%04d" % i + b"." * 150], acks=1)
        assert len(p.segments) >= 390
        log.reader_cache.limit = 16
        before = open_fds()
        offset, seen = 0, 0
        while offset < p.log_end_offset:
            batches = p.read(offset)
            seen += sum(b.record_count for b in batches)
            offset = batches[-1].next_offset
        assert seen == 400
        assert p.verify() == []
        assert open_fds() - before <= 16 + 4
        assert len(log.reader_cache) <= 16
