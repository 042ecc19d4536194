"""The Log: a data directory of topics (src/strom/storage/log.py)."""

from __future__ import annotations

import os

import pytest

import strom
from strom import (CorruptMetadataError, InvalidConfigError, InvalidTopicError, LogClosedError,
                   ManualClock, OffsetOutOfRangeError, StorageError, StromError, TopicExistsError,
                   UnknownTopicOrPartitionError)
from strom.config import MAX_PARTITIONS
from strom.records import PartitionInfo, TopicDescription, TopicInfo
from strom.storage.checkpoint import decode_meta, encode_meta

T0 = 1_700_000_000_000


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


@pytest.fixture
def log(data_dir, clock):
    with strom.open(data_dir, clock=clock) as lg:
        yield lg


def entries(path):
    return sorted(os.listdir(path))


# -- opening ------------------------------------------------------------------------


def test_open_creates_directory_and_marker(data_dir, clock):
    assert not os.path.exists(data_dir)
    log = strom.open(data_dir, clock=clock)
    try:
        assert os.path.isdir(data_dir)
        assert "~strom.json" in os.listdir(data_dir)
        with open(os.path.join(data_dir, "~strom.json"), "rb") as f:
            meta = decode_meta("log", f.read())
        assert meta["format_version"] == 1
        assert meta["created_ms"] == T0
        assert log.topics() == {}
        assert not log.closed
    finally:
        log.close()
    assert log.closed


def test_marker_not_rewritten_on_reopen(data_dir, clock):
    strom.open(data_dir, clock=clock).close()
    path = os.path.join(data_dir, "~strom.json")
    before = open(path, "rb").read()
    clock.advance(5000)
    strom.open(data_dir, clock=clock).close()
    assert open(path, "rb").read() == before


def test_newer_format_version_refused(data_dir, clock):
    strom.open(data_dir, clock=clock).close()
    with open(os.path.join(data_dir, "~strom.json"), "wb") as f:
        f.write(encode_meta("log", {"format_version": 2, "created_ms": T0}))
    with pytest.raises(StromError, match="format version"):
        strom.open(data_dir, clock=clock)


def test_data_dir_that_is_a_file(tmp_path, clock):
    path = tmp_path / "afile"
    path.write_bytes(b"not a directory")
    with pytest.raises(StorageError):
        strom.open(str(path), clock=clock)
    assert path.read_bytes() == b"not a directory"


def test_data_dir_below_a_file(tmp_path, clock):
    path = tmp_path / "afile"
    path.write_bytes(b"x")
    with pytest.raises(StorageError):
        strom.open(str(path / "data"), clock=clock)


def test_open_accepts_pathlike(tmp_path, clock):
    with strom.open(tmp_path / "data", clock=clock) as log:
        log.create_topic("t")
        assert os.path.isdir(tmp_path / "data" / "t")


def test_open_rejects_non_path(clock):
    with pytest.raises(TypeError):
        strom.open(42, clock=clock)  # type: ignore[arg-type]


def test_context_manager_closes(data_dir, clock):
    with strom.open(data_dir, clock=clock) as log:
        log.create_topic("t")
        p = log.partition("t", 0)
    assert log.closed
    with pytest.raises(LogClosedError):
        log.topics()
    with pytest.raises(LogClosedError):
        p.append([b"x"])


def test_close_is_idempotent(data_dir, clock):
    log = strom.open(data_dir, clock=clock)
    log.close()
    log.close()


@pytest.mark.parametrize("call", [
    lambda log: log.topics(),
    lambda log: log.create_topic("u"),
    lambda log: log.describe_topic("t"),
    lambda log: log.alter_topic("t", {"segment.bytes": 1024}),
    lambda log: log.delete_topic("t"),
    lambda log: log.partition("t", 0),
    lambda log: log.topic("t"),
    lambda log: log.enforce_retention(),
    lambda log: list(log.partitions()),
])
def test_closed_log_refuses(data_dir, clock, call):
    log = strom.open(data_dir, clock=clock)
    log.create_topic("t")
    log.close()
    with pytest.raises(LogClosedError):
        call(log)


# -- topic lifecycle ----------------------------------------------------------------------


def test_create_topic(log, data_dir):
    info = log.create_topic("orders", partitions=3, config={"segment.bytes": 1024})
    assert isinstance(info, TopicInfo)
    assert info.name == "orders" and info.partitions == 3
    assert info.config == {"segment.bytes": 1024}
    assert len(info.topic_id) == 32 and int(info.topic_id, 16) >= 0
    assert log.topics() == {"orders": info}
    assert entries(os.path.join(data_dir, "orders")) == ["0", "1", "2", "topic.json"]
    for i in range(3):
        assert "00000000000000000000.log" in os.listdir(os.path.join(data_dir, "orders", str(i)))
        p = log.partition("orders", i)
        assert p.partition == i and p.topic == "orders"
        assert (p.log_start_offset, p.log_end_offset) == (0, 0)
    meta = decode_meta("topic", open(os.path.join(data_dir, "orders", "topic.json"), "rb").read())
    assert meta["name"] == "orders" and meta["partitions"] == 3
    assert meta["config"] == {"segment.bytes": 1024}
    assert meta["topic_id"] == info.topic_id
    assert meta["created_ms"] == T0


def test_create_topic_defaults(log):
    info = log.create_topic("t")
    assert info.partitions == 1 and info.config == {}


def test_topics_sorted(log):
    for name in ["b", "a", "c"]:
        log.create_topic(name)
    assert list(log.topics()) == ["a", "b", "c"]


def test_topic_ids_unique(log):
    a = log.create_topic("a")
    b = log.create_topic("b")
    assert a.topic_id != b.topic_id


def test_topic_exists(log, data_dir):
    log.create_topic("t", 2)
    before = entries(data_dir)
    with pytest.raises(TopicExistsError):
        log.create_topic("t", 5)
    with pytest.raises(StromError):
        log.create_topic("t")
    assert entries(data_dir) == before
    assert log.topics()["t"].partitions == 2


def test_topic_exists_as_stray_folder(log, data_dir):
    os.mkdir(os.path.join(data_dir, "stray"))  # a folder without topic.json is not a topic
    assert "stray" not in log.topics()
    with pytest.raises(TopicExistsError):
        log.create_topic("stray")


def test_describe_topic(log):
    log.create_topic("t", 2, config={"retention.ms": 1000})
    log.partition("t", 1).append([b"a", b"b", b"c"], acks=1)
    d = log.describe_topic("t")
    assert isinstance(d, TopicDescription)
    assert d.name == "t" and d.topic_id == log.topics()["t"].topic_id
    assert d.config["retention.ms"] == 1000
    assert d.config["segment.bytes"] == 128 * 1024 * 1024  # every value, not only overrides
    assert len(d.partitions) == 2
    p0, p1 = d.partitions
    assert isinstance(p0, PartitionInfo)
    assert p0 == PartitionInfo(0, 0, 0, 0, 1)
    assert (p1.partition, p1.log_start_offset, p1.log_end_offset, p1.segments) == (1, 0, 3, 1)
    assert p1.size_bytes > 0
    assert d.size_bytes == p1.size_bytes


def test_describe_unknown(log):
    with pytest.raises(UnknownTopicOrPartitionError):
        log.describe_topic("nope")


def test_alter_topic(log, data_dir, clock):
    log.create_topic("t", config={"retention.ms": 1000, "segment.bytes": 4096})
    info = log.alter_topic("t", {"segment.bytes": 1024})
    assert info.config == {"retention.ms": 1000, "segment.bytes": 1024}  # the other key stays
    assert log.describe_topic("t").config["segment.bytes"] == 1024
    assert log.topic("t").config.segment_bytes == 1024
    assert log.partition("t", 0).config.segment_bytes == 1024
    log.close()
    with strom.open(data_dir, clock=clock) as log2:
        assert log2.topics()["t"].config == {"retention.ms": 1000, "segment.bytes": 1024}
        assert log2.partition("t", 0).config.segment_bytes == 1024


def test_alter_topic_back_to_default_drops_override(log):
    log.create_topic("t", config={"segment.bytes": 1024})
    info = log.alter_topic("t", {"segment.bytes": 128 * 1024 * 1024})
    assert info.config == {}


def test_alter_topic_takes_effect_on_rolls(log):
    log.create_topic("t")
    p = log.partition("t", 0)
    for _ in range(10):
        p.append([b"x" * 200], acks=1)
    assert len(p.segments) == 1
    log.alter_topic("t", {"segment.bytes": 512})
    for _ in range(10):
        p.append([b"x" * 200], acks=1)
    assert len(p.segments) > 3
    for seg in p.segments[1:-1]:
        assert seg.size <= 512


def test_alter_topic_invalid_changes_nothing(log, data_dir):
    log.create_topic("t", config={"segment.bytes": 1024})
    path = os.path.join(data_dir, "t", "topic.json")
    before = open(path, "rb").read()
    with pytest.raises(InvalidConfigError):
        log.alter_topic("t", {"segment.bytes": 2048, "retention.ms": "soon"})
    with pytest.raises(InvalidConfigError):
        log.alter_topic("t", {"no.such.key": 1})
    assert open(path, "rb").read() == before
    assert log.topic("t").config.segment_bytes == 1024


def test_alter_unknown_topic(log):
    with pytest.raises(UnknownTopicOrPartitionError):
        log.alter_topic("nope", {"segment.bytes": 1024})


def test_delete_topic(log, data_dir):
    log.create_topic("t", 2)
    p = log.partition("t", 0)
    p.append([b"x"], acks=1)
    log.delete_topic("t")
    assert log.topics() == {}
    assert not os.path.exists(os.path.join(data_dir, "t"))
    assert [n for n in os.listdir(data_dir) if "~deleted~" in n] == []
    with pytest.raises(UnknownTopicOrPartitionError):
        log.partition("t", 0)
    with pytest.raises(LogClosedError):
        p.append([b"y"])
    with pytest.raises(UnknownTopicOrPartitionError):
        log.delete_topic("t")


def test_delete_and_recreate_is_a_new_topic(log):
    old = log.create_topic("t")
    log.partition("t", 0).append([b"x", b"y"], acks=1)
    log.delete_topic("t")
    new = log.create_topic("t", 3)
    assert new.topic_id != old.topic_id
    assert new.partitions == 3
    assert log.partition("t", 0).log_end_offset == 0


# -- unknown topics and partitions ------------------------------------------------------------


def test_unknown_topic(log):
    with pytest.raises(UnknownTopicOrPartitionError):
        log.partition("nope", 0)
    with pytest.raises(UnknownTopicOrPartitionError):
        log.topic("nope")
    with pytest.raises(KeyError):  # also a KeyError, for ordinary handlers
        log.partition("nope", 0)
    assert strom.UnknownTopicError is UnknownTopicOrPartitionError


@pytest.mark.parametrize("partition", [-1, 2, 3, 10**9, True, "0", 0.0, None])
def test_partition_out_of_range(log, partition):
    log.create_topic("t", 2)
    with pytest.raises(UnknownTopicOrPartitionError):
        log.partition("t", partition)


def test_unknown_topic_message_is_plain(log):
    with pytest.raises(UnknownTopicOrPartitionError) as info:
        log.partition("nope", 0)
    assert str(info.value).startswith("unknown topic")


# -- names ---------------------------------------------------------------------------------------

INVALID_NAMES = ["", ".", "..", "a/b", "../x", "/abs", "a\\b", "a\x00b", "x" * 250, "a b", " ",
                 "ünïcode", "\u0430", "a~b", "x~creating~abc", "a:b", "a\nb", 1, None, b"bytes",
                 ["a"]]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
def test_invalid_topic_names(log, data_dir, name):
    before = entries(data_dir)
    parent = entries(os.path.dirname(data_dir))
    with pytest.raises(InvalidTopicError):
        log.create_topic(name)
    assert entries(data_dir) == before
    assert entries(os.path.dirname(data_dir)) == parent
    assert log.topics() == {}


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
def test_invalid_topic_names_on_lookup(log, name):
    with pytest.raises((InvalidTopicError, UnknownTopicOrPartitionError)):
        log.partition(name, 0)


def test_invalid_topic_error_is_a_value_error(log):
    with pytest.raises(ValueError):
        log.create_topic("a/b")


@pytest.mark.parametrize("name", ["x" * 249, "y" * 234, "z" * 233, "a", "A.b-c_9", "...",
                                  ".a", "-", "_"])
def test_valid_topic_names(log, data_dir, clock, name):
    # Kafka's rule: 1 to 249 of [A-Za-z0-9._-], not "." or "..": a leading dot is legal
    log.create_topic(name)
    assert name in log.topics()
    assert os.path.isdir(os.path.join(data_dir, name))
    log.partition(name, 0).append([b"v"], acks=1)
    assert log.partition(name, 0).read_records(0)[0][3] == b"v"
    log.close()
    with strom.open(data_dir, clock=clock) as log2:
        assert name in log2.topics()
        assert log2.partition(name, 0).log_end_offset == 1
        log2.delete_topic(name)
        assert log2.topics() == {}
        assert entries(data_dir) == ["~strom.json", "~strom.lock"]


@pytest.mark.parametrize("partitions", [0, -1, MAX_PARTITIONS + 1, True, "3", 1.0, None])
def test_bad_partition_count(log, data_dir, partitions):
    before = entries(data_dir)
    with pytest.raises(InvalidConfigError):
        log.create_topic("t", partitions)
    assert entries(data_dir) == before


# -- configs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [
    {"no.such.key": 1},
    {"segment.bytes": -1},
    {"segment.bytes": 255},
    {"segment.bytes": "big"},
    {"segment.bytes": 1.5},
    {"retention.ms": -2},
    {"cleanup.policy": "sometimes"},
    {"cleanup.policy": 1},
    {"max.message.bytes": 10},
    {"segment.ms": 0},
    "segment.bytes=1024",
], ids=repr)
def test_invalid_configs(log, data_dir, config):
    before = entries(data_dir)
    with pytest.raises(InvalidConfigError):
        log.create_topic("t", 1, config=config)
    assert entries(data_dir) == before
    assert log.topics() == {}


def test_string_config_values_accepted(log):
    info = log.create_topic("t", config={"retention.ms": "604800001", "segment.bytes": "1024"})
    assert info.config == {"retention.ms": 604800001, "segment.bytes": 1024}
    assert log.partition("t", 0).config.retention_ms == 604800001


def test_string_default_value_accepted(log):
    info = log.create_topic("t", config={"retention.ms": "604800000"})
    assert info.config == {}  # the default, given as Kafka's admin tools give it


# -- persistence -----------------------------------------------------------------------------------


def test_metadata_survives_reopen(data_dir, clock):
    with strom.open(data_dir, clock=clock) as log:
        a = log.create_topic("a", 3, config={"segment.bytes": 2048, "cleanup.policy": "compact"})
        b = log.create_topic("b")
        log.partition("a", 2).append([b"x", b"y"], [b"k1", b"k2"], acks=1)
    with strom.open(data_dir, clock=clock) as log:
        assert log.topics() == {"a": a, "b": b}
        assert log.topic("a").config.segment_bytes == 2048
        assert log.topic("a").config.cleanup_policy == "compact"
        assert log.partition("a", 2).log_end_offset == 2
        assert [r[3] for r in log.partition("a", 2).read_records(0)] == [b"x", b"y"]


def test_leftovers_removed_at_open(data_dir, clock):
    with strom.open(data_dir, clock=clock) as log:
        log.create_topic("x")
    for name in ["~creating~0123456789abcdef", "~deleted~0123456789abcdef",
                 "x~creating~abc", "x~deleted~abc"]:  # today's names and older ones
        os.makedirs(os.path.join(data_dir, name, "0"))
        with open(os.path.join(data_dir, name, "topic.json"), "wb") as f:
            f.write(b"half")
    with strom.open(data_dir, clock=clock) as log:
        assert entries(data_dir) == ["x", "~strom.json", "~strom.lock"]
        assert list(log.topics()) == ["x"]


def test_leftovers_are_not_topics(data_dir, clock):
    strom.open(data_dir, clock=clock).close()
    # a complete-looking topic under a transient name, created after open, is still not a topic
    with strom.open(data_dir, clock=clock) as log:
        log.create_topic("t")
        os.rename(os.path.join(data_dir, "t"), os.path.join(data_dir, "~deleted~abc"))
        assert log.topics() == {}


def test_corrupt_topic_json(data_dir, clock):
    with strom.open(data_dir, clock=clock) as log:
        log.create_topic("t", config={"segment.bytes": 1024})
    path = os.path.join(data_dir, "t", "topic.json")
    blob = bytearray(open(path, "rb").read())
    good = bytes(blob)
    blob[len(blob) - 5] ^= 0x01  # a flipped bit in the JSON body
    with open(path, "wb") as f:
        f.write(blob)
    with pytest.raises(CorruptMetadataError) as info:
        strom.open(data_dir, clock=clock)
    assert info.value.path == path
    with open(path, "wb") as f:  # nothing else was touched: restoring the file restores the topic
        f.write(good)
    with strom.open(data_dir, clock=clock) as log:
        assert log.topics()["t"].config == {"segment.bytes": 1024}


@pytest.mark.parametrize("damage", [
    lambda b: b[:-1],
    lambda b: b"",
    lambda b: b.replace(b"strom topic", b"strom recov", 1),
    lambda b: b"x" + b[1:],
], ids=["short", "empty", "wrong-kind", "bad-header"])
def test_damaged_topic_json(data_dir, clock, damage):
    with strom.open(data_dir, clock=clock) as log:
        log.create_topic("t")
    path = os.path.join(data_dir, "t", "topic.json")
    blob = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(damage(blob))
    with pytest.raises(CorruptMetadataError):
        strom.open(data_dir, clock=clock)


def test_topic_json_naming_another_topic(data_dir, clock):
    with strom.open(data_dir, clock=clock) as log:
        log.create_topic("a")
        log.create_topic("b")
    blob = open(os.path.join(data_dir, "a", "topic.json"), "rb").read()
    with open(os.path.join(data_dir, "b", "topic.json"), "wb") as f:
        f.write(blob)
    with pytest.raises(CorruptMetadataError):
        strom.open(data_dir, clock=clock)


# -- two Log objects on one directory --------------------------------------------------------------


def test_two_logs_see_each_others_topics(data_dir, clock):
    with strom.open(data_dir, clock=clock) as a, strom.open(data_dir, clock=clock) as b:
        info = a.create_topic("t", 2, config={"segment.bytes": 1024})
        assert b.topics() == {"t": info}
        with pytest.raises(TopicExistsError):
            b.create_topic("t")
        base = a.partition("t", 1).append([b"x", b"y"], acks=1)
        assert base == 0
        pb = b.partition("t", 1)
        assert [r[3] for r in pb.read_records(0)] == [b"x", b"y"]
        assert pb.append([b"z"], acks=1) == 2  # offsets come from the file, not memory
        pa = a.partition("t", 1)
        # a reader sees other writers' appends once it reads at its known end (or refreshes)
        assert [r[3] for r in pa.read_records(2)] == [b"z"]
        assert pa.log_end_offset == 3
        assert [r[3] for r in pa.read_records(0)] == [b"x", b"y", b"z"]
        assert pa.append([b"w"], acks=1) == 3
        pb.refresh()
        assert pb.log_end_offset == 4
        b.create_topic("u")
        assert set(a.topics()) == {"t", "u"}
        b.delete_topic("u")
        assert set(a.topics()) == {"t"}
        with pytest.raises(UnknownTopicOrPartitionError):
            a.partition("u", 0)


def test_two_logs_delete_while_the_other_wrote(data_dir, clock):
    # b has written to t (so closing its partition writes a recovery point); a deletes t:
    # b must notice the deletion cleanly, not fail writing into the vanished folder.
    with strom.open(data_dir, clock=clock) as a, strom.open(data_dir, clock=clock) as b:
        a.create_topic("t")
        a.create_topic("other")
        pb = b.partition("t", 0)
        pb.append([b"x"], acks=1)
        a.delete_topic("t")
        assert set(b.topics()) == {"other"}
        with pytest.raises(UnknownTopicOrPartitionError):
            b.partition("t", 0)
        with pytest.raises(LogClosedError):
            pb.append([b"y"], acks=1)
        assert not os.path.exists(os.path.join(data_dir, "t"))


def test_two_logs_see_unknown_topic_on_lookup(data_dir, clock):
    with strom.open(data_dir, clock=clock) as a, strom.open(data_dir, clock=clock) as b:
        a.create_topic("t")
        assert b.partition("t", 0).log_end_offset == 0  # an unknown name makes b look again


def test_two_logs_see_config_changes(data_dir, clock):
    with strom.open(data_dir, clock=clock) as a, strom.open(data_dir, clock=clock) as b:
        a.create_topic("t", config={"segment.bytes": 4096})
        b.topics()
        a.alter_topic("t", {"segment.bytes": 1024})
        assert b.topics()["t"].config == {"segment.bytes": 1024}
        assert b.partition("t", 0).config.segment_bytes == 1024


def test_two_logs_see_recreated_topic(data_dir, clock):
    with strom.open(data_dir, clock=clock) as a, strom.open(data_dir, clock=clock) as b:
        a.create_topic("t")
        a.partition("t", 0).append([b"old"], acks=1)
        assert b.partition("t", 0).log_end_offset == 1
        a.delete_topic("t")
        new = a.create_topic("t", 2)
        assert b.topics()["t"] == new
        assert b.partition("t", 1).log_end_offset == 0
        assert b.partition("t", 0).read(0) == []


# -- retention through the log ---------------------------------------------------------------------


def test_enforce_retention(log, clock, data_dir):
    log.create_topic("t", 2, config={"retention.ms": 10_000, "segment.bytes": 1024})
    log.create_topic("keep", config={"segment.bytes": 1024})  # default retention: a week
    for name in ("t", "keep"):
        for _ in range(4):
            log.partition(name, 0).append([b"x" * 100] * 5, acks=1)
            log.partition(name, 0).roll()
    assert log.enforce_retention() == 0
    clock.advance(10_000)
    assert log.enforce_retention() == 0  # exactly retention.ms old is kept
    clock.advance(1)
    assert log.enforce_retention() == 4
    p = log.partition("t", 0)
    assert p.log_start_offset == p.log_end_offset == 20
    assert len(p.segments) == 1
    with pytest.raises(OffsetOutOfRangeError):
        p.read(0)
    assert log.partition("keep", 0).log_start_offset == 0
    assert log.partition("t", 1).log_start_offset == 0
    logs = [n for n in os.listdir(os.path.join(data_dir, "t", "0")) if n.endswith(".log")]
    assert logs == ["00000000000000000020.log"]
    assert log.describe_topic("t").partitions[0].log_start_offset == 20


def test_enforce_retention_explicit_time(log, clock):
    log.create_topic("t", config={"retention.ms": 1000})
    p = log.partition("t", 0)
    p.append([b"x"], acks=1)
    p.roll()
    assert log.enforce_retention(T0 + 1000) == 0
    assert log.enforce_retention(T0 + 1001) == 1
    assert p.log_start_offset == 1


def test_retention_skips_compacted_topics(log, clock):
    log.create_topic("t", config={"retention.ms": 0, "cleanup.policy": "compact"})
    p = log.partition("t", 0)
    p.append([b"x"], keys=[b"k"], acks=1)
    p.roll()
    clock.advance(10_000)
    assert log.enforce_retention() == 0
    assert p.log_start_offset == 0


def test_a_missing_partition_folder_is_a_storage_error(data_dir, clock):
    with strom.open(data_dir, clock=clock) as log:
        log.create_topic("t", partitions=2)
    import shutil
    shutil.rmtree(os.path.join(data_dir, "t", "1"))
    with pytest.raises(strom.StorageError) as info:
        strom.open(data_dir, clock=clock)
    assert info.value.errno is not None


def test_closing_after_the_topic_was_deleted_elsewhere(data_dir, clock):
    writer = strom.open(data_dir, clock=clock)
    other = strom.open(data_dir, clock=clock)
    writer.create_topic("t")
    writer.partition("t", 0).append([b"x"], acks=1)
    other.delete_topic("t")
    writer.close()  # nothing left to checkpoint; no error
    other.close()
    assert not os.path.exists(os.path.join(data_dir, "t"))
