"""The log cleaner's behaviour, one rule at a time (src/strom/storage/cleaner.py).

Each topic setting that steers compaction (min.cleanable.dirty.ratio,
min.compaction.lag.ms, max.compaction.lag.ms, delete.retention.ms,
segment.bytes, cleanup.policy=compact,delete) is shown to do what Kafka's
does; then the rules on keys, ``Log.compact`` and its progress reports, the
faithful re-encoding of batches that lose records (headers, zstd,
LogAppendTime), the cleaner checkpoint (nothing new: nothing rewritten; lost:
only a longer clean), one cleaner per partition across Log objects, the
background thread, and readers in the same process while segments are
swapped under them.  Everything runs on a MemoryFileSystem and on disk.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

import strom
from strom import IllegalArgumentError, InvalidRecordError, ManualClock
from strom.codec.batch import COMPRESSION_ZSTD
from strom.storage import MemoryFileSystem
from strom.storage.cleaner import clean_partition
from strom.storage.partition import CLEANER_CHECKPOINT_FILE

T0 = 1_700_000_000_000
DEADLINE_S = 10.0


class Env:
    """A data directory (in memory or on disk) opened by any number of Log objects."""

    def __init__(self, kind: str, tmp_path) -> None:
        self.clock = ManualClock(T0)
        if kind == "memory":
            self.fs, self.path = MemoryFileSystem(), "/data"
        else:
            self.fs, self.path = None, str(tmp_path / "data")
        self.logs: list[strom.Log] = []
        self.log = self.open()

    def open(self, **kw) -> strom.Log:
        kw.setdefault("cleaner", False)
        log = strom.open(self.path, clock=self.clock, fs=self.fs, **kw)
        self.logs.append(log)
        return log

    def topic(self, config: dict, name: str = "t", partitions: int = 1) -> strom.Partition:
        self.log.create_topic(name, partitions, config={"cleanup.policy": "compact", **config})
        return self.log.partition(name, 0)

    def pdir(self, name: str = "t", partition: int = 0) -> str:
        return os.path.join(self.path, name, str(partition))

    def close(self) -> None:
        for log in reversed(self.logs):
            log.close()


@pytest.fixture(params=["memory", "directory"])
def env(request, tmp_path):
    e = Env(request.param, tmp_path)
    yield e
    e.close()


def read_all(p: strom.Partition, max_bytes: int = 1 << 20, offset: int | None = None) -> list[tuple]:
    """Every record from ``offset`` (the log start) to the end, following offsets (gaps and all)."""
    out: list[tuple] = []
    end = p.log_end_offset
    if offset is None:
        offset = p.log_start_offset
    while offset < end:
        batches = p.read(offset, max_bytes)
        if not batches:
            break
        for b in batches:
            out.extend(b.records(offset))
        offset = batches[-1].last_offset + 1
    return out


def state(p: strom.Partition) -> dict[bytes, tuple[int, bytes | None]]:
    """key -> (offset, value) of the last record read for it."""
    return {k: (o, v) for o, _ts, k, v, _h in read_all(p)}


def put(p: strom.Partition, pairs: list[tuple[bytes, bytes | None]], **kw) -> int:
    """Append ``(key, value)`` pairs as one batch; returns the first offset."""
    return p.append([v for _, v in pairs], [k for k, _ in pairs], acks=1, **kw)


def sizes(p: strom.Partition) -> list[int]:
    return [s.size for s in p.segments]


def dirty_ratio(p: strom.Partition) -> float:
    """The dirty ratio of the sealed segments, as the cleaner computes it."""
    cp = p.cleaner_checkpoint()
    dirty_offset = cp["dirty_offset"] if cp else 0
    sealed = p.segments[:-1]
    dirty = sum(s.size for s in sealed if s.base_offset >= dirty_offset)
    clean = sum(s.size for s in sealed if s.base_offset < dirty_offset)
    return dirty / (dirty + clean)


# -- the settings ---------------------------------------------------------------------------------


def test_min_cleanable_dirty_ratio(env):
    """Without force, a partition is cleaned only when its dirty ratio exceeds the setting."""
    p = env.topic({"min.cleanable.dirty.ratio": 0.5})
    for i in range(10):
        put(p, [(b"k%d" % i, b"v%d-0" % i)])
    put(p, [(b"k0", b"v0-1")])
    p.roll()
    assert dirty_ratio(p) == 1.0
    assert clean_partition(p) is not None  # nothing clean yet: all dirty
    assert state(p)[b"k0"] == (10, b"v0-1")
    assert p.cleaner_checkpoint()["dirty_offset"] == p.segments[-1].base_offset

    put(p, [(b"k1", b"v1-1")])
    p.roll()
    assert dirty_ratio(p) < 0.5
    before = read_all(p)
    assert clean_partition(p) is None
    assert read_all(p) == before  # untouched
    assert clean_partition(p, force=True) is not None  # force ignores the ratio

    # the forced clean made everything clean; add dirty bytes until the ratio passes 0.5
    put(p, [(b"k2", b"v2-1")])
    p.roll()
    assert dirty_ratio(p) < 0.5 and clean_partition(p) is None
    rounds = 0
    while dirty_ratio(p) <= 0.5:
        put(p, [(b"k3", b"v3-%d" % (rounds + 1))])
        p.roll()
        rounds += 1
    assert rounds > 0
    result = clean_partition(p)
    assert result is not None and result.records_kept < result.records_read
    assert state(p)[b"k2"][1] == b"v2-1"
    assert state(p)[b"k3"][1] == b"v3-%d" % rounds
    keys = [r[2] for r in read_all(p)]
    assert len(keys) == len(set(keys))  # one record per key below the clean end (= the end)


def test_min_compaction_lag(env):
    """Segments whose newest record is younger than min.compaction.lag.ms are not cleaned, nor any
    after them; once old enough they are."""
    p = env.topic({"min.compaction.lag.ms": 10_000, "min.cleanable.dirty.ratio": 0.01})
    put(p, [(b"a", b"1"), (b"a", b"2"), (b"b", b"1")])
    p.roll()
    assert clean_partition(p, force=True) is None  # the only sealed segment is too young
    assert clean_partition(p) is None
    assert [r[0] for r in read_all(p)] == [0, 1, 2]

    env.clock.advance(10_000)  # the first segment is old enough now
    young = put(p, [(b"a", b"3"), (b"a", b"4")])
    p.roll()
    assert young == p.segments[-2].base_offset
    assert clean_partition(p) is not None
    assert [r[0] for r in read_all(p)] == [1, 2, 3, 4]  # 0 went; the young segment is intact
    assert p.cleaner_checkpoint()["dirty_offset"] == young

    env.clock.advance(10_000)
    assert clean_partition(p, force=True) is not None
    assert [(r[0], r[3]) for r in read_all(p)] == [(2, b"1"), (4, b"4")]


def test_max_compaction_lag_forces_a_clean_and_rolls(env):
    """A dirty record older than max.compaction.lag.ms makes a clean due below the ratio; an
    append that much newer than the active segment's first record rolls it."""
    p = env.topic({"max.compaction.lag.ms": 5_000, "min.cleanable.dirty.ratio": 0.9})
    for i in range(10):
        put(p, [(b"k%d" % i, b"x" * 50)])
    p.roll()
    assert clean_partition(p, force=True) is not None
    base = put(p, [(b"k0", b"new")])
    p.roll()
    assert dirty_ratio(p) < 0.9
    assert clean_partition(p) is None
    env.clock.advance(5_000)
    assert clean_partition(p) is None  # not more than max.compaction.lag.ms yet
    env.clock.advance(1)
    assert clean_partition(p) is not None
    assert state(p)[b"k0"] == (base, b"new")
    assert 0 not in {r[0] for r in read_all(p)}

    # the active segment rolls when a batch comes more than max.compaction.lag.ms after its first
    first = put(p, [(b"k1", b"a")])
    env.clock.advance(5_000)
    put(p, [(b"k1", b"b")])
    assert p.segments[-1].base_offset == first  # not more than the lag: same segment
    env.clock.advance(1)
    third = put(p, [(b"k1", b"c")])
    assert p.segments[-1].base_offset == third
    assert p.segments[-2].base_offset == first

    # a delete-only topic ignores the setting for rolls
    env.log.create_topic("d", config={"max.compaction.lag.ms": 5_000})
    d = env.log.partition("d", 0)
    d.append([b"a"], acks=1)
    env.clock.advance(60_000)
    d.append([b"b"], acks=1)
    assert len(d.segments) == 1


def test_delete_retention_keeps_tombstones_until_the_horizon(env):
    """A tombstone survives the clean that first sees it and every clean until
    delete.retention.ms after that one; the next clean drops it (and the key has no record)."""
    p = env.topic({"delete.retention.ms": 10_000})
    put(p, [(b"a", b"1"), (b"b", b"1")])
    put(p, [(b"a", None)])
    p.roll()
    env.clock.advance(3_000)  # the horizon counts from the first clean, not the append
    first = clean_partition(p, force=True)
    assert first.tombstones_removed == 0
    assert state(p) == {b"a": (2, None), b"b": (1, b"1")}
    env.clock.advance(9_999)
    assert clean_partition(p, force=True).tombstones_removed == 0
    assert state(p)[b"a"] == (2, None)
    env.clock.advance(1)
    result = clean_partition(p, force=True)
    assert result.tombstones_removed == 1
    assert state(p) == {b"b": (1, b"1")}
    assert p.log_end_offset == 3
    assert p.verify() == []


def test_delete_retention_of_a_tombstone_in_a_segment_the_first_clean_left_alone(env):
    """The horizon starts even when the clean that first sees a tombstone has nothing to drop
    in its segment (the segment stays as it was)."""
    p = env.topic({"delete.retention.ms": 1_000})
    put(p, [(b"a", b"1"), (b"b", None)])
    p.roll()
    first = clean_partition(p, force=True)
    assert first.bytes_written == 0  # nothing superseded: the segment is kept as it is
    assert state(p) == {b"a": (0, b"1"), b"b": (1, None)}
    env.clock.advance(999)
    clean_partition(p, force=True)
    assert state(p) == {b"a": (0, b"1"), b"b": (1, None)}
    env.clock.advance(1)
    result = clean_partition(p, force=True)
    assert state(p) == {b"a": (0, b"1")}
    assert result.tombstones_removed == 1


def test_superseded_tombstone_goes_at_once(env):
    """A tombstone followed by a newer record of its key is dropped by the next clean, whatever
    delete.retention.ms says."""
    p = env.topic({"delete.retention.ms": 86_400_000})
    put(p, [(b"a", None), (b"a", b"back")])
    put(p, [(b"b", b"1")])
    p.roll()
    clean_partition(p, force=True)
    assert state(p) == {b"a": (1, b"back"), b"b": (2, b"1")}
    assert [r[0] for r in read_all(p)] == [1, 2]

    # a tombstone already in the clean part, superseded by a dirty record
    put(p, [(b"b", None)])
    p.roll()
    clean_partition(p, force=True)
    assert state(p)[b"b"] == (3, None)
    put(p, [(b"b", b"2")])
    p.roll()
    clean_partition(p, force=True)
    assert [(r[0], r[3]) for r in read_all(p)] == [(1, b"back"), (4, b"2")]


def test_segment_bytes_groups_small_cleaned_segments(env):
    """Consecutive cleaned segments whose sizes add up to at most segment.bytes become one;
    offsets, timestamps and records are preserved."""
    p = env.topic({"segment.bytes": 2048})
    for i in range(12):  # 12 segments of about 480 bytes: the first clean makes groups of 4
        env.clock.advance(1)
        put(p, [(b"k%d" % (j % 3), b"%d-%d;" % (i, j) + b"x" * 100) for j in range(4)])
        p.roll()
    before = read_all(p)
    count = len(p.segments)
    assert count == 13
    r1 = clean_partition(p, force=True)
    after1 = read_all(p)
    assert r1.segments_before == count and r1.segments_after == len(p.segments) < count
    assert all(size <= 2048 for size in sizes(p)[:-1])
    assert set(after1) < set(before)  # only removals; what stays is unchanged
    r2 = clean_partition(p, force=True)  # the small cleaned segments merge further
    assert len(p.segments) == 2 and r2.segments_after == 2 < r1.segments_after
    assert read_all(p) == after1
    latest = {}
    for rec in before:
        latest[rec[2]] = rec
    assert read_all(p) == sorted(latest.values())
    assert p.segments[0].base_offset == 0
    assert p.verify() == []


def test_compact_delete_policy_still_applies_retention(env):
    """cleanup.policy=compact,delete: compaction and time retention both apply."""
    p = env.topic({"cleanup.policy": "compact,delete", "retention.ms": 10_000})
    put(p, [(b"a", b"1"), (b"a", b"2"), (b"b", b"1")])
    p.roll()
    assert env.log.compact("t").partitions == 1
    assert [r[0] for r in read_all(p)] == [1, 2]
    env.clock.advance(10_001)
    put(p, [(b"c", b"1")])
    assert env.log.enforce_retention() == 1
    assert p.log_start_offset == 3
    assert read_all(p) == [(3, env.clock.time_ms(), b"c", b"1", None)]


# -- keys -----------------------------------------------------------------------------------------


def test_keyless_append_to_a_compacted_topic_is_refused(env):
    p = env.topic({})
    with pytest.raises(InvalidRecordError):
        p.append([b"v"], acks=1)
    with pytest.raises(InvalidRecordError):
        p.append([b"v", b"w"], [b"k", None], acks=1)
    assert p.log_end_offset == 0


def test_keyless_records_already_in_the_log_are_dropped(env):
    """A topic altered from delete to compact: its keyless records go at the first clean."""
    env.log.create_topic("t")
    p = env.log.partition("t", 0)
    p.append([b"n1", b"n2"], acks=1)  # a batch without keys
    p.append([b"a1", b"n3", b"b1"], [b"a", None, b"b"], acks=1)
    p.append([b"a2"], [b"a"], acks=1)
    env.log.alter_topic("t", {"cleanup.policy": "compact"})
    p.roll()
    env.log.compact("t")
    assert [(r[0], r[2], r[3]) for r in read_all(p)] == [(4, b"b", b"b1"), (5, b"a", b"a2")]


# -- Log.compact ----------------------------------------------------------------------------------


def test_compact_refuses_a_delete_only_topic(env):
    env.log.create_topic("d")
    with pytest.raises(IllegalArgumentError):
        env.log.compact("d")


def test_compact_roll_leaves_one_record_per_key(env):
    """roll=True seals the active segment first, so every partition ends with its latest
    record per key alone."""
    env.log.create_topic("t", 2, config={"cleanup.policy": "compact"})
    latest: dict[tuple[int, bytes], bytes | None] = {}
    for i in range(60):
        part, key = i % 2, b"k%d" % (i % 7)
        value = None if i % 11 == 0 else b"v%d" % i
        put(env.log.partition("t", part), [(key, value)])
        latest[part, key] = value
    env.log.compact("t")
    assert any(len(read_all(env.log.partition("t", i))) > 7 for i in range(2))  # active untouched
    result = env.log.compact("t", roll=True)
    assert result.partitions == 2
    for i in range(2):
        recs = read_all(env.log.partition("t", i))
        keys = [r[2] for r in recs]
        assert len(keys) == len(set(keys))
        assert {r[2]: r[3] for r in recs} == {k: v for (part, k), v in latest.items() if part == i}


def test_compact_progress_callable(env):
    """progress=callable gets (done, total) with done never going back and ending at total."""
    env.log.create_topic("t", 3, config={"cleanup.policy": "compact", "segment.bytes": 1024})
    for i in range(90):
        put(env.log.partition("t", i % 3), [(b"k%d" % (i % 5), b"x" * 40)])
    calls: list[tuple[int, int]] = []
    env.log.compact("t", roll=True, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 3
    dones = [d for d, _ in calls]
    assert dones == sorted(dones)
    assert all(0 <= d <= t for d, t in calls)
    assert calls[-1][0] == calls[-1][1] > 0


def test_compact_progress_bar(env, capsys):
    p = env.topic({})
    for i in range(20):
        put(p, [(b"k%d" % (i % 3), b"x" * 30)])
    env.log.compact("t", roll=True, progress=True)
    err = capsys.readouterr().err
    assert "compacting t" in err and "100%" in err


# -- re-encoding ----------------------------------------------------------------------------------


def test_reencoded_batches_keep_headers_compression_and_timestamps(env):
    """A batch that loses some records is re-encoded: the survivors keep their offsets,
    timestamps, keys, values and headers, and the batch its compression."""
    p = env.topic({})
    values = [b"value-%d" % i * 5 for i in range(6)]
    keys = [b"a", b"b", b"a", b"c", b"b", b"d"]
    headers = [[("h", b"%d" % i), ("empty", b""), ("none", None)] if i % 2 else None
               for i in range(6)]
    p.append(values, keys, timestamps=[T0 + 10 * i for i in range(6)], headers=headers,
             compression="zstd", acks=1)
    p.append([b"plain", None], [b"e", b"f"], timestamps=T0 - 5, acks=1)  # kept whole
    p.roll()
    before = {r[0]: r for r in read_all(p)}
    result = clean_partition(p, force=True)
    assert result.records_kept == 6 and result.bytes_written > 0
    after = read_all(p)
    assert [r[0] for r in after] == [2, 3, 4, 5, 6, 7]
    for rec in after:
        assert rec == before[rec[0]]
    assert [tuple(h) for h in after[1][4]] == [("h", b"3"), ("empty", b""), ("none", None)]
    batches = p.read(0)
    assert batches[0].base_offset == 2 and batches[0].compression == COMPRESSION_ZSTD
    assert batches[1].base_offset == 6 and batches[1].compression == 0


def test_reencoded_batches_keep_log_append_time(env):
    p = env.topic({"message.timestamp.type": "LogAppendTime"})
    put(p, [(b"a", b"1"), (b"b", b"1"), (b"c", b"1")], timestamps=5)
    env.clock.advance(777)
    put(p, [(b"a", b"2")])
    p.roll()
    before = {r[0]: r for r in read_all(p)}
    assert before[1][1] == T0 and before[3][1] == T0 + 777
    clean_partition(p, force=True)
    after = read_all(p)
    assert [r[0] for r in after] == [1, 2, 3]
    assert all(rec == before[rec[0]] for rec in after)
    batches = p.read(1)
    assert batches[0].base_offset == 1 and batches[0].log_append_time
    assert batches[0].max_timestamp == T0


# -- the cleaner checkpoint -----------------------------------------------------------------------


def test_second_clean_with_nothing_new_rewrites_nothing(env):
    p = env.topic({"segment.bytes": 4096})
    for i in range(4):
        put(p, [(b"k%d" % j, b"%d" % i) for j in range(5)])
        p.roll()
    first = clean_partition(p, force=True)
    assert first.bytes_written > 0 and len(p.segments) == 2
    layout = [(s.base_offset, s.size) for s in p.segments]
    records = read_all(p)
    second = clean_partition(p, force=True)
    assert second.records_read == 5 and second.bytes_read > 0
    assert second.bytes_written == 0 and second.records_kept == 5
    assert [(s.base_offset, s.size) for s in p.segments] == layout
    assert read_all(p) == records


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_lost_cleaner_checkpoint_only_makes_the_clean_longer(env, damage):
    """Two identical topics; one loses its cleaner checkpoint: its next clean maps more bytes,
    and both end with the same records."""
    parts = [env.topic({"segment.bytes": 4096}, name) for name in ("intact", "damaged")]
    for p in parts:
        for i in range(6):
            put(p, [(b"k%d" % ((i + j) % 8), b"%d-%d" % (i, j)) for j in range(4)])
            p.roll()
        clean_partition(p, force=True)
        put(p, [(b"k1", b"late"), (b"k9", b"new")])
        p.roll()
    path = os.path.join(env.pdir("damaged"), CLEANER_CHECKPOINT_FILE)
    fs = parts[1].fs
    if damage == "missing":
        fs.unlink(path)
    else:
        fs.write_atomic(path, b"\x00not a checkpoint")
    assert parts[1].cleaner_checkpoint() is None
    totals = []
    for p in parts:
        seen: list[int] = []
        clean_partition(p, force=True, progress=lambda _done, total, seen=seen: seen.append(total))
        totals.append(seen[-1])
    assert totals[1] > totals[0]
    recs = [read_all(p) for p in parts]
    assert recs[0] == recs[1]
    assert {r[2]: r[3] for r in recs[0]}[b"k1"] == b"late"
    assert parts[1].cleaner_checkpoint()["dirty_offset"] == \
        parts[0].cleaner_checkpoint()["dirty_offset"] == parts[1].segments[-1].base_offset


def test_a_clean_that_dies_before_its_checkpoint_after_merging_across_the_dirty_offset(env,
                                                                                     monkeypatch):
    """A clean merges the clean head with the dirty tail into one segment, then dies before
    writing its checkpoint: the dirty offset now lies inside that segment, whose records past
    it the next clean's map does not cover.  The next clean keeps every key's latest."""
    p = env.topic({"segment.bytes": 100_000})
    for i in range(20):
        put(p, [(b"head-%d" % i, b"a")])
    p.roll()
    clean_partition(p, force=True)
    for i in range(20):
        put(p, [(b"tail-%d" % i, b"b")])
    p.roll()
    # The same as a crash between the last swap and the checkpoint (or a truncation meanwhile).
    monkeypatch.setattr(p, "write_cleaner_checkpoint", lambda *args, **kwargs: False)
    clean_partition(p, force=True)
    monkeypatch.undo()
    assert [s.base_offset for s in p.segments] == [0, 40]  # one segment across offset 20
    assert p.cleaner_checkpoint()["dirty_offset"] == 20
    for i in range(5):
        put(p, [(b"late-%d" % i, b"c")])
    p.roll()
    clean_partition(p, force=True)
    assert sorted(state(p)) == sorted([b"head-%d" % i for i in range(20)]
                                      + [b"tail-%d" % i for i in range(20)]
                                      + [b"late-%d" % i for i in range(5)])


# -- one cleaner per partition --------------------------------------------------------------------


def test_one_cleaner_per_partition(env):
    """While one Log object holds a partition's cleaner lock, another's clean skips it, or
    waits for it with wait=True."""
    p = env.topic({})
    put(p, [(b"a", b"1"), (b"a", b"2")])
    p.roll()
    other = env.open()
    p2 = other.partition("t", 0)
    assert p.try_cleaner_lock()
    try:
        assert clean_partition(p2, force=True) is None
        assert len(read_all(p2)) == 2
        results = []
        waiter = threading.Thread(target=lambda: results.append(
            clean_partition(p2, force=True, wait=True)))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive() and results == []  # blocked on the lock
    finally:
        p.release_cleaner_lock()
    waiter.join(DEADLINE_S)
    assert not waiter.is_alive()
    assert results[0] is not None and results[0].records_kept == 1
    assert [r[0] for r in read_all(p)] == [1]
    assert [r[0] for r in read_all(p2)] == [1]


# -- the background cleaner -----------------------------------------------------------------------


def test_background_cleaner_compacts_due_partitions(env):
    log = env.open(cleaner=True, cleaner_backoff_ms=50)
    log.create_topic("bg", config={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 0.1})
    p = log.partition("bg", 0)
    for i in range(30):
        put(p, [(b"k%d" % (i % 3), b"v%d" % i)])
    p.roll()
    deadline = time.monotonic() + DEADLINE_S
    while p.cleaner_checkpoint() is None:
        assert time.monotonic() < deadline, "the background cleaner never cleaned"
        time.sleep(0.01)
    assert [(r[0], r[3]) for r in read_all(p)] == [(27, b"v27"), (28, b"v28"), (29, b"v29")]
    assert log.cleaner.cleans >= 1
    assert log.cleaner.errors == {}
    thread = log.cleaner._thread
    log.close()
    assert not thread.is_alive()


# -- readers in the same process ------------------------------------------------------------------


def test_reader_thread_while_compacting(env):
    """A thread reading the whole partition over and over while the main thread appends, rolls
    and compacts sees only true records, in increasing offsets."""
    p = env.topic({"segment.bytes": 1024, "delete.retention.ms": 0})
    history: dict[int, tuple] = {}
    stop = threading.Event()
    errors: list[BaseException] = []
    passes = [0]

    def reader() -> None:
        try:
            while not stop.is_set():
                last = -1
                for o, ts, k, v, _h in read_all(p, max_bytes=200):
                    assert o > last, (o, last)
                    assert (k, v, ts) == history[o], o
                    last = o
                passes[0] += 1
        except BaseException as exc:  # noqa: BLE001 -- reported by the main thread
            errors.append(exc)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the threads finely: reads land inside swaps
    t = threading.Thread(target=reader)
    t.start()
    try:
        for round_ in range(60):
            for j in range(5):
                i = round_ * 5 + j
                pairs = [(b"k%d" % ((i + n) % 9), None if (i + n) % 13 == 0 else b"v%d" % i)
                         for n in range(3)]
                offset = p.log_end_offset  # the only writer: it knows the next offset
                for n, (k, v) in enumerate(pairs):
                    history[offset + n] = (k, v, env.clock.time_ms())
                put(p, pairs)
            if round_ % 3 == 0:
                p.roll()
            start = passes[0]
            env.log.compact("t", roll=round_ % 4 == 0)
            env.clock.advance(1)
            deadline = time.monotonic() + DEADLINE_S
            while passes[0] < start + 2 and not errors:  # a whole pass over this state
                assert time.monotonic() < deadline, "the reader is stuck"
                time.sleep(0.001)
            if errors:
                break
    finally:
        stop.set()
        t.join(DEADLINE_S)
        sys.setswitchinterval(switch)
    assert not errors, errors[0]
    assert passes[0] >= 80
    latest: dict[bytes, int] = {}
    for o in sorted(history):
        latest[history[o][0]] = o
    env.log.compact("t", roll=True)
    final = state(p)
    expect = {k: (o, history[o][1]) for k, o in latest.items() if history[o][1] is not None}
    # tombstones stay one clean (delete.retention.ms=0: the next clean drops them)
    assert {k: v for k, v in final.items() if v[1] is not None} == expect
    env.log.compact("t")
    assert state(p) == expect
    assert p.verify() == []


@pytest.mark.parametrize("reader", ["same log", "other log"])
def test_reader_inside_a_replaced_segment(env, reader):
    """Batches read from a segment, then the segment is replaced by compaction (through the
    reader's Log object or another one): reading on from the next offset gives the right
    records."""
    writer = env.topic({"segment.bytes": 4096})
    p = writer if reader == "same log" else env.open().partition("t", 0)
    history = {}
    for i in range(40):
        o = put(writer, [(b"k%d" % (i % 4), b"v%d" % i)])
        history[o] = (b"k%d" % (i % 4), b"v%d" % i)
        if i % 10 == 9:
            writer.roll()
    put(writer, [(b"other", b"x")])
    first = p.read(0, 100)  # a few batches of the first segment
    assert first and first[-1].last_offset < 9
    old_segment = p.segments[0]
    assert env.log.compact("t").segments_after == 2
    assert writer.segments[0] is not old_segment  # replaced under the reader
    got = [r for b in first for r in b.records()]
    offset = first[-1].last_offset + 1
    got.extend(read_all(p, 100, offset))
    offsets = [r[0] for r in got]
    assert offsets == sorted(set(offsets))
    for o, _ts, k, v, _h in got:
        assert (k, v) == history.get(o, (b"other", b"x"))
    if reader == "same log":
        # after the read position, only each key's latest is left: 36..39 and the last record
        assert offsets[len(first):] == [36, 37, 38, 39, 40]
    else:
        # another Log object may go on reading the replaced file it has open (its records are
        # true at their offsets), then the new one; either way each key's latest is there
        assert {36, 37, 38, 39, 40} <= set(offsets)


