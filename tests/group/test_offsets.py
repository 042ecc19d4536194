"""Tests for committed offsets (src/strom/group/offsets.py).

Layout: the OffsetStore's operations (commit, committed, group_offsets,
groups, delete), atomicity of a commit (one batch; a torn commit leaves
none of it), sharing (threads, another Log object, other processes), and
damage: a malformed record (a table of cases) or corrupt bytes in
``__consumer_offsets`` raise a corruption error instead of giving a wrong
offset.

Tests run on ``strom.open(":memory:")`` and on a directory where both
apply; crash and byte-damage tests need files and use a directory.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import shutil
import time
from pathlib import Path

import msgpack
import childproc  # tests/childproc.py
import pytest

import strom
from strom import OffsetAndMetadata, TopicPartition
from strom.errors import CorruptMetadataError, CorruptRecordError
from strom.group.offsets import OFFSETS_TOPIC, OffsetStore, offset_store
from strom.storage import MemoryFileSystem

HERE = Path(__file__).resolve().parent
CHILD_SCRIPT = HERE / "offsets_child.py"
CHILD_TIMEOUT_S = childproc.CHILD_TIMEOUT_S
CORRUPT = (CorruptMetadataError, CorruptRecordError)

T0, T1, T2 = (TopicPartition("t", i) for i in range(3))
U0 = TopicPartition("u", 0)


@pytest.fixture(params=["memory", "directory"])
def log(request, tmp_path):
    lg = strom.open(":memory:" if request.param == "memory" else tmp_path / "data")
    yield lg
    lg.close()


@pytest.fixture(params=["memory", "directory"])
def two_logs(request, tmp_path):
    """Two Log objects on one log: a shared memory tree, or one directory."""
    if request.param == "memory":
        fs = MemoryFileSystem()
        a, b = strom.open("/data", fs=fs), strom.open("/data", fs=fs)
    else:
        a, b = strom.open(tmp_path / "data"), strom.open(tmp_path / "data")
    yield a, b
    b.close()
    a.close()


def offsets_partition(lg) -> strom.Partition:
    return lg.partition(OFFSETS_TOPIC, 0)


def batches(lg) -> list:
    p = offsets_partition(lg)
    return p.read(p.log_start_offset, max_bytes=1 << 30)


def key(group, topic, partition, kind="offset") -> bytes:
    return msgpack.packb([kind, group, topic, partition])


def value(offset, metadata="", epoch=-1, ts=0) -> bytes:
    return msgpack.packb([offset, metadata, epoch, ts])


# -- the store's operations -----------------------------------------------------------------


def test_commit_and_committed(log):
    store = OffsetStore(log)
    store.commit("g", {T0: OffsetAndMetadata(5), T1: OffsetAndMetadata(7, "seven", 3)})
    assert store.committed("g", T0) == OffsetAndMetadata(5, "", -1)
    assert store.committed("g", T1) == OffsetAndMetadata(7, "seven", 3)
    assert store.committed("g", T2) is None
    assert store.committed("other", T0) is None
    store.commit("g", {T0: OffsetAndMetadata(2)})  # the latest commit counts, even backwards
    assert store.committed("g", T0).offset == 2
    assert store.committed("g", T1).offset == 7


def test_reading_creates_nothing(log):
    store = OffsetStore(log)
    assert store.committed("g", T0) is None
    assert store.group_offsets("g") == {}
    assert store.groups() == []
    store.delete("g")
    store.commit("g", {})
    assert OFFSETS_TOPIC not in log.topics()


def test_the_offsets_topic_is_compacted(log):
    OffsetStore(log).commit("g", {T0: OffsetAndMetadata(1)})
    assert log.describe_topic(OFFSETS_TOPIC).config["cleanup.policy"] == "compact"
    assert log.topics()[OFFSETS_TOPIC].partitions == 1


def test_group_offsets_and_groups(log):
    store = OffsetStore(log)
    store.commit("b", {T0: OffsetAndMetadata(1)})
    store.commit("a", {T1: OffsetAndMetadata(2), U0: OffsetAndMetadata(3, "u")})
    assert store.groups() == ["a", "b"]
    assert store.group_offsets("a") == {T1: OffsetAndMetadata(2), U0: OffsetAndMetadata(3, "u")}
    snapshot = store.group_offsets("a")
    snapshot[T2] = OffsetAndMetadata(9)
    assert T2 not in store.group_offsets("a")
    assert store.group_offsets("missing") == {}


def test_delete_partitions_and_groups(log):
    store = OffsetStore(log)
    store.commit("g", {T0: OffsetAndMetadata(1), T1: OffsetAndMetadata(2), T2: OffsetAndMetadata(3)})
    store.commit("h", {T0: OffsetAndMetadata(4)})
    store.delete("g", [T1])
    assert store.group_offsets("g") == {T0: OffsetAndMetadata(1), T2: OffsetAndMetadata(3)}
    store.delete("g")
    assert store.group_offsets("g") == {}
    assert store.committed("g", T0) is None
    assert store.groups() == ["h"]
    store.delete("missing")
    store.delete("h", [T2])  # never committed: nothing changes
    assert store.group_offsets("h") == {T0: OffsetAndMetadata(4)}
    store.commit("g", {T0: OffsetAndMetadata(8)})  # a deleted group can come back
    assert store.groups() == ["g", "h"]
    fresh = OffsetStore(log)  # deletions are in the log, not only in memory
    assert fresh.group_offsets("g") == {T0: OffsetAndMetadata(8)}
    assert fresh.group_offsets("h") == {T0: OffsetAndMetadata(4)}


@pytest.mark.parametrize("acks", [0, 1, "all", -1])
def test_commit_acks(log, acks):
    store = OffsetStore(log)
    store.commit("g", {T0: OffsetAndMetadata(3)}, acks=acks)
    assert OffsetStore(log).committed("g", T0).offset == 3


def test_offset_store_is_one_per_log(two_logs):
    a, b = two_logs
    assert offset_store(a) is offset_store(a)
    assert offset_store(a) is not offset_store(b)


def test_group_and_topic_names_are_kept_exactly(log):
    store = OffsetStore(log)
    odd = {TopicPartition("t.with-dots_and", 9999): OffsetAndMetadata(1, "\u00e9\u00e8 \x00 meta")}
    store.commit("gr\u00fcppe with spaces", odd)
    fresh = OffsetStore(log)
    assert fresh.group_offsets("gr\u00fcppe with spaces") == odd


def test_commits_survive_reopening(tmp_path):
    path = tmp_path / "data"
    with strom.open(path) as lg:
        store = OffsetStore(lg)
        store.commit("g", {T0: OffsetAndMetadata(5, "m", 2), T1: OffsetAndMetadata(6)})
        store.delete("g", [T1])
        store.commit("h", {U0: OffsetAndMetadata(1)})
    with strom.open(path) as lg:
        store = OffsetStore(lg)
        assert store.group_offsets("g") == {T0: OffsetAndMetadata(5, "m", 2)}
        assert store.groups() == ["g", "h"]


# -- atomicity ---------------------------------------------------------------------------------


def test_a_commit_of_many_partitions_is_one_batch(log):
    store = OffsetStore(log)
    store.commit("g", {T0: OffsetAndMetadata(1)})
    before = len(batches(log))
    many = {TopicPartition(f"topic-{i % 7}", i): OffsetAndMetadata(i, "x" * (i % 50))
            for i in range(2000)}
    store.commit("g", many)
    assert len(batches(log)) == before + 1
    assert OffsetStore(log).group_offsets("g") == {T0: OffsetAndMetadata(1), **many}


def big_commit(n: int, metadata_bytes: int) -> dict[TopicPartition, OffsetAndMetadata]:
    return {TopicPartition(f"topic-{i % 13}", i): OffsetAndMetadata(10_000 + i, "m" * metadata_bytes)
            for i in range(n)}


@pytest.mark.parametrize("partitions, metadata_bytes", [(50, 0), (12_000, 100)],
                         ids=["50-partitions", "12000-partitions-over-1MiB"])
def test_a_torn_commit_leaves_none_of_it(tmp_path, partitions, metadata_bytes):
    """A commit cut short by a crash (here: its file cut inside the append) is all gone."""
    path = tmp_path / "data"
    first = {TopicPartition(f"topic-{i % 13}", i): OffsetAndMetadata(i) for i in range(partitions)}
    second = big_commit(partitions, metadata_bytes)
    lg = strom.open(path)
    try:
        store = OffsetStore(lg)
        store.commit("g", first, acks=1)
        appended_from = offsets_partition(lg).log_end_offset
        store.commit("g", second, acks=1)
        new = [b for b in batches(lg) if b.base_offset >= appended_from]
        assert new
        start, end = new[0].position, new[-1].position + new[-1].size
        # A copy of the directory as a kill -9 would leave it (nothing was closed).
        pristine = tmp_path / "pristine"
        shutil.copytree(path, pristine)
    finally:
        lg.close()
    segment = pristine / OFFSETS_TOPIC / "0" / "00000000000000000000.log"
    assert segment.stat().st_size == end
    cuts = sorted({start + 1, start + (end - start) // 2, end - 1}
                  | {b.position + b.size // 2 for b in new})
    for cut in cuts:
        crashed = tmp_path / f"crashed-{cut}"
        shutil.copytree(pristine, crashed)
        with open(crashed / OFFSETS_TOPIC / "0" / segment.name, "r+b") as f:
            f.truncate(cut)
        with strom.open(crashed) as lg:
            got = OffsetStore(lg).group_offsets("g")
            assert got == first, (f"cut at byte {cut} of a commit at {start}..{end} in "
                                  f"{len(new)} batch(es): {sum(got.get(tp) == o for tp, o in second.items())} "
                                  f"of its {len(second)} offsets survived")
        shutil.rmtree(crashed)


# -- sharing -------------------------------------------------------------------------------------


def test_commits_by_another_log_object_are_seen(two_logs):
    a, b = two_logs
    sa, sb = OffsetStore(a), OffsetStore(b)
    assert sb.committed("g", T0) is None  # b looked before the topic existed
    sa.commit("g", {T0: OffsetAndMetadata(4, "from a")})
    assert sb.committed("g", T0) == OffsetAndMetadata(4, "from a")
    sb.commit("g", {T0: OffsetAndMetadata(5), T1: OffsetAndMetadata(1)})
    assert sa.group_offsets("g") == {T0: OffsetAndMetadata(5), T1: OffsetAndMetadata(1)}
    sa.delete("g", [T0])
    assert sb.group_offsets("g") == {T1: OffsetAndMetadata(1)}
    assert sb.groups() == ["g"]


def test_threads_commit_through_one_store(log):
    store = offset_store(log)
    n = 100

    def work(i):
        for k in range(1, n + 1):
            store.commit("g", {TopicPartition("t", i): OffsetAndMetadata(k)}, acks=1)
            assert store.committed("g", TopicPartition("t", i)).offset == k

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(work, i) for i in range(4)]:
            future.result(timeout=CHILD_TIMEOUT_S)
    assert OffsetStore(log).group_offsets("g") == {TopicPartition("t", i): OffsetAndMetadata(n)
                                                   for i in range(4)}
    assert len(batches(log)) == 4 * n


children = childproc.children_fixture(CHILD_SCRIPT)


def test_commits_by_another_process_are_seen(tmp_path, children):
    path = tmp_path / "data"
    with strom.open(path) as lg:
        store = OffsetStore(lg)
        assert store.committed("g", T0) is None  # no offsets topic yet
        children("commit", path, "g", "t", 0, 41, "from child").finish()
        assert store.committed("g", T0) == OffsetAndMetadata(41, "from child")
        children("commit", path, "g", "t", 0, 42, "again").finish()
        assert store.committed("g", T0) == OffsetAndMetadata(42, "again")
        store.commit("g", {T1: OffsetAndMetadata(7, "from parent")})
        shown = json.loads(children("show", path, "g").finish())
        assert shown == {"t-0": [42, "again"], "t-1": [7, "from parent"]}


def test_processes_committing_at_once(tmp_path, children):
    n = 300
    path = tmp_path / "data"
    with strom.open(path) as lg:
        OffsetStore(lg).commit("g", {T2: OffsetAndMetadata(0)})  # the topic exists
        writers = [children("count", path, "g", "t", p, n) for p in (0, 1)]
        for w in writers:
            assert w.line() == "ready"
        for w in writers:
            w.send("go")
        store = OffsetStore(lg)
        last = {T0: 0, T1: 0}
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while last != {T0: n, T1: n}:
            assert time.monotonic() < deadline, last
            for tp in (T0, T1):
                got = store.committed("g", tp)
                now = 0 if got is None else got.offset
                assert now >= last[tp], f"{tp} went back from {last[tp]} to {now}"
                last[tp] = now
        for w in writers:
            assert w.finish() == ""
        assert len(batches(lg)) == 2 * n + 1
        assert OffsetStore(lg).group_offsets("g") == {T0: OffsetAndMetadata(n),
                                                      T1: OffsetAndMetadata(n),
                                                      T2: OffsetAndMetadata(0)}


# -- damage ---------------------------------------------------------------------------------------------


MALFORMED = {
    "key-not-msgpack": ([b"\xc1"], [value(5)]),
    "key-truncated-msgpack": ([key("g", "t", 0)[:-2]], [value(5)]),
    "key-not-an-array": ([msgpack.packb("offset")], [value(5)]),
    "key-map": ([msgpack.packb({"offset": 1})], [value(5)]),
    "key-three-fields": ([msgpack.packb(["offset", "g", "t"])], [value(5)]),
    "key-five-fields": ([msgpack.packb(["offset", "g", "t", 0, 1])], [value(5)]),
    "key-partition-str": ([key("g", "t", "0")], [value(5)]),
    "key-partition-negative": ([key("g", "t", -1)], [value(5)]),
    "key-partition-float": ([key("g", "t", 0.0)], [value(5)]),
    "key-group-int": ([key(7, "t", 0)], [value(5)]),
    "key-group-none": ([key(None, "t", 0)], [value(5)]),
    "key-topic-bytes": ([key("g", b"t", 0)], [value(5)]),
    "key-topic-int": ([key("g", 3, 0)], [value(5)]),
    "value-not-msgpack": ([key("g", "t", 0)], [b"\xc1"]),
    "value-truncated-msgpack": ([key("g", "t", 0)], [value(5)[:-1]]),
    "value-int": ([key("g", "t", 0)], [msgpack.packb(5)]),
    "value-map": ([key("g", "t", 0)], [msgpack.packb({"offset": 5})]),
    "value-one-field": ([key("g", "t", 0)], [msgpack.packb([5])]),
    "value-offset-str": ([key("g", "t", 0)], [value("5")]),
    "value-offset-float": ([key("g", "t", 0)], [value(5.0)]),
    "value-offset-bool": ([key("g", "t", 0)], [value(True)]),
    "value-offset-none": ([key("g", "t", 0)], [value(None)]),
    "value-offset-negative": ([key("g", "t", 0)], [value(-5)]),
    "value-metadata-bytes": ([key("g", "t", 0)], [value(5, b"meta")]),
    "value-epoch-str": ([key("g", "t", 0)], [value(5, "", "x")]),
    "keyless-record": (None, [value(5)]),
    "one-keyless-record": ([key("other", "t", 1), None], [value(5), value(6)]),
}


VALID = {T0: OffsetAndMetadata(1), T1: OffsetAndMetadata(2)}
REPORTED = object()


def outcome(read):
    """What a read gives, or REPORTED when it raises a corruption error."""
    try:
        return read()
    except CORRUPT:
        return REPORTED


def store_with_malformed_record(case):
    """A log in memory: valid commits (VALID, read once), then one malformed record."""
    lg = strom.open(":memory:")
    store = OffsetStore(lg)
    store.commit("g", VALID)
    assert store.group_offsets("g") == VALID  # caught up before the damage
    keys, values = MALFORMED[case]
    if keys is None or None in keys:
        # A compacted topic refuses keyless records; one whose policy was changed keeps them.
        with pytest.raises(strom.InvalidRecordError, match="needs a key"):
            offsets_partition(lg).append(values, keys, acks=1)
        lg.alter_topic(OFFSETS_TOPIC, {"cleanup.policy": "delete"})
        offsets_partition(lg).append(values, keys, acks=1)
        lg.alter_topic(OFFSETS_TOPIC, {"cleanup.policy": "compact"})
    else:
        offsets_partition(lg).append(values, keys, acks=1)
    return lg, store


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_record_never_gives_a_wrong_offset(case):
    """Whatever a reader does with it, it never answers with an offset nobody committed."""
    lg, store = store_with_malformed_record(case)
    try:
        for reader in (store, OffsetStore(lg)):
            for tp in (T0, T1, T2, TopicPartition("t", -1)):
                got = outcome(functools.partial(reader.committed, "g", tp))
                assert got is REPORTED or got == VALID.get(tp), (tp, got)
            got = outcome(functools.partial(reader.group_offsets, "g"))
            assert got is REPORTED or got == VALID
            got = outcome(reader.groups)
            assert got is REPORTED or got in (["g"], ["g", "other"]), got
    finally:
        lg.close()


def test_records_of_other_kinds_are_skipped(log):
    """Other group records may share the topic later: an older reader passes over them."""
    store = OffsetStore(log)
    store.commit("g", {T0: OffsetAndMetadata(1)})
    offsets_partition(log).append(
        [msgpack.packb(["member", "g", "id-1"]), msgpack.packb({"anything": 1}), value(9),
         msgpack.packb(["assignment", "g", "t", 0]), None],
        [key("g", "t", 0, kind="member"), key("g", "t", 0, kind="group-meta"),
         msgpack.packb(["group", "g"]), msgpack.packb(["assignment", "g", "t", 0, 1, 2]),
         msgpack.packb(["generation", "g"])], acks=1)
    store.commit("g", {T1: OffsetAndMetadata(2)})
    for reader in (store, OffsetStore(log)):
        assert reader.group_offsets("g") == {T0: OffsetAndMetadata(1), T1: OffsetAndMetadata(2)}


def test_a_tombstone_deletes_the_offset(log):
    store = OffsetStore(log)
    store.commit("g", {T0: OffsetAndMetadata(1), T1: OffsetAndMetadata(2)})
    offsets_partition(log).append([None], [key("g", "t", 0)], acks=1)
    assert OffsetStore(log).group_offsets("g") == {T1: OffsetAndMetadata(2)}
    assert store.committed("g", T0) is None


@pytest.mark.parametrize("which", ["first", "last"])
def test_corrupt_bytes_are_reported_not_used(tmp_path, which):
    path = tmp_path / "data"
    with strom.open(path) as lg:
        store = OffsetStore(lg)
        for i in range(1, 4):
            store.commit("g", {T0: OffsetAndMetadata(i * 10), T1: OffsetAndMetadata(i)})
        found = batches(lg)
        assert len(found) == 3
        victim = found[0] if which == "first" else found[-1]
        segment = path / OFFSETS_TOPIC / "0" / "00000000000000000000.log"
    with open(segment, "r+b") as f:  # one byte of the batch's records
        f.seek(victim.position + victim.size - 2)
        byte = f.read(1)
        f.seek(victim.position + victim.size - 2)
        f.write(bytes([byte[0] ^ 0x40]))
    with strom.open(path) as lg:
        store = OffsetStore(lg)
        with pytest.raises(CORRUPT):
            store.committed("g", T0)
        with pytest.raises(CORRUPT):
            store.group_offsets("g")
