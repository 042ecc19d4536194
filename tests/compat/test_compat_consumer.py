"""KafkaConsumer (src/strom/compat/consumer.py).

Options of kafka-python 2.x and 3.x, defaults, bad configs; then the
kafka-python consumer API on shared logs: iteration with
consumer_timeout_ms, poll's shape, ConsumerRecord fields, commits and
committed offsets (OffsetAndMetadata in 2.x and 3.x forms), seeking,
offsets by time, rebalance listeners, one-member groups, tombstones.
"""

from __future__ import annotations

import json

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strom
from strom.client.consumer import DEFAULTS
from strom.compat import (
    ConsumerRebalanceListener,
    ConsumerRecord,
    KafkaConsumer,
    KafkaProducer,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    TopicPartition,
    close_shared_logs,
    shared_log,
)
from strom.compat.consumer import KAFKA_PYTHON_CONFIGS
from strom.compat.errors import (
    IllegalStateError,
    KafkaConfigurationError,
    NoOffsetForPartitionError,
    UnknownTopicOrPartitionError,
)

TIMEOUT = 10  # seconds: the longest any wait may take before the test fails
T0 = 1_700_000_000_000


def produce(topic, values, partitions=1, **configs):
    log = shared_log("localhost")
    if topic not in log.topics():
        log.create_topic(topic, partitions=partitions)
    producer = KafkaProducer(**configs)
    metas = [producer.send(topic, v, partition=i % partitions, timestamp_ms=T0 + i)
             for i, v in enumerate(values)]
    producer.flush()
    producer.close()
    return [m.get(TIMEOUT) for m in metas]


# -- configuration ---------------------------------------------------------------------


def test_is_a_strom_consumer():
    consumer = KafkaConsumer()
    assert isinstance(consumer, strom.Consumer)
    assert consumer.config["bootstrap_servers"] == "localhost"
    assert consumer.config["auto_offset_reset"] == "latest"  # kafka-python's default
    consumer.close()


def test_unknown_option_is_refused_by_name():
    with pytest.raises(KafkaConfigurationError, match=r"Unrecognized configs: \['group'\]"):
        KafkaConsumer("t", group="g")


@pytest.mark.parametrize("name", sorted(KAFKA_PYTHON_CONFIGS - DEFAULTS.keys()))
def test_every_network_option_of_either_version_is_accepted(name):
    value = {"bootstrap_servers": "localhost:9092", "security_protocol": "SSL",
             "partition_assignment_strategy": ["range"], "api_version": (2, 8),
             "session_timeout_ms": 45000}.get(name, 1)
    KafkaConsumer("t", **{name: value}).close()


@pytest.mark.parametrize("name, value, match", [
    ("auto_offset_reset", "beginning", "auto_offset_reset"),
    ("group_id", "", "group_id"), ("group_id", 5, "group_id"),
    ("max_poll_records", 0, "max_poll_records"),
    ("consumer_timeout_ms", -1, "consumer_timeout_ms"),
    ("value_deserializer", "json", "value_deserializer must be callable"),
    ("isolation_level", "committed", "isolation_level"),
])
def test_bad_values(name, value, match):
    with pytest.raises(KafkaConfigurationError, match=match):
        KafkaConsumer("t", **{name: value})


@pytest.mark.parametrize("alias, first", [("smallest", 0), ("earliest", 0), ("largest", 3),
                                          ("latest", 3)])
def test_offset_reset_aliases(alias, first):
    produce("t", [b"0", b"1", b"2"])
    consumer = KafkaConsumer("t", auto_offset_reset=alias, consumer_timeout_ms=50)
    assert consumer.position(TopicPartition("t", 0)) == first
    consumer.close()


def test_no_offset_reset():
    produce("t", [b"0"])
    consumer = KafkaConsumer("t", group_id="g", auto_offset_reset="none")
    with pytest.raises(NoOffsetForPartitionError):
        consumer.poll(timeout_ms=0)
    consumer.close()


# -- reading ------------------------------------------------------------------------------


def test_iteration_ends_with_consumer_timeout():
    produce("t", [b"a", b"b", b"c"])
    consumer = KafkaConsumer("t", bootstrap_servers=["localhost:9092"],
                             auto_offset_reset="earliest", consumer_timeout_ms=100)
    assert [m.value for m in consumer] == [b"a", b"b", b"c"]
    assert [m.value for m in consumer] == []  # nothing new: ends again after the timeout
    consumer.close()


def test_latest_sees_only_what_comes_next():
    produce("t", [b"old"])
    consumer = KafkaConsumer("t", consumer_timeout_ms=100)
    assert consumer.poll(timeout_ms=0) == {}
    produce("t", [b"new"])
    assert [m.value for m in consumer] == [b"new"]
    consumer.close()


def test_poll_shape_and_consumer_record_fields():
    produce("t", [b"v0", b"v1", b"v2", b"v3"], partitions=2)
    consumer = KafkaConsumer("t", auto_offset_reset="earliest",
                             key_deserializer=bytes.decode)
    got = consumer.poll(timeout_ms=TIMEOUT * 1000, max_records=10)
    while sum(map(len, got.values())) < 4:
        for tp, recs in consumer.poll(timeout_ms=TIMEOUT * 1000).items():
            got.setdefault(tp, []).extend(recs)
    assert set(got) == {TopicPartition("t", 0), TopicPartition("t", 1)}
    r = got[TopicPartition("t", 1)][0]
    assert isinstance(r, ConsumerRecord)
    assert (r.topic, r.partition, r.offset, r.value, r.key) == ("t", 1, 0, b"v1", None)
    assert r.timestamp == T0 + 1 and r.timestamp_type == 0
    assert r.headers == [] or r.headers == ()
    assert r.serialized_value_size == 2 and r.serialized_key_size == -1
    # kafka-python 3.x field order; 2.x had no leader_epoch: read fields by name.
    assert ConsumerRecord._fields[:4] == ("topic", "partition", "leader_epoch", "offset")
    consumer.close()


def test_max_poll_records():
    produce("t", [str(i).encode() for i in range(10)])
    consumer = KafkaConsumer("t", auto_offset_reset="earliest", max_poll_records=3)
    first = consumer.poll(timeout_ms=TIMEOUT * 1000)
    assert len(first[TopicPartition("t", 0)]) == 3
    with pytest.raises(TypeError):
        consumer.poll(max_records="3")
    with pytest.raises(ValueError):
        consumer.poll(timeout_ms=-1)
    consumer.close()


def test_tombstones_skip_the_deserializers():
    log = shared_log("localhost")
    log.create_topic("c")
    log.partition("c", 0).append([b'{"a": 1}', None], keys=[b"k", b"k"])
    calls = []

    def deserializer(m):
        calls.append(m)
        return json.loads(m.decode("utf-8"))

    consumer = KafkaConsumer("c", auto_offset_reset="earliest", consumer_timeout_ms=100,
                             value_deserializer=deserializer, key_deserializer=bytes.decode)
    assert [(m.key, m.value) for m in consumer] == [("k", {"a": 1}), ("k", None)]
    assert calls == [b'{"a": 1}']
    consumer.close()


def test_topics_and_partitions():
    produce("t", [b"v"], partitions=3)
    consumer = KafkaConsumer(group_id="g")
    consumer.subscribe(["t"])
    assert consumer.subscription() == {"t"}
    assert consumer.assignment() == {TopicPartition("t", i) for i in range(3)}
    assert "t" in consumer.topics() and "__consumer_offsets" not in consumer.topics()
    assert consumer.partitions_for_topic("t") == {0, 1, 2}
    assert consumer.partitions_for_topic("missing") is None
    consumer.close()


def test_assign_unknown_topic():
    consumer = KafkaConsumer()
    with pytest.raises(UnknownTopicOrPartitionError):
        consumer.assign([TopicPartition("missing", 0)])
    consumer.close()


# -- offsets --------------------------------------------------------------------------------


def test_commit_and_committed_in_both_forms():
    produce("t", [b"a", b"b", b"c"])
    tp = TopicPartition("t", 0)
    consumer = KafkaConsumer("t", group_id="g", auto_offset_reset="earliest",
                             enable_auto_commit=False)
    consumer.commit({tp: OffsetAndMetadata(1, "")})           # 2.x: two arguments
    assert consumer.committed(tp) == 1
    consumer.commit({tp: OffsetAndMetadata(2, "meta", -1)})   # 3.x: three
    assert consumer.committed(tp, metadata=True) == OffsetAndMetadata(2, "meta", -1)
    assert OffsetAndMetadata(5) == (5, "", -1)
    consumer.close()
    again = KafkaConsumer("t", group_id="g", consumer_timeout_ms=100)
    assert [m.value for m in again] == [b"c"]  # resumes at the committed offset
    again.close()


def test_commit_without_group():
    consumer = KafkaConsumer("t")
    with pytest.raises(IllegalStateError):
        consumer.commit()
    consumer.close()


def test_auto_commit_on_close_survives_a_restart(tmp_path):
    produce("t", [b"a", b"b"], bootstrap_servers=str(tmp_path))
    consumer = KafkaConsumer("t", group_id="g", bootstrap_servers=str(tmp_path),
                             auto_offset_reset="earliest", consumer_timeout_ms=100)
    assert len(list(consumer)) == 2
    consumer.close()
    close_shared_logs()  # as if the process ended
    again = KafkaConsumer("t", group_id="g", bootstrap_servers=str(tmp_path))
    assert again.committed(TopicPartition("t", 0)) == 2
    assert again.position(TopicPartition("t", 0)) == 2
    again.close()


def test_seek_position_and_offsets():
    produce("t", [b"a", b"b", b"c", b"d"])
    tp = TopicPartition("t", 0)
    consumer = KafkaConsumer(auto_offset_reset="earliest")
    consumer.assign([tp])
    consumer.seek(tp, 2)
    assert consumer.position(tp) == 2
    assert [r.value for r in consumer.poll(timeout_ms=TIMEOUT * 1000)[tp]] == [b"c", b"d"]
    consumer.seek_to_beginning()
    assert consumer.position(tp) == 0
    consumer.seek_to_end(tp)
    assert consumer.position(tp) == 4
    assert consumer.beginning_offsets([tp]) == {tp: 0}
    assert consumer.end_offsets([tp]) == {tp: 4}
    assert consumer.highwater(tp) == 4
    with pytest.raises(ValueError):
        consumer.seek(tp, -1)
    with pytest.raises(IllegalStateError):
        consumer.seek(TopicPartition("t", 9), 0)
    consumer.close()


def test_offsets_for_times():
    produce("t", [b"a", b"b", b"c"])
    tp = TopicPartition("t", 0)
    consumer = KafkaConsumer()
    found = consumer.offsets_for_times({tp: T0 + 1})
    assert found == {tp: OffsetAndTimestamp(1, T0 + 1, -1)}
    assert isinstance(found[tp], OffsetAndTimestamp)
    assert consumer.offsets_for_times({tp: T0 + 99}) == {tp: None}
    with pytest.raises(ValueError):
        consumer.offsets_for_times({tp: -1})
    consumer.close()


def test_pause_and_resume():
    produce("t", [b"a"])
    tp = TopicPartition("t", 0)
    consumer = KafkaConsumer("t", auto_offset_reset="earliest")
    consumer.pause(tp)
    assert consumer.paused() == {tp}
    assert consumer.poll(timeout_ms=50) == {}
    consumer.resume(tp)
    assert consumer.poll(timeout_ms=TIMEOUT * 1000)[tp][0].value == b"a"
    consumer.close()


# -- groups and listeners -------------------------------------------------------------------


class Listener(ConsumerRebalanceListener):
    def __init__(self):
        self.events = []

    def on_partitions_revoked(self, revoked):
        self.events.append(("revoked", sorted(revoked)))

    def on_partitions_assigned(self, assigned):
        self.events.append(("assigned", sorted(assigned)))


def test_rebalance_listener():
    produce("t", [b"a"], partitions=2)
    listener = Listener()
    consumer = KafkaConsumer(group_id="g")
    consumer.subscribe(topics=["t"], listener=listener)
    consumer.close()
    tps = [TopicPartition("t", 0), TopicPartition("t", 1)]
    assert listener.events == [("assigned", tps), ("revoked", tps)]
    with pytest.raises(TypeError):
        KafkaConsumer().subscribe(["t"], listener=object())


def test_consumers_of_a_group_share_its_partitions():
    produce("t", [b"a", b"b", b"c"], partitions=3)
    one = KafkaConsumer("t", group_id="g", auto_offset_reset="earliest")
    two = KafkaConsumer("t", group_id="g", auto_offset_reset="earliest")
    every = {TopicPartition("t", i) for i in range(3)}
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        one.poll(timeout_ms=10)
        two.poll(timeout_ms=10)
        a, b = one.assignment(), two.assignment()
        if a | b == every and not a & b and a and b:
            break
    assert one.assignment() | two.assignment() == every
    assert not one.assignment() & two.assignment() and one.assignment() and two.assignment()
    one.close()
    two.close()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=20), min_size=1, max_size=30), st.integers(1, 29))
def test_a_group_resumes_where_it_committed(values, stop):
    close_shared_logs()
    stop = min(stop, len(values))
    produce("m", values)
    first = KafkaConsumer("m", group_id="g", auto_offset_reset="earliest",
                          enable_auto_commit=False)
    taken = []
    while len(taken) < stop:
        for recs in first.poll(timeout_ms=TIMEOUT * 1000, max_records=stop - len(taken)).values():
            taken.extend(recs)
    first.commit()
    first.close()
    second = KafkaConsumer("m", group_id="g", consumer_timeout_ms=50)
    rest = list(second)
    second.close()
    assert [r.value for r in taken + rest] == values
    assert [r.offset for r in taken + rest] == list(range(len(values)))
